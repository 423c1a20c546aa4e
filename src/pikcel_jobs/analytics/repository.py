"""Queries behind the analytics: per-day and per-tool totals from `job_rollups` (a few
hundred rows whatever the number of jobs), and the median processing time per tool,
which needs the rows themselves."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.analytics.rollups import JobRollup, history_status
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.states import JobStatus


async def daily_by_status(
    session: AsyncSession, *, shop: str, first_day: date, last_day: date
) -> list[tuple[date, str, int, int]]:
    """(day, status, jobs, credits) for each day and status with jobs in the range."""
    stmt = (
        select(
            JobRollup.day,
            history_status(),
            func.sum(JobRollup.jobs),
            func.sum(JobRollup.credits),
        )
        .where(JobRollup.shop == shop, JobRollup.day >= first_day, JobRollup.day <= last_day)
        .group_by(JobRollup.day, history_status())
    )
    rows = (await session.execute(stmt)).all()
    return [(d, str(s), int(n or 0), int(c or 0)) for d, s, n, c in rows if n]


async def by_tool_and_status(
    session: AsyncSession, *, shop: str, first_day: date, last_day: date
) -> list[tuple[str, str, int, int, int, int]]:
    """(tool, status, jobs, credits, processing ms sum, processing ms count)."""
    stmt = (
        select(
            JobRollup.tool_id,
            history_status(),
            func.sum(JobRollup.jobs),
            func.sum(JobRollup.credits),
            func.sum(JobRollup.time_ms_sum),
            func.sum(JobRollup.time_ms_count),
        )
        .where(JobRollup.shop == shop, JobRollup.day >= first_day, JobRollup.day <= last_day)
        .group_by(JobRollup.tool_id, history_status())
    )
    rows = (await session.execute(stmt)).all()
    return [
        (str(t), str(s), int(n or 0), int(c or 0), int(ms or 0), int(ms_n or 0))
        for t, s, n, c, ms, ms_n in rows
        if n
    ]


def _timed_jobs(shop: str, start: datetime | None, end: datetime | None) -> ColumnElement[bool]:
    """Completed jobs created in [start, end) (either end open) that report a time."""
    conditions = [
        Job.shop == shop,
        Job.status == JobStatus.COMPLETED.value,
        Job.processing_time_ms.is_not(None),
    ]
    if start is not None:
        conditions.append(Job.created_at >= start)
    if end is not None:
        conditions.append(Job.created_at < end)
    return and_(*conditions)


async def median_time_per_tool(
    session: AsyncSession, *, shop: str, start: datetime | None = None, end: datetime | None = None
) -> dict[str, tuple[float, str | None]]:
    """tool → (median processing ms of its completed jobs, its display name); without
    `start`/`end`, over all the shop's jobs (the tools page).

    PostgreSQL computes `percentile_cont(0.5)` in one pass; SQLite has no percentile
    aggregate, so rows are numbered per tool by time and the middle one (or the mean of
    the middle two, as percentile_cont does) is kept."""
    where = _timed_jobs(shop, start, end)
    if session.get_bind().dialect.name == "postgresql":
        median = func.percentile_cont(0.5).within_group(Job.processing_time_ms)
        stmt = (
            select(Job.tool_id, median, func.max(Job.tool_name)).where(where).group_by(Job.tool_id)
        )
    else:
        ranked = (
            select(
                Job.tool_id.label("tool_id"),
                Job.tool_name.label("tool_name"),
                Job.processing_time_ms.label("ms"),
                func.row_number()
                .over(partition_by=Job.tool_id, order_by=Job.processing_time_ms)
                .label("rn"),
                func.count().over(partition_by=Job.tool_id).label("n"),
            )
            .where(where)
            .subquery()
        )
        # Integer division: n odd → the same middle row twice; n even → the two middles.
        low = (ranked.c.n + 1) // 2
        high = (ranked.c.n + 2) // 2
        stmt = (
            select(ranked.c.tool_id, func.avg(ranked.c.ms), func.max(ranked.c.tool_name))
            .where(ranked.c.rn.in_([low, high]))
            .group_by(ranked.c.tool_id)
        )
    rows = (await session.execute(stmt)).all()
    return {str(t): (float(m), name) for t, m, name in rows if m is not None}
