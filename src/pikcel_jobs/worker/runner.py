"""The claim loop: take due rows with a lease, run their handlers concurrently, and
stop cleanly (finish in-flight work, give back the rest) on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute

from pikcel_jobs.db.base import new_id
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.worker.claim import LeaseLost, claim_due, release_leases, renew_leases
from pikcel_jobs.worker.context import WorkerContext
from pikcel_jobs.worker.membership import Membership

log = logging.getLogger("pikcel_jobs.worker")
Handler = Callable[[WorkerContext, str], Awaitable[None]]
# Writes due rows for time-based work (daily digests) before its queue is claimed;
# called on every pass, so it limits its own pace.
Planner = Callable[[WorkerContext], Awaitable[object]]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"


class Queue:
    """One kind of due work: the column that says when, and the handler that does it."""

    def __init__(
        self,
        name: str,
        due_column: InstrumentedAttribute[datetime | None],
        handler: Handler,
        model: Any = Job,
        plan: Planner | None = None,
        prefetch: Sequence[str] = (),
    ):
        self.name = name
        self.due_column = due_column
        self.model = model
        self.handler = handler
        self.plan = plan
        # Columns the claim hands to the handler (`WorkerContext.claimed`), saving it a
        # read: worth it for the busiest queue (polls).
        self.prefetch = tuple(prefetch)


class Worker:
    def __init__(self, ctx: WorkerContext, queues: list[Queue]) -> None:
        self.ctx = ctx
        self.queues = queues
        self.stopping = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.slots = asyncio.Semaphore(ctx.settings.worker_concurrency)
        self.running: set[asyncio.Task[None]] = set()
        self.handled = 0
        # Rows whose handler is running here, by model: their leases are renewed while
        # it runs, so a slow handler (Shopify throttling, a long READY wait) never has
        # its row claimed by a second worker doing the same non-idempotent step twice.
        self.held: dict[Any, set[str]] = {}

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()

    def nudge(self) -> None:
        """New work exists (a job was created in this process): claim without waiting."""
        self.wakeup.set()

    async def run(self, grace_seconds: float = 20.0) -> None:
        settings = self.ctx.settings
        log.info("worker %s started", self.ctx.owner)
        turn = 0
        quiet = True
        heartbeat = asyncio.create_task(self._heartbeat())
        # This worker's share of the global upstream cap (worker/membership.py).
        membership = Membership(
            self.ctx.sessions, owner=self.ctx.owner, limiter=self.ctx.pikcel.limiter,
            cap=settings.upstream_rps,
        )  # fmt: skip
        member = asyncio.create_task(membership.run())
        try:
            while not self.stopping.is_set():
                claimed = 0
                # Queues take turns at claiming first, so a backlog in one (thousands of
                # dispatches) cannot keep every slot from another (pushes).
                turn = (turn + 1) % max(1, len(self.queues))
                # While work streams through, claim once a quarter of the slots is free,
                # not for each finished handler: a claim is a transaction, and one per
                # job doubled the database work of a poll. After a quiet wait (slow
                # handlers holding most slots) whatever is free is claimed.
                low_water = 1 if quiet else max(1, settings.worker_concurrency // 4)
                for queue in self.queues[turn:] + self.queues[:turn]:
                    free = settings.worker_concurrency - len(self.running)
                    if free <= 0 or (self.running and free < low_water):
                        break
                    try:
                        if queue.plan is not None:
                            await queue.plan(self.ctx)
                        ids = await claim_due(
                            self.ctx.sessions, owner=self.ctx.owner, due_column=queue.due_column,
                            model=queue.model,
                            columns=queue.prefetch,
                            rows=self.ctx.claimed if queue.prefetch else None,
                            limit=min(free, settings.worker_batch_size),
                            lease_seconds=settings.lease_seconds,
                        )  # fmt: skip
                    except Exception:  # the database is away: wait and try again
                        log.exception("claiming %s work failed", queue.name)
                        ids = []
                    claimed += len(ids)
                    for job_id in ids:
                        await self.slots.acquire()
                        task = asyncio.create_task(self._handle(queue, job_id))
                        self.running.add(task)
                        task.add_done_callback(self.running.discard)
                quiet = False
                if claimed == 0 or len(self.running) >= settings.worker_concurrency:
                    self.wakeup.clear()
                    try:
                        await asyncio.wait_for(
                            self.wakeup.wait(), settings.worker_idle_sleep_seconds
                        )
                    except TimeoutError:
                        quiet = True
        finally:
            try:
                await self._drain(grace_seconds)
            finally:
                heartbeat.cancel()
                member.cancel()
                await asyncio.gather(member, return_exceptions=True)
                try:
                    await membership.leave()
                except Exception:  # its row stops counting once it is not refreshed
                    log.warning("leaving the workers failed", exc_info=True)

    async def _heartbeat(self) -> None:
        """Every third of a lease, extend the leases of the rows being handled here."""
        interval = max(0.05, self.ctx.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            for model, ids in list(self.held.items()):
                if not ids:
                    continue
                try:
                    await renew_leases(
                        self.ctx.sessions, owner=self.ctx.owner, ids=list(ids), model=model,
                        lease_seconds=self.ctx.settings.lease_seconds,
                    )  # fmt: skip
                except Exception:  # the database is away: the next beat tries again
                    log.warning("renewing leases failed", exc_info=True)

    async def _handle(self, queue: Queue, job_id: str) -> None:
        held = self.held.setdefault(queue.model, set())
        held.add(job_id)
        try:
            await queue.handler(self.ctx, job_id)
            self.handled += 1
        except LeaseLost:
            log.info("lease on %s lost; another worker has it", job_id)
        except Exception:
            # The lease expires and the job is tried again; nothing is lost.
            log.exception("%s handler failed for job %s", queue.name, job_id)
        finally:
            held.discard(job_id)
            self.ctx.claimed.pop(job_id, None)
            self.slots.release()
            self.wakeup.set()

    async def _drain(self, grace_seconds: float) -> None:
        if self.running:
            _, pending = await asyncio.wait(set(self.running), timeout=grace_seconds)
            for task in pending:
                task.cancel()
        for writer in self.ctx.group_commits.values():
            await writer.stop()
        released = 0
        for model in {queue.model for queue in self.queues}:
            released += await release_leases(self.ctx.sessions, owner=self.ctx.owner, model=model)
        log.info("worker %s stopped (released %d leases)", self.ctx.owner, released)


def default_queues() -> list[Queue]:
    from pikcel_jobs.jobs.tasks import DUE_JOB_COLUMNS, run_job
    from pikcel_jobs.notifications.models import NotificationDelivery
    from pikcel_jobs.notifications.tasks import DigestPlanner, deliver
    from pikcel_jobs.push.tasks import run_push
    from pikcel_jobs.schedules.models import Schedule
    from pikcel_jobs.schedules.tasks import run_schedule

    return [
        Queue("jobs", Job.next_attempt_at, run_job, prefetch=DUE_JOB_COLUMNS),
        Queue("push", Job.push_next_at, run_push),
        Queue("schedules", Schedule.next_run_at, run_schedule, model=Schedule),
        Queue(
            "notifications",
            NotificationDelivery.next_attempt_at,
            deliver,
            model=NotificationDelivery,
            plan=DigestPlanner(),
        ),
    ]
