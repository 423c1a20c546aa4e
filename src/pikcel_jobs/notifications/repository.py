"""Queries on the notifications outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.core.errors import NotFound
from pikcel_jobs.db.base import new_id, utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.schemas import Cursor
from pikcel_jobs.notifications.models import (
    FINAL,
    DeliveryStatus,
    NotificationAttempt,
    NotificationDelivery,
)
from pikcel_jobs.worker.claim import LeaseLost


async def enqueue(
    session: AsyncSession,
    *,
    shop: str,
    channel: str,
    kind: str,
    dedupe_key: str,
    target: str,
    payload: dict[str, Any],
    replay_of: str | None = None,
    now: datetime | None = None,
    due_at: datetime | None = None,
) -> str | None:
    """Add a pending delivery, due now (or at `due_at`); None (and nothing added) when a
    delivery with the same dedupe key exists, whoever wrote it, committed or not yet."""
    now = now or utcnow()
    values = {
        "id": new_id(), "shop": shop, "channel": channel, "kind": kind,
        "dedupe_key": dedupe_key, "target": target, "payload": payload,
        "status": DeliveryStatus.PENDING.value, "attempts": 0, "next_attempt_at": due_at or now,
        "replay_of": replay_of, "created_at": now, "updated_at": now,
    }  # fmt: skip
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(NotificationDelivery).values(values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    added = (await session.execute(stmt.returning(NotificationDelivery.id))).scalar_one_or_none()
    return None if added is None else str(added)


async def get_for_shop(
    session: AsyncSession, *, shop: str, delivery_id: str
) -> NotificationDelivery:
    row = await session.get(NotificationDelivery, delivery_id) if len(delivery_id) <= 36 else None
    if row is None or row.shop != shop:
        raise NotFound("no such delivery in this shop")
    return row


async def page(
    session: AsyncSession,
    *,
    shop: str,
    cursor: Cursor | None,
    limit: int,
    status: str | None = None,
    channel: str | None = None,
) -> tuple[list[NotificationDelivery], Cursor | None]:
    """The shop's deliveries, newest first, one keyset page."""
    D = NotificationDelivery
    stmt = select(D).where(D.shop == shop)
    if status:
        stmt = stmt.where(D.status == status)
    if channel:
        stmt = stmt.where(D.channel == channel)
    if cursor is not None:
        stmt = stmt.where(tuple_(D.created_at, D.id) < (cursor.created_at, cursor.id))
    stmt = stmt.order_by(D.created_at.desc(), D.id.desc()).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars().all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(created_at=rows[-1].created_at, id=rows[-1].id)
    return rows, next_cursor


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[str]
) -> dict[str, list[NotificationAttempt]]:
    if not delivery_ids:
        return {}
    A = NotificationAttempt
    stmt = select(A).where(A.delivery_id.in_(list(delivery_ids))).order_by(A.delivery_id, A.number)
    found: dict[str, list[NotificationAttempt]] = {d: [] for d in delivery_ids}
    for attempt in (await session.execute(stmt)).scalars():
        found[attempt.delivery_id].append(attempt)
    return found


async def lease(
    sessions: async_sessionmaker[AsyncSession],
    *,
    ids: Sequence[str],
    owner: str,
    lease_seconds: float,
) -> list[str]:
    """Take the lease on these due deliveries now (the test route sends at once); those
    another worker holds, or already final, are left alone."""
    now = utcnow()
    D = NotificationDelivery
    async with unit_of_work(sessions) as session:
        result = await session.execute(
            update(D)
            .where(
                D.id.in_(list(ids)),
                D.next_attempt_at.is_not(None),
                or_(D.lease_expires_at.is_(None), D.lease_expires_at < now),
            )
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(D.id)
            .execution_options(synchronize_session=False)
        )
        return list(result.scalars().all())


@asynccontextmanager
async def owned_delivery(
    sessions: async_sessionmaker[AsyncSession], *, delivery_id: str, owner: str
) -> AsyncIterator[tuple[AsyncSession, NotificationDelivery]]:
    """Lock the row and check the lease is still ours (compare-and-set), yield it for the
    write, and release the lease when the block ends."""
    async with unit_of_work(sessions) as session:
        row = (
            await session.execute(
                select(NotificationDelivery)
                .where(NotificationDelivery.id == delivery_id)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if row is None or row.lease_owner != owner:
            raise LeaseLost(delivery_id)
        yield session, row
        row.lease_owner = None
        row.lease_expires_at = None
        if row.status in FINAL:
            row.next_attempt_at = None
