"""Retention: remove old finished jobs and their stored images in small batches.

Each batch is one short transaction (rows locked with SKIP LOCKED on PostgreSQL, so
workers are never held up for long); its files are removed after the commit, so an
interruption loses nothing that is still referenced. The rollups keep each archived
job under "archived:<status>", so analytics still show the history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.analytics import rollups
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.states import TERMINAL, PushStatus
from pikcel_jobs.storage.store import ImageStore
from pikcel_jobs.webhooks.models import WebhookReceipt

BUSY_PUSH = [PushStatus.QUEUED, PushStatus.UPLOADING, PushStatus.ATTACHED, PushStatus.REVERTING]
RECEIPT_DAYS = 14


def parse_age(text: str) -> timedelta:
    """'90d', '12h', '30m' → a timedelta; anything else is a clear error."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) < 1:
        raise ValueError("give an age like 90d, 12h or 30m")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def archivable(cutoff: datetime) -> Any:
    return (
        Job.created_at < cutoff,
        Job.status.in_([s.value for s in TERMINAL]),
        Job.push_status.not_in([s.value for s in BUSY_PUSH]),
        Job.lease_owner.is_(None),
    )


async def count_archivable(sessions: async_sessionmaker[AsyncSession], cutoff: datetime) -> int:
    async with unit_of_work(sessions, read_only=True) as session:
        stmt = select(func.count()).select_from(Job).where(*archivable(cutoff))
        return int((await session.execute(stmt)).scalar_one())


async def archive_batch(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[tuple[str, str]]:
    stmt = select(Job).where(*archivable(cutoff)).order_by(Job.created_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = list((await session.execute(stmt)).scalars().all())
    if not jobs:
        return []
    moves: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for job in jobs:
        for status, sign in ((job.status, -1), (rollups.ARCHIVED_PREFIX + job.status, 1)):
            total = moves[(job.shop, job.created_at.date(), job.tool_id, status)]
            total[0] += sign
            total[1] += sign * (job.credits_used or 0)
            if job.processing_time_ms is not None:
                total[2] += sign * job.processing_time_ms
                total[3] += sign
    await rollups.add_rows(session, [
        {"shop": shop, "day": day, "tool_id": tool, "status": status, "jobs": n,
         "credits": credits, "time_ms_sum": ms, "time_ms_count": timed}
        for (shop, day, tool, status), (n, credits, ms, timed) in moves.items()
    ])  # fmt: skip
    ids = [job.id for job in jobs]
    await session.execute(delete(JobEvent).where(JobEvent.job_id.in_(ids)))
    await session.execute(delete(JobAttempt).where(JobAttempt.job_id.in_(ids)))
    await session.execute(delete(Job).where(Job.id.in_(ids)))
    return [(job.shop, job.id) for job in jobs]


@dataclass
class ArchiveResult:
    jobs: int
    receipts: int


async def archive(
    sessions: async_sessionmaker[AsyncSession],
    store: ImageStore,
    *,
    older_than: timedelta,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> ArchiveResult:
    cutoff = utcnow() - older_than
    done = 0
    while True:
        async with unit_of_work(sessions) as session:
            removed = await archive_batch(session, cutoff, batch_size)
        for shop, job_id in removed:  # after the commit: never a row without its files
            await store.delete_prefix(f"{shop}/{job_id}")
        done += len(removed)
        if progress:
            progress(done)
        if len(removed) < batch_size:
            break
    async with unit_of_work(sessions) as session:
        old = utcnow() - timedelta(days=RECEIPT_DAYS)
        result = await session.execute(
            delete(WebhookReceipt).where(WebhookReceipt.received_at < old)
        )
    return ArchiveResult(jobs=done, receipts=int(getattr(result, "rowcount", 0) or 0))
