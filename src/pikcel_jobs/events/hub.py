"""One hub per web process: reads new rows of the `job_events` outbox and fans them out
to that process's SSE connections, shop by shop.

The outbox is the source of truth; notifications only wake the hub (PostgreSQL
`NOTIFY` from a trigger, so any process's commit wakes every hub; an in-process poke
for SQLite) and a short periodic read catches anything else. PostgreSQL hands out ids
before commit, so a lower id can become visible after a higher one: the hub remembers
the ids it skipped over and re-reads just those for a while, delivering each id once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobOut

log = logging.getLogger("pikcel_jobs.events")
GAP_GRACE_SECONDS = 30.0
READ_BATCH = 2000
QUEUE_LIMIT = 2000
MIN_READ_GAP_SECONDS = 0.02
SQLITE_LISTENING_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Message:
    id: int
    shop: str
    event: str  # SSE event name: job | bulk
    data: str  # JSON text

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: {self.event}\ndata: {self.data}\n\n".encode()


class Subscription:
    def __init__(self, hub: EventHub, shop: str) -> None:
        self.hub = hub
        self.shop = shop
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False

    def put(self, message: Message) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A stuck client: end its stream; it reconnects with Last-Event-ID.
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    def close(self) -> None:
        self.hub.unsubscribe(self)


async def messages_for(session: AsyncSession, events: list[JobEvent]) -> list[Message]:
    """Turn outbox rows into SSE messages, with the job's current state attached."""
    job_ids = {e.job_id for e in events if e.kind != "bulk"}
    jobs: dict[str, dict[str, Any]] = {}
    if job_ids:
        rows = (await session.execute(select(Job).where(Job.id.in_(job_ids)))).scalars().all()
        jobs = {j.id: JobOut.model_validate(j).model_dump(by_alias=True, mode="json") for j in rows}
    out = []
    for e in events:
        if e.kind == "bulk":
            payload: dict[str, Any] = {
                "id": e.id,
                "operationId": e.job_id,
                "status": e.status,
                **e.data,
            }
            out.append(Message(e.id, e.shop, "bulk", json.dumps(payload)))
            continue
        job = jobs.get(e.job_id)
        payload = {
            "id": e.id, "jobId": e.job_id, "kind": e.kind, "status": e.status, "data": e.data,
            "progress": job["progress"] if job else None, "job": job,
        }  # fmt: skip
        out.append(Message(e.id, e.shop, "job", json.dumps(payload, default=str)))
    return out


async def replay(
    sessions: async_sessionmaker[AsyncSession], *, shop: str, after: int, limit: int = 1000
) -> list[Message]:
    """Events of one shop after `after` (a reconnecting client's Last-Event-ID)."""
    async with unit_of_work(sessions, read_only=True) as session:
        stmt = (
            select(JobEvent)
            .where(JobEvent.shop == shop, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(limit)
        )
        events = list((await session.execute(stmt)).scalars().all())
        return await messages_for(session, events)


class EventHub:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        database_url: str,
        poll_seconds: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.database_url = database_url
        self.poll_seconds = poll_seconds
        self.subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self.wake = asyncio.Event()
        self.cursor = 0  # highest event id read
        self.gaps: dict[int, float] = {}  # ids below the cursor not visible yet -> since
        self.tasks: list[asyncio.Task[None]] = []
        self.connections = 0

    # -- subscriptions -----------------------------------------------------------------
    def subscribe(self, shop: str) -> Subscription:
        sub = Subscription(self, shop)
        self.subscribers[shop].add(sub)
        self.connections += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self.subscribers.get(sub.shop)
        if subs and sub in subs:
            subs.discard(sub)
            self.connections -= 1
            if not subs:
                del self.subscribers[sub.shop]

    def poke(self) -> None:
        """Something was committed in this process: read the outbox now."""
        self.wake.set()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        async with unit_of_work(self.sessions, read_only=True) as session:
            self.cursor = int((await session.execute(select(func.max(JobEvent.id)))).scalar() or 0)
        self.tasks.append(asyncio.create_task(self._read_loop(), name="event-hub"))
        if self.database_url.startswith("postgresql"):
            self.tasks.append(asyncio.create_task(self._listen_loop(), name="event-hub-listen"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for subs in list(self.subscribers.values()):
            for sub in list(subs):
                sub.queue.put_nowait(None)

    # -- reading -----------------------------------------------------------------------
    def _poll_interval(self) -> float:
        # SQLite has no NOTIFY: a commit in another process (a worker) is only seen by
        # reading, so with someone listening the read comes often (an empty read is an
        # index probe). PostgreSQL's trigger wakes every hub; its read is a safety net.
        if self.subscribers and not self.database_url.startswith("postgresql"):
            return SQLITE_LISTENING_POLL_SECONDS
        return self.poll_seconds

    async def _read_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._poll_interval())
            self.wake.clear()
            try:
                while await self.read_once() >= READ_BATCH:
                    pass
            except Exception:
                log.exception("reading the event outbox failed; retrying")
                await asyncio.sleep(1)
            # Commits that land meanwhile set `wake` again: under a stream of writes
            # (a thousand webhooks a second) one read serves many of them.
            await asyncio.sleep(MIN_READ_GAP_SECONDS)

    async def read_once(self) -> int:
        """Deliver events above the high-water mark, and any that filled an earlier gap.
        With nobody listening only ids are read, to keep the gap bookkeeping."""
        listening = bool(self.subscribers)
        columns = (JobEvent,) if listening else (JobEvent.id,)
        async with unit_of_work(self.sessions, read_only=True) as session:
            stmt = (
                select(*columns)
                .where(JobEvent.id > self.cursor)
                .order_by(JobEvent.id)
                .limit(READ_BATCH)
            )
            new = list((await session.execute(stmt)).scalars().all())
            late: list[Any] = []
            if self.gaps:
                waiting = sorted(self.gaps)[:READ_BATCH]
                found = select(*columns).where(JobEvent.id.in_(waiting))
                late = list((await session.execute(found)).scalars().all())
            if not listening:
                self._advance(new, late)
                return len(new)
            events = sorted(late + new, key=lambda e: e.id)
            wanted = [e for e in events if e.shop in self.subscribers]
            messages = await messages_for(session, wanted) if wanted else []
        for message in messages:
            for sub in list(self.subscribers.get(message.shop, ())):
                sub.put(message)
        self._advance([e.id for e in new], [e.id for e in late])
        return len(new)

    def _advance(self, new: list[int], late: list[int]) -> None:
        """`cursor` is the highest id read; ids below it not seen yet are gaps, re-read
        until they appear or GAP_GRACE_SECONDS pass (a rolled-back insert never does)."""
        now = time.monotonic()
        for found in late:
            self.gaps.pop(found, None)
        if new:
            seen = set(new)
            for missing in range(self.cursor + 1, new[-1]):
                if missing not in seen:
                    self.gaps.setdefault(missing, now)
            self.cursor = new[-1]
        for gap, since in list(self.gaps.items()):
            if now - since > GAP_GRACE_SECONDS:
                del self.gaps[gap]

    async def _listen_loop(self) -> None:
        import psycopg

        url = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute("LISTEN job_events")
                    self.wake.set()  # catch up on anything missed while disconnected
                    async for _ in conn.notifies():
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(1)
