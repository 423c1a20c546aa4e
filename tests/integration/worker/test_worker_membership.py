"""The global upstream cap shared by live workers (`worker/membership.py`): each worker
paces its limiter at the cap divided by the live workers; a stale row stops counting; a
worker joining others sends nothing until they have had a refresh to count it."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.pikcel.limiter import RateLimiter
from pikcel_jobs.worker.membership import LIVE_SECONDS, Membership, live_workers
from pikcel_jobs.worker.models import WorkerProcess

Sessions = async_sessionmaker[AsyncSession]
CAP = 60.0


def member(sessions: Sessions, refresh: float = 1.0) -> Membership:
    return Membership(
        sessions, owner=f"test:{secrets.token_hex(4)}", limiter=RateLimiter(CAP), cap=CAP,
        refresh_seconds=refresh,
    )  # fmt: skip


async def live_now(sessions: Sessions) -> int:
    """Workers live in the shared database before the test's own (other fixtures may
    run one)."""
    async with unit_of_work(sessions, read_only=True) as session:
        return await live_workers(session)


async def test_each_worker_paces_at_its_share_of_the_cap(sessions: Sessions) -> None:
    base = await live_now(sessions)
    a, b, c = member(sessions), member(sessions), member(sessions)
    try:
        assert await a.beat() == base
        await b.beat()
        assert await c.beat() == base + 2
        await a.beat()
        assert a.live == base + 3
        assert a.limiter is not None and a.limiter.rate == pytest.approx(CAP / (base + 3))
        # One leaves: the others take its share at their next refresh.
        await c.leave()
        await a.beat()
        assert a.limiter.rate == pytest.approx(CAP / (base + 2))
        # One dies (no refresh for longer than LIVE_SECONDS): it stops counting.
        async with unit_of_work(sessions) as session:
            row = await session.get(WorkerProcess, b.owner)
            assert row is not None
            row.seen_at = utcnow() - timedelta(seconds=LIVE_SECONDS + 1)
        await a.beat()
        assert a.live == base + 1
        assert a.limiter.rate == pytest.approx(CAP / (base + 1))
    finally:
        async with unit_of_work(sessions) as session:
            await session.execute(
                delete(WorkerProcess).where(WorkerProcess.id.in_([a.owner, b.owner, c.owner]))
            )


async def test_a_joining_worker_waits_until_the_others_count_it(sessions: Sessions) -> None:
    base = await live_now(sessions)
    first, joiner = member(sessions, refresh=0.3), member(sessions, refresh=0.3)
    await first.beat()
    assert joiner.limiter is not None
    running = asyncio.create_task(joiner.run())
    try:
        sent = asyncio.create_task(joiner.limiter.acquire_token())
        await asyncio.sleep(0.2)  # less than a refresh and a half: still held
        assert not sent.done()
        await first.beat()  # the first worker's refresh counts the joiner
        assert first.live == base + 2
        await asyncio.wait_for(sent, 2)
        assert joiner.live == base + 2
        assert joiner.limiter.rate == pytest.approx(CAP / joiner.live)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await joiner.leave()
        await first.leave()


async def test_a_worker_alone_sends_at_once(sessions: Sessions) -> None:
    alone = member(sessions)
    if await live_now(sessions):
        pytest.skip("another worker is live in the shared database")
    assert alone.limiter is not None
    running = asyncio.create_task(alone.run())
    try:
        await asyncio.wait_for(alone.limiter.acquire_token(), 0.5)
        assert alone.limiter.rate == pytest.approx(CAP)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await alone.leave()
