"""Queries on jobs. Every function takes the shop: another shop's job does not exist."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, time

from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.analytics.rollups import JobRollup
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.schemas import Cursor, JobFilter
from pikcel_jobs.jobs.states import JobStatus


async def get(
    session: AsyncSession, *, shop: str, job_id: str, for_update: bool = False
) -> Job | None:
    stmt = select(Job).where(Job.shop == shop, Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_by_pikcel_id(
    session: AsyncSession, *, pikcel_job_id: str, for_update: bool = False
) -> Job | None:
    """Webhooks name the remote job only; the row found carries its own shop."""
    stmt = select(Job).where(Job.pikcel_job_id == pikcel_job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def filtered(shop: str, job_filter: JobFilter) -> Select[Job]:
    """SELECT of the shop's jobs matching the filter (shared by list, stats, bulk, export)."""
    stmt = select(Job).where(Job.shop == shop)
    f = job_filter
    if f.status:
        stmt = stmt.where(Job.status.in_([s.value for s in f.status]))
    if f.tool_id:
        stmt = stmt.where(Job.tool_id == f.tool_id)
    if f.product_id:
        stmt = stmt.where(Job.product_id == f.product_id)
    if f.batch_id:
        stmt = stmt.where(Job.batch_id == f.batch_id)
    if f.from_:
        stmt = stmt.where(Job.created_at >= f.from_)
    if f.to:
        stmt = stmt.where(Job.created_at <= f.to)
    for key, value in f.meta.items():
        stmt = stmt.where(Job.meta[key].as_string() == value)
    if f.q:
        pattern = (
            "%" + f.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        stmt = stmt.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (Job.tool_name, Job.tool_id, Job.product_title, Job.product_id)
                ),
                Job.id == f.q,
                Job.pikcel_job_id == f.q,
            )
        )
    return stmt


async def list_page(
    session: AsyncSession,
    *,
    shop: str,
    job_filter: JobFilter,
    cursor: Cursor | None,
    limit: int,
    offset: int | None = None,
) -> tuple[Sequence[Job], Cursor | None]:
    """Newest first, keyset on (created_at, id); offset only as a fallback."""
    stmt = filtered(shop, job_filter).order_by(Job.created_at.desc(), Job.id.desc())
    if cursor is not None:
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < (cursor.created_at, cursor.id))
    elif offset:
        stmt = stmt.offset(offset)
    rows = (await session.execute(stmt.limit(limit + 1))).scalars().all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = Cursor(created_at=last.created_at, id=last.id)
    return rows, next_cursor


def _rollup_servable(job_filter: JobFilter) -> bool:
    """Status, tool and whole-day date ranges can be answered from the rollups."""
    f = job_filter
    if f.product_id or f.batch_id or f.q or f.meta:
        return False
    return all(d is None or d.timetz() == time(0, tzinfo=d.tzinfo) for d in (f.from_, f.to))


def _rollup_query(shop: str, job_filter: JobFilter) -> Select[str, int, int, int, int]:
    f = job_filter
    stmt = select(
        JobRollup.status,
        func.coalesce(func.sum(JobRollup.jobs), 0),
        func.coalesce(func.sum(JobRollup.credits), 0),
        func.coalesce(func.sum(JobRollup.time_ms_sum), 0),
        func.coalesce(func.sum(JobRollup.time_ms_count), 0),
    ).where(JobRollup.shop == shop)
    if f.status:
        stmt = stmt.where(JobRollup.status.in_([s.value for s in f.status]))
    if f.tool_id:
        stmt = stmt.where(JobRollup.tool_id == f.tool_id)
    if f.from_:
        stmt = stmt.where(JobRollup.day >= f.from_.astimezone(UTC).date())
    if f.to:  # `to` at midnight: that whole day is excluded
        stmt = stmt.where(JobRollup.day < f.to.astimezone(UTC).date())
    return stmt.group_by(JobRollup.status)


async def aggregate_by_status(
    session: AsyncSession, *, shop: str, job_filter: JobFilter
) -> dict[str, tuple[int, int, int, int]]:
    """status → (jobs, credits, processing ms sum, processing ms count), in one query."""
    if _rollup_servable(job_filter):
        stmt = _rollup_query(shop, job_filter)
    else:
        sub = filtered(shop, job_filter).subquery()
        stmt = select(
            sub.c.status,
            func.count(),
            func.coalesce(func.sum(sub.c.credits_used), 0),
            func.coalesce(func.sum(sub.c.processing_time_ms), 0),
            func.count(sub.c.processing_time_ms),
        ).group_by(sub.c.status)
    result = await session.execute(stmt)
    return {
        str(status): (int(n), int(credits), int(ms), int(ms_n))
        for status, n, credits, ms, ms_n in result.all()
        if n
    }


# Filters the rollups cannot answer (metadata, free text, product, batch) count at
# most this many matches, so a broad search never scans a whole shop for its total.
COUNT_CAP = 10_000


async def count(session: AsyncSession, *, shop: str, job_filter: JobFilter) -> tuple[int, bool]:
    """(total, exact): exact from the rollups, else counted up to COUNT_CAP."""
    if _rollup_servable(job_filter):
        totals = await aggregate_by_status(session, shop=shop, job_filter=job_filter)
        live = {status.value for status in JobStatus}
        return sum(n for status, (n, *_) in totals.items() if status in live), True
    matches = filtered(shop, job_filter).with_only_columns(Job.id).limit(COUNT_CAP + 1)
    stmt = select(func.count()).select_from(matches.subquery())
    n = int((await session.execute(stmt)).scalar_one())
    return min(n, COUNT_CAP), n <= COUNT_CAP


CURRENT_ATTEMPTS = "current_attempts"  # session.info key: (job id, number) -> attempt


async def current_attempt(session: AsyncSession, *, job: Job) -> JobAttempt | None:
    preloaded: dict[tuple[str, int], JobAttempt] | None = session.info.get(CURRENT_ATTEMPTS)
    if preloaded is not None and (job.id, job.attempt) in preloaded:
        return preloaded[(job.id, job.attempt)]
    stmt = select(JobAttempt).where(JobAttempt.job_id == job.id, JobAttempt.number == job.attempt)
    return (await session.execute(stmt)).scalar_one_or_none()


async def preload_current_attempts(session: AsyncSession, jobs: Sequence[Job]) -> None:
    """Read the current attempt of many jobs at once (a batch about to change them)."""
    if not jobs:
        return
    wanted = {(job.id, job.attempt) for job in jobs}
    stmt = select(JobAttempt).where(JobAttempt.job_id.in_([job.id for job in jobs]))
    found = session.info.setdefault(CURRENT_ATTEMPTS, {})
    for attempt in (await session.execute(stmt)).scalars():
        if (attempt.job_id, attempt.number) in wanted:
            found[(attempt.job_id, attempt.number)] = attempt


async def attempt_by_pikcel_id(session: AsyncSession, *, pikcel_job_id: str) -> JobAttempt | None:
    stmt = select(JobAttempt).where(JobAttempt.pikcel_job_id == pikcel_job_id)
    return (await session.execute(stmt)).scalars().first()


async def attempts(session: AsyncSession, *, job_id: str) -> Sequence[JobAttempt]:
    stmt = select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
    return (await session.execute(stmt)).scalars().all()


async def events(
    session: AsyncSession, *, shop: str, job_id: str, limit: int = 200
) -> Sequence[JobEvent]:
    stmt = (
        select(JobEvent)
        .where(JobEvent.shop == shop, JobEvent.job_id == job_id)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()
