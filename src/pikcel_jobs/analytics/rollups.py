"""Per-shop, per-day, per-tool, per-status counters kept in step with the jobs table.

Every change of a job's status, credits or processing time moves its contribution from
one rollup row to another in the same transaction, so shop-wide statistics and the
analytics charts read a few hundred rows instead of scanning millions of jobs. Rows
survive archiving, so history stays visible after old jobs are removed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Date, Integer, String, func, literal_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from pikcel_jobs.db.base import Base, table_of

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


SUMMED = "rollup_deltas"  # session.info key of the deltas `summed` is collecting
KEY = ("shop", "day", "tool_id", "status")
COUNTERS = ("jobs", "credits", "time_ms_sum", "time_ms_count")


@asynccontextmanager
async def summed(session: AsyncSession) -> AsyncIterator[None]:
    """Inside, moves are summed per rollup row and written by one statement at the end
    (a batch of webhooks moving hundreds of jobs between the same few rows)."""
    deltas: dict[tuple[str, date, str, str], list[int]] = {}
    session.info[SUMMED] = deltas
    try:
        yield
    finally:
        del session.info[SUMMED]
    await add_rows(session, [_row(key, sums) for key, sums in deltas.items() if any(sums)])


async def add(session: AsyncSession, c: Contribution, sign: int = 1) -> None:
    key = (c.shop, c.day, c.tool_id, c.status)
    sums = (sign, sign * c.credits, sign * (c.time_ms or 0), sign * (c.time_ms is not None))
    if (deltas := session.info.get(SUMMED)) is not None:
        row = deltas.setdefault(key, [0, 0, 0, 0])
        for i, value in enumerate(sums):
            row[i] += value
        return
    await _upsert_many(session, [_row(key, sums)])


def _row(key: tuple[str, date, str, str], sums: Sequence[int]) -> dict[str, object]:
    return dict(zip((*KEY, *COUNTERS), (*key, *sums), strict=True))


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
    # One cached statement run for each row (a multi-row VALUES would be compiled anew
    # for every size), on the table itself (the ORM bulk path costs more per row), in
    # key order, so concurrent transactions lock the same rows in the same order.
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = table_of(JobRollup)
    stmt = insert(table)
    excluded = stmt.excluded
    upsert = stmt.on_conflict_do_update(
        index_elements=["shop", "day", "tool_id", "status"],
        set_={name: table.c[name] + excluded[name] for name in COUNTERS},
    )
    await session.execute(upsert, sorted(rows, key=lambda r: tuple(str(r[k]) for k in KEY)))


def history_status() -> Any:
    """The rollup status with archived jobs counted under their final status."""
    # Literal SQL (not bound parameters), so SELECT and GROUP BY are the same expression.
    return func.replace(
        JobRollup.status, literal_column(f"'{ARCHIVED_PREFIX}'"), literal_column("''")
    )
