"""Worker handlers for a job's due work: dispatch, poll, copy the output.

Each handler reads the row, does its network call with no transaction open, then
writes the result through `owned_job` (compare-and-set on the lease). Failures that
may pass (network, 5xx, 429) back off durably in `next_attempt_at`; permanent ones
fail the job with PikcelAI's own message."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.core.metrics import upstream_call
from pikcel_jobs.db.base import table_of, utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.db.group_commit import GroupCommit
from pikcel_jobs.events.models import record_event
from pikcel_jobs.jobs import repository
from pikcel_jobs.jobs.actions import apply_cancel_answer, cancel_locally
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.states import TERMINAL, JobStatus, change_status
from pikcel_jobs.jobs.tracking import (
    RemoteJob,
    apply_remote,
    batch_of_changes,
    next_poll_delay,
    only_reschedules,
)
from pikcel_jobs.net.fetch import UnsafeURL, fetch_bytes
from pikcel_jobs.pikcel.errors import PikcelError, PikcelNotFound
from pikcel_jobs.storage.store import image_format, make_thumbnail
from pikcel_jobs.worker.claim import LeaseLost, owned_job
from pikcel_jobs.worker.context import WorkerContext

log = logging.getLogger("pikcel_jobs.worker")
MAX_BACKOFF_SECONDS = 300.0
MAX_COPY_TRIES = 8
# A poll's result may wait this long for others to share its transaction (about 1.5 ms
# of CPU each, whatever its size): nothing waits on a poll's write but its own slot.
POLL_WRITE_LINGER_SECONDS = 0.02


class DueJob(Protocol):
    """What a handler reads of a claimed job: the claim's plain row (`DUE_JOB_COLUMNS`),
    or the Job itself when it was read apart."""

    @property
    def id(self) -> str: ...
    @property
    def shop(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def pikcel_job_id(self) -> str | None: ...
    @property
    def cancel_requested_at(self) -> datetime | None: ...
    @property
    def deadline_at(self) -> datetime | None: ...
    @property
    def output_key(self) -> str | None: ...
    @property
    def remote_output_url(self) -> str | None: ...
    @property
    def lease_owner(self) -> str | None: ...
    @property
    def progress(self) -> int: ...
    @property
    def poll_interval_seconds(self) -> float: ...


DUE_JOB_COLUMNS = (
    "id", "shop", "status", "attempt", "pikcel_job_id", "cancel_requested_at", "deadline_at",
    "output_key", "remote_output_url", "lease_owner", "progress", "poll_interval_seconds",
)  # fmt: skip


def backoff(tries: int, retry_after: float | None = None) -> timedelta:
    seconds = min(MAX_BACKOFF_SECONDS, 2.0 ** min(tries, 10))
    return timedelta(seconds=max(seconds, retry_after or 0))


async def run_job(ctx: WorkerContext, job_id: str) -> None:
    """Do whatever is due for one claimed job."""
    job: DueJob | None = ctx.claimed.pop(job_id, None)
    if job is None:
        async with unit_of_work(ctx.sessions, read_only=True) as session:
            job = await session.get(Job, job_id)
    if job is None or job.lease_owner != ctx.owner:
        return
    status = JobStatus(job.status)
    if job.cancel_requested_at is not None and status not in TERMINAL:
        await cancel_requested(ctx, job)
    elif status is JobStatus.SCHEDULED:
        await start_scheduled(ctx, job_id)
        await dispatch(ctx, job_id)
    elif status is JobStatus.PENDING and job.pikcel_job_id is None:
        await dispatch(ctx, job_id)
    elif status in (JobStatus.PENDING, JobStatus.PROCESSING):
        await poll(ctx, job)
    elif status is JobStatus.COMPLETED and job.output_key is None and job.remote_output_url:
        await copy_output(ctx, job)
    else:  # nothing left to do: stop being due
        async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner) as (_, row):
            row.next_attempt_at = None


async def start_scheduled(ctx: WorkerContext, job_id: str) -> None:
    async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner, release=False) as (s, job):
        if job.status == JobStatus.SCHEDULED:
            await change_status(s, job, JobStatus.PENDING, data={"via": "schedule"})


async def dispatch(ctx: WorkerContext, job_id: str) -> None:
    async with unit_of_work(ctx.sessions, read_only=True) as session:
        job = await session.get(Job, job_id)
    if job is None or job.status != JobStatus.PENDING or job.pikcel_job_id is not None:
        return
    try:
        with upstream_call("dispatch"):
            remote = await ctx.pikcel.dispatch(
                job.tool_id,
                job.input_image_url,
                parameters=job.parameters or None,
                template_id=job.template_id,
                priority=job.priority,
                webhook_url=ctx.webhook_url,
                metadata={"jobId": job.id, "shop": job.shop, **(job.meta or {})},
                idempotency_key=job.idempotency_key,
            )
    except PikcelError as exc:
        await dispatch_failed(ctx, job_id, exc)
        return
    now = utcnow()
    async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner) as (session, row):
        attempt = await repository.current_attempt(session, job=row)
        if row.idempotency_key != job.idempotency_key:
            return  # a retry started a new attempt meanwhile; this answer is stale
        if attempt is not None:
            attempt.pikcel_job_id = remote.id
            attempt.dispatched_at = now
        if row.status != JobStatus.PENDING:
            # Cancelled while the dispatch was in flight: stop the remote job too.
            await cancel_remote_quietly(ctx, remote.id)
            return
        row.pikcel_job_id = remote.id
        row.tool_name = row.tool_name or getattr(remote, "tool_name", None)
        row.dispatch_errors = 0
        row.error_message = None
        row.deadline_at = now + timedelta(seconds=ctx.settings.job_deadline_seconds)
        record_event(session, row, "dispatched", {"pikcelJobId": remote.id})
        await apply_remote(
            session, row, remote, via="dispatch", now=now,
            poll_initial=ctx.settings.poll_initial_seconds, poll_max=ctx.settings.poll_max_seconds,
        )  # fmt: skip


async def dispatch_failed(ctx: WorkerContext, job_id: str, exc: PikcelError) -> None:
    now = utcnow()
    async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner) as (session, row):
        if row.status != JobStatus.PENDING or row.pikcel_job_id is not None:
            return
        if exc.retryable:
            row.dispatch_errors += 1
            row.next_attempt_at = now + backoff(row.dispatch_errors, exc.retry_after)
            record_event(
                session, row, "waiting", {"reason": str(exc), "tries": row.dispatch_errors}
            )
            log.warning("dispatch of %s will be retried: %s", job_id, exc)
            return
        await fail(session, row, str(exc), now=now)


async def fail(session: AsyncSession, job: Job, message: str, *, now: datetime) -> None:
    attempt = await repository.current_attempt(session, job=job)
    await change_status(
        session, job, JobStatus.FAILED,
        fields={"error_message": message, "completed_at": now, "next_attempt_at": None},
    )  # fmt: skip
    if attempt is not None:
        attempt.status = JobStatus.FAILED
        attempt.error_message = message
        attempt.finished_at = now


async def poll(ctx: WorkerContext, job: DueJob) -> None:
    assert job.pikcel_job_id is not None
    now = utcnow()
    if job.deadline_at is not None and now > job.deadline_at:
        await cancel_remote_quietly(ctx, job.pikcel_job_id)
        minutes = round(ctx.settings.job_deadline_seconds / 60)
        async with owned_job(ctx.sessions, job_id=job.id, owner=ctx.owner) as (session, row):
            if JobStatus(row.status) not in TERMINAL:
                await fail(
                    session,
                    row,
                    f"PikcelAI did not finish this job within {minutes} minutes",
                    now=now,
                )
        return
    try:
        with upstream_call("poll"):
            remote = await ctx.pikcel.get_job(job.pikcel_job_id)
    except PikcelNotFound:
        async with owned_job(ctx.sessions, job_id=job.id, owner=ctx.owner) as (session, row):
            if JobStatus(row.status) not in TERMINAL:
                await fail(session, row, "PikcelAI no longer knows this job", now=now)
        return
    except PikcelError as exc:
        async with owned_job(ctx.sessions, job_id=job.id, owner=ctx.owner) as (session, row):
            row.poll_interval_seconds = min(
                ctx.settings.poll_max_seconds, max(row.poll_interval_seconds * 2, 1)
            )
            row.next_attempt_at = now + backoff(
                1, max(row.poll_interval_seconds, exc.retry_after or 0)
            )
        return
    seen = None
    if job.pikcel_job_id == remote.id and only_reschedules(job.status, job.progress, remote):
        seen = Seen(job.status, job.progress, job.poll_interval_seconds)
    await poll_writes(ctx).submit(Polled(job.id, remote, seen))


@dataclass(frozen=True)
class Seen:
    """An active row as the claim leased it."""

    status: str
    progress: int
    interval: float


@dataclass(frozen=True)
class Polled:
    job_id: str
    remote: RemoteJob
    # Given when the answer only reschedules the row as the claim saw it: it is then
    # written by a compare-and-set on that state, with no read first.
    seen: Seen | None = None


def poll_writes(ctx: WorkerContext) -> GroupCommit[Polled, None]:
    """The worker's polls answer in a steady stream: their results are written many per
    transaction (`db.group_commit`), each still a compare-and-set on our lease."""
    writer = ctx.group_commits.get("polls")
    if writer is None:
        writer = GroupCommit(
            ctx.sessions, partial(write_polls, ctx=ctx), name="poll-results",
            linger=POLL_WRITE_LINGER_SECONDS,
        )  # fmt: skip
        ctx.group_commits["polls"] = writer
    return writer


JOBS = table_of(Job)
# "Still working", as the claim saw the row: next poll time, lease given back.
RESCHEDULE_AS_SEEN = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("b_id"), JOBS.c.lease_owner == bindparam("b_owner"),
        JOBS.c.status == bindparam("b_status"), JOBS.c.progress == bindparam("b_progress"),
        JOBS.c.pikcel_job_id == bindparam("b_remote"),
        JOBS.c.poll_interval_seconds == bindparam("b_seen_interval"),
    )
    .values(poll_interval_seconds=bindparam("b_interval"), next_attempt_at=bindparam("b_next"),
            lease_owner=None, lease_expires_at=None)
)  # fmt: skip


async def write_polls(
    session: AsyncSession, polled: list[Polled], *, ctx: WorkerContext
) -> list[Exception | None]:
    """Most answers only say "still working" about a row as the claim saw it: those are
    written by one compare-and-set statement for the batch, with nothing read first.
    Rows that changed meanwhile (a webhook), and every other answer, are locked, checked
    to be still ours and written from their current state (`write_checked`)."""
    conn = await session.connection()
    now = utcnow()
    results: list[Exception | None] = [None] * len(polled)
    rest = dict(enumerate(polled))
    params = {n: _reschedule(p, p.seen, ctx, now) for n, p in rest.items() if p.seen}
    if params:
        # Rows in id order, as every batch writer locks them: no deadlock between them.
        ordered = sorted(params.values(), key=lambda row: str(row["b_id"]))
        written = await conn.execute(RESCHEDULE_AS_SEEN, ordered)
        if written.rowcount == len(params):
            done = set(params)
        else:  # which ones: ours carry our next poll time and no lease
            look = select(JOBS.c.id, JOBS.c.lease_owner, JOBS.c.next_attempt_at).where(
                JOBS.c.id.in_({row["b_id"] for row in params.values()})
            )
            now_rows = {row.id: row for row in await conn.execute(look)}
            done = {
                n for n, mine in params.items()
                if (row := now_rows.get(mine["b_id"])) is not None and row.lease_owner is None
                and row.next_attempt_at == mine["b_next"]
            }  # fmt: skip
        rest = {n: p for n, p in rest.items() if n not in done}
    if rest:
        await write_checked(session, rest, results, ctx=ctx, now=now)
    return results


def _reschedule(p: Polled, seen: Seen, ctx: WorkerContext, now: datetime) -> dict[str, object]:
    """Parameters of `RESCHEDULE_AS_SEEN` for answer `p` about the row in state `seen`."""
    interval = next_poll_delay(
        seen.interval, changed=False,
        initial=ctx.settings.poll_initial_seconds, cap=ctx.settings.poll_max_seconds,
    )  # fmt: skip
    return {
        "b_id": p.job_id, "b_owner": ctx.owner, "b_status": seen.status,
        "b_progress": seen.progress, "b_remote": p.remote.id,
        "b_seen_interval": seen.interval, "b_interval": interval,
        "b_next": now + timedelta(seconds=interval),
    }  # fmt: skip


async def write_checked(
    session: AsyncSession, polled: dict[int, Polled], results: list[Exception | None], *,
    ctx: WorkerContext, now: datetime,
) -> None:  # fmt: skip
    """Lock the rows, check each is still leased by us, then write each answer from the
    row's current state: "still working" by one Core statement for all, the rest (a
    status move, more progress, another remote job) through the state machine."""
    conn = await session.connection()
    ids = sorted({p.job_id for p in polled.values()})
    look = (
        select(JOBS.c.id, JOBS.c.lease_owner, JOBS.c.status, JOBS.c.progress,
               JOBS.c.pikcel_job_id, JOBS.c.poll_interval_seconds)
        .where(JOBS.c.id.in_(ids)).order_by(JOBS.c.id).with_for_update()
    )  # fmt: skip
    found = {row.id: row for row in await conn.execute(look)}
    quiet: list[dict[str, object]] = []
    busy: dict[int, Polled] = {}
    for n, p in polled.items():
        row = found.get(p.job_id)
        if row is None or row.lease_owner != ctx.owner:
            results[n] = LeaseLost(p.job_id)
        elif row.pikcel_job_id == p.remote.id and only_reschedules(
            row.status, row.progress, p.remote
        ):
            seen = Seen(row.status, row.progress, row.poll_interval_seconds)
            quiet.append(_reschedule(p, seen, ctx, now))
        else:
            busy[n] = p
    if quiet:  # these rows are locked now: the compare-and-set holds
        await conn.execute(RESCHEDULE_AS_SEEN, quiet)
    if busy:
        await write_news(session, busy, ctx=ctx, now=now)


async def write_news(
    session: AsyncSession, busy: dict[int, Polled], *, ctx: WorkerContext, now: datetime
) -> None:
    """Poll answers that change a row (already locked and checked to be ours)."""
    stmt = select(Job).where(Job.id.in_(sorted({p.job_id for p in busy.values()})))
    rows = {row.id: row for row in (await session.execute(stmt)).scalars()}
    news = [(rows[p.job_id], p.remote) for p in busy.values()]
    async with batch_of_changes(session, news):
        for row, remote in news:
            if row.pikcel_job_id == remote.id:  # else a retry replaced the remote job
                await apply_remote(
                    session, row, remote, via="poll", now=now,
                    poll_initial=ctx.settings.poll_initial_seconds,
                    poll_max=ctx.settings.poll_max_seconds,
                )  # fmt: skip
            row.lease_owner = None
            row.lease_expires_at = None


async def copy_output(ctx: WorkerContext, job: DueJob) -> None:
    """Keep our own copy of the output and a thumbnail; point the job at them."""
    assert job.remote_output_url is not None
    base = f"{job.shop}/{job.id}/{job.attempt}"
    try:
        data, _ = await fetch_bytes(ctx.http, job.remote_output_url, ctx.fetch_policy)
        ext = image_format(data).replace("jpeg", "jpg")
        await ctx.store.put(f"{base}/output.{ext}", data)
        await ctx.store.put(f"{base}/thumbnail.png", make_thumbnail(data))
    except (UnsafeURL, OSError, ValueError, PikcelError) as exc:
        await copy_failed(ctx, job.id, str(exc))
        return
    except Exception as exc:  # network errors from httpx and image decoding
        await copy_failed(ctx, job.id, f"{type(exc).__name__}: {exc}")
        return
    async with owned_job(ctx.sessions, job_id=job.id, owner=ctx.owner) as (session, row):
        if row.attempt != job.attempt:
            return
        row.output_key = f"{base}/output.{ext}"
        row.thumbnail_key = f"{base}/thumbnail.png"
        row.output_image_url = f"{ctx.settings.app_url}/api/jobs/{row.id}/output"
        row.thumbnail_url = f"{ctx.settings.app_url}/api/jobs/{row.id}/thumbnail"
        row.next_attempt_at = None
        record_event(session, row, "output", {"outputImageUrl": row.output_image_url})
        from pikcel_jobs.push.service import queue_after_completion

        await queue_after_completion(session, row)  # the shop's autoPush setting


async def copy_failed(ctx: WorkerContext, job_id: str, reason: str) -> None:
    now = utcnow()
    async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner) as (session, row):
        row.dispatch_errors += 1
        if row.dispatch_errors >= MAX_COPY_TRIES:
            # Give up copying; the provider's URL stays usable until it expires.
            row.output_image_url = row.remote_output_url
            row.next_attempt_at = None
            record_event(session, row, "output", {"error": reason, "gaveUp": True})
        else:
            row.next_attempt_at = now + backoff(row.dispatch_errors)
        log.warning("copying the output of %s failed: %s", job_id, reason)


async def cancel_requested(ctx: WorkerContext, job: DueJob) -> None:
    """A bulk cancel reached a job running upstream: cancel it there, then here."""
    remote = None
    if job.pikcel_job_id is not None:
        try:
            remote = await ctx.pikcel.cancel_job(job.pikcel_job_id)
        except PikcelNotFound:
            remote = None
        except PikcelError as exc:
            async with owned_job(ctx.sessions, job_id=job.id, owner=ctx.owner) as (_, row):
                row.next_attempt_at = utcnow() + backoff(2, exc.retry_after)
            return
    async with owned_job(ctx.sessions, job_id=job.id, owner=ctx.owner) as (session, row):
        row.cancel_requested_at = None
        if JobStatus(row.status) in TERMINAL:
            return
        if remote is not None and row.pikcel_job_id == remote.id:
            await apply_cancel_answer(session, row, remote, ctx.settings)
        else:
            await cancel_locally(session, row)


async def cancel_remote_quietly(ctx: WorkerContext, pikcel_job_id: str) -> None:
    try:
        await ctx.pikcel.cancel_job(pikcel_job_id)
    except PikcelError as exc:
        log.warning("cancelling remote job %s failed: %s", pikcel_job_id, exc)
