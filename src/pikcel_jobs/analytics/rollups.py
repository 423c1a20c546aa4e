"""Per-shop, per-day, per-tool, per-status counters kept in step with the jobs table.

Every change of a job's status, credits or processing time moves its contribution from
one rollup row to another in the same transaction, so shop-wide statistics and the
analytics charts read a few hundred rows instead of scanning millions of jobs. Rows
survive archiving, so history stays visible after old jobs are removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Date, Integer, String, func, literal_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from pikcel_jobs.db.base import Base

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pikcel_jobs.jobs.models import Job


# Archiving moves a job's contribution to "archived:<status>": shop statistics and list
# totals count live jobs only, while analytics (history) strips the prefix.
ARCHIVED_PREFIX = "archived:"


class JobRollup(Base):
    __tablename__ = "job_rollups"

    shop: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tool_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    time_ms_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    time_ms_count: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class Contribution:
    """What one job adds to the rollups."""

    shop: str
    day: date
    tool_id: str
    status: str
    credits: int
    time_ms: int | None

    @classmethod
    def of(cls, job: Job) -> Contribution:
        created: datetime = job.created_at
        return cls(
            job.shop,
            created.date(),
            job.tool_id,
            str(job.status),
            job.credits_used or 0,
            job.processing_time_ms,
        )


async def add(session: AsyncSession, c: Contribution, sign: int = 1) -> None:
    values = {
        "shop": c.shop,
        "day": c.day,
        "tool_id": c.tool_id,
        "status": c.status,
        "jobs": sign,
        "credits": sign * c.credits,
        "time_ms_sum": sign * (c.time_ms or 0),
        "time_ms_count": sign * (1 if c.time_ms is not None else 0),
    }
    await _upsert_many(session, [values])


async def move(session: AsyncSession, before: Contribution | None, after: Contribution) -> None:
    """Move a job's contribution; a no-op when nothing counted changed."""
    if before == after:
        return
    if before is not None:
        await add(session, before, -1)
    await add(session, after, 1)


async def add_rows(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Add pre-aggregated deltas (bulk paths: seeding, bulk actions)."""
    if rows:
        await _upsert_many(session, rows)


async def _upsert_many(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(JobRollup).values(rows)
    excluded = stmt.excluded
    table = JobRollup.__table__.c
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["shop", "day", "tool_id", "status"],
            set_={
                "jobs": table.jobs + excluded.jobs,
                "credits": table.credits + excluded.credits,
                "time_ms_sum": table.time_ms_sum + excluded.time_ms_sum,
                "time_ms_count": table.time_ms_count + excluded.time_ms_count,
            },
        )
    )


def history_status() -> Any:
    """The rollup status with archived jobs counted under their final status."""
    # Literal SQL (not bound parameters), so SELECT and GROUP BY are the same expression.
    return func.replace(
        JobRollup.status, literal_column(f"'{ARCHIVED_PREFIX}'"), literal_column("''")
    )
