"""The global cap on PikcelAI requests (DESIGN §2), shared by the workers that run.

Each worker process keeps a row in `worker_processes` fresh and paces its own limiter at
`UPSTREAM_RPS / live workers`, so together they stay under the cap with no database
round trip per request. A row not refreshed for `LIVE_SECONDS` no longer counts (a
killed worker); a worker that stops deletes its row. A worker joining others sends
nothing until each of them has had a refresh to count it and lower its own share, so
the sum stays under the cap while workers come and go; one that leaves or dies only
leaves capacity unused until the next refresh. Web processes are not members: their
calls (a merchant's "sync now" or cancel) are few and stay outside the shares."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.pikcel.limiter import RateLimiter
from pikcel_jobs.worker.models import WorkerProcess

log = logging.getLogger("pikcel_jobs.worker")
REFRESH_SECONDS = 1.0
LIVE_SECONDS = 3 * REFRESH_SECONDS
FORGET_AFTER = timedelta(days=1)  # rows of workers long gone are deleted


async def live_workers(session: AsyncSession, *, now: datetime | None = None) -> int:
    since = (now or utcnow()) - timedelta(seconds=LIVE_SECONDS)
    return int(
        await session.scalar(select(func.count()).where(WorkerProcess.seen_at > since)) or 0
    )


class Membership:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        owner: str,
        limiter: RateLimiter | None,
        cap: float,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.owner = owner
        self.limiter = limiter
        self.cap = cap
        self.refresh_seconds = refresh_seconds
        self.live = 1
        self.joined_at = utcnow()

    @property
    def share(self) -> float:
        return self.cap / self.live

    async def run(self) -> None:
        """Join, then refresh until cancelled (the worker's own task)."""
        if self.limiter is not None:
            self.limiter.hold()
        try:
            while True:
                try:
                    others = await self.beat()
                    break
                except Exception:  # the database is away: nothing is sent meanwhile
                    log.warning(
                        "joining the workers failed (is the database migrated? 'pikcel-jobs "
                        "migrate'); nothing is sent to PikcelAI until it works", exc_info=True,
                    )  # fmt: skip
                    await asyncio.sleep(self.refresh_seconds)
            if others:
                await self.wait_until_counted()
                await self.beat()
        finally:
            if self.limiter is not None:
                self.limiter.release()
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.beat()
            except Exception:  # keep the last share; the next beat tries again
                log.warning("refreshing the worker row failed", exc_info=True)

    async def wait_until_counted(self) -> None:
        """Until every other live worker has refreshed since we joined (each refresh
        counts the live rows after writing its own): then all of them count us. One
        that does not refresh within LIVE_SECONDS stops counting, and stops sending."""
        deadline = time.monotonic() + LIVE_SECONDS + self.refresh_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(self.refresh_seconds / 4)
            since = utcnow() - timedelta(seconds=LIVE_SECONDS)
            async with unit_of_work(self.sessions, read_only=True) as session:
                behind = await session.scalar(
                    select(func.count()).where(
                        WorkerProcess.id != self.owner, WorkerProcess.seen_at > since,
                        WorkerProcess.seen_at <= self.joined_at,
                    )
                )
            if not behind:
                return

    async def beat(self) -> int:
        """Refresh our row, count the live workers, pace the limiter at our share and
        let it grant until shortly before the others would stop counting us; returns
        how many others are live."""
        started = time.monotonic()
        now = utcnow()
        inserted = False
        async with unit_of_work(self.sessions) as session:
            touched = await session.execute(
                update(WorkerProcess).where(WorkerProcess.id == self.owner).values(seen_at=now)
            )
            if not getattr(touched, "rowcount", 0):
                session.add(WorkerProcess(
                    id=self.owner, host=socket.gethostname()[:255], pid=os.getpid(),
                    started_at=now, seen_at=now,
                ))  # fmt: skip
                await session.execute(
                    delete(WorkerProcess).where(WorkerProcess.seen_at < now - FORGET_AFTER)
                )
                await session.flush()
                inserted = True
            live = await live_workers(session, now=now)
        if inserted:  # committed: a refresh that starts after this counts us
            self.joined_at = utcnow()
        previous, self.live = self.live, max(1, live)
        changed = self.live != previous
        if self.limiter is not None:
            self.limiter.set_rate(self.share)
            self.limiter.renew(started + LIVE_SECONDS - self.refresh_seconds)
        if changed:
            log.info("%d worker(s) live: this one sends up to %.1f requests/s to PikcelAI",
                     self.live, self.share)  # fmt: skip
        return self.live - 1

    async def leave(self) -> None:
        async with unit_of_work(self.sessions) as session:
            await session.execute(delete(WorkerProcess).where(WorkerProcess.id == self.owner))
