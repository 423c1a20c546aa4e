"""Claiming due rows with a lease, and writing back only while the lease is ours.

PostgreSQL: `FOR UPDATE SKIP LOCKED`, so any number of workers on any number of
machines take disjoint rows. SQLite: the same statement inside `BEGIN IMMEDIATE`
(the engine's default for writers), which serialises claimers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from pikcel_jobs.db.base import table_of, utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import Job

# Any mapped class with `id`, `lease_owner` and `lease_expires_at` columns.
Leased = Any


class LeaseLost(Exception):
    """Another worker (or an expiry) took the row; our result is not written."""


async def claim_due(
    sessions: async_sessionmaker[AsyncSession],
    *,
    owner: str,
    due_column: InstrumentedAttribute[datetime | None],
    limit: int,
    lease_seconds: float,
    now: datetime | None = None,
    model: type[Leased] = Job,
    columns: Sequence[str] = (),
    rows: dict[str, Any] | None = None,
) -> list[str]:
    """Lease up to `limit` due rows of `model` (any table with id and lease columns), in
    one statement: `UPDATE ... WHERE id IN (due ids, FOR UPDATE SKIP LOCKED on
    PostgreSQL) RETURNING`. Given `rows`, the claimed rows' `columns` (as plain rows,
    not ORM objects) are put there by id, as they stand once leased, so the handler
    need not read them again."""
    now = now or utcnow()
    table = table_of(model)
    due = table.c[due_column.key]
    async with unit_of_work(sessions) as session:
        conn = await session.connection()
        pick = (
            select(table.c.id)
            .where(
                due <= now,
                or_(table.c.lease_expires_at.is_(None), table.c.lease_expires_at < now),
            )
            .order_by(due)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        wanted = ["id", *(c for c in columns if c != "id")] if rows is not None else ["id"]
        stmt = (
            update(table)
            .where(table.c.id.in_(pick.scalar_subquery()))
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(*(table.c[name] for name in wanted))
        )
        found = (await conn.execute(stmt)).all()
    if rows is not None:
        rows.update((row.id, row) for row in found)
    return [row.id for row in found]


@asynccontextmanager
async def owned_job(
    sessions: async_sessionmaker[AsyncSession], *, job_id: str, owner: str, release: bool = True
) -> AsyncIterator[tuple[AsyncSession, Job]]:
    """Lock the row, check the lease is still ours (compare-and-set), yield it for the
    write; the lease is released when the block ends (unless `release` is False)."""
    async with unit_of_work(sessions) as session:
        job = (
            await session.execute(select(Job).where(Job.id == job_id).with_for_update())
        ).scalar_one_or_none()
        if job is None or job.lease_owner != owner:
            raise LeaseLost(job_id)
        yield session, job
        if release:
            job.lease_owner = None
            job.lease_expires_at = None


async def renew_leases(
    sessions: async_sessionmaker[AsyncSession], *, owner: str, ids: list[str],
    lease_seconds: float, model: type[Leased] = Job,
) -> int:  # fmt: skip
    """Extend the leases `owner` still holds on `ids` (a live worker's heartbeat);
    a lease already given back or taken over is left alone."""
    async with unit_of_work(sessions) as session:
        result = await session.execute(
            update(model)
            .where(model.id.in_(ids), model.lease_owner == owner)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def release_leases(
    sessions: async_sessionmaker[AsyncSession], *, owner: str, model: type[Leased] = Job
) -> int:
    """Give back every lease of `owner` (graceful shutdown), so work is picked up at once."""
    async with unit_of_work(sessions) as session:
        result = await session.execute(
            update(model)
            .where(model.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)
