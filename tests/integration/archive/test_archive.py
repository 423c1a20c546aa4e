"""Retention on 100,000 jobs: old finished jobs and their images go in small batches,
recent and active ones stay, statistics count what is left, analytics keep history,
and an interrupted run loses nothing."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.analytics.repository import daily_by_status
from pikcel_jobs.archive.service import archive, parse_age
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.schemas import JobFilter
from pikcel_jobs.storage.store import LocalImageStore
from tests.support.seeding import seed_jobs

OLD = int(os.environ.get("PIKCEL_ARCHIVE_JOBS", "100000"))


async def count(sessions: async_sessionmaker[AsyncSession], *where: object) -> int:
    async with unit_of_work(sessions, read_only=True) as session:
        return int(
            (
                await session.execute(select(func.count()).select_from(Job).where(*where))
            ).scalar_one()
        )


async def test_archive_100000_old_jobs(
    sessions: async_sessionmaker[AsyncSession], shop: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    old_start = now - timedelta(days=200)
    await seed_jobs(sessions, shop, OLD, status="completed", start=old_start)
    recent = await seed_jobs(sessions, shop, 50, status="completed", start=now - timedelta(days=2))
    stale_active = await seed_jobs(sessions, shop, 5, status="processing", start=old_start)
    store = LocalImageStore(tmp_path)
    async with unit_of_work(sessions, read_only=True) as session:
        sample = (
            (
                await session.execute(
                    select(Job.id)
                    .where(
                        Job.shop == shop,
                        Job.status == "completed",
                        Job.created_at < now - timedelta(days=100),
                    )
                    .limit(3)
                )
            )
            .scalars()
            .all()
        )
    for job_id in [*sample, recent[0]]:
        await store.put(f"{shop}/{job_id}/1/output.png", b"png")
    async with unit_of_work(sessions, read_only=True) as session:
        history_before = sum(n for *_, n, _ in await daily_by_status(
            session, shop=shop, first_day=old_start.date(), last_day=now.date()))  # fmt: skip

    # An interrupted run: cancelled after its first batches, then run again.
    task = asyncio.create_task(
        archive(sessions, store, older_than=parse_age("90d"), batch_size=1000)
    )
    while await count(sessions, Job.shop == shop) > OLD + 55 - 3000:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    seen = []
    result = await archive(
        sessions, store, older_than=parse_age("90d"), batch_size=1000, progress=seen.append
    )

    assert await count(sessions, Job.shop == shop) == 55
    assert {j for j in recent} | set(stale_active) == set(await _ids(sessions, shop))
    assert result.jobs > 0 and seen == sorted(seen)
    async with unit_of_work(sessions, read_only=True) as session:
        orphans = (
            await session.execute(
                select(func.count()).select_from(JobAttempt).where(JobAttempt.job_id.in_(sample))
            )
        ).scalar_one()
        events = (
            await session.execute(
                select(func.count()).select_from(JobEvent).where(JobEvent.job_id.in_(sample))
            )
        ).scalar_one()
        stats = await service.job_stats(session, shop=shop, job_filter=JobFilter())
        page = await service.list_jobs(session, shop=shop, job_filter=JobFilter())
        history_after = sum(n for *_, n, _ in await daily_by_status(
            session, shop=shop, first_day=old_start.date(), last_day=now.date()))  # fmt: skip
    assert orphans == 0 and events == 0
    assert stats.total == 55 and stats.completed == 50 and page.total == 55
    assert history_after == history_before == OLD + 55  # analytics keep the history
    assert not (tmp_path / shop / sample[0]).exists()
    assert (tmp_path / shop / recent[0] / "1" / "output.png").exists()


async def _ids(sessions: async_sessionmaker[AsyncSession], shop: str) -> list[str]:
    async with unit_of_work(sessions, read_only=True) as session:
        return list((await session.execute(select(Job.id).where(Job.shop == shop))).scalars().all())


def test_age_parsing() -> None:
    assert parse_age("90d") == timedelta(days=90) and parse_age("12h") == timedelta(hours=12)
    for bad in ("90", "d", "0d", "-1d", "3w", ""):
        try:
            parse_age(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
