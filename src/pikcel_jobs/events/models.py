"""JobEvent: the outbox of job changes; its id orders the live stream (SSE id)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, String, insert
from sqlalchemy.orm import Mapped, mapped_column

from pikcel_jobs.db.base import Base, BigIntPK, JSONType, UTCDateTime, table_of, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pikcel_jobs.jobs.models import Job


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    shop: Mapped[str] = mapped_column(String(255))
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # created | status | progress | push | ...
    status: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_job_events_shop_id", "shop", "id"),)


COLLECTED = "collected_events"  # session.info key of the rows `collected` is gathering


def record_event(session: AsyncSession, job: Job, kind: str, data: dict[str, Any]) -> None:
    """Add an event for `job` to the session; it commits with the change it describes."""
    row = {"shop": job.shop, "job_id": job.id, "kind": kind, "status": job.status, "data": data}
    if (collected := session.info.get(COLLECTED)) is not None:
        collected.append(row)
    else:
        session.add(JobEvent(**row))


@asynccontextmanager
async def collected(session: AsyncSession) -> AsyncIterator[None]:
    """Inside, events are gathered and inserted by one statement at the end: as ORM
    objects each would be its own INSERT, to fetch an id nothing here needs."""
    rows: list[dict[str, Any]] = []
    session.info[COLLECTED] = rows
    try:
        yield
    finally:
        del session.info[COLLECTED]
    if rows:
        now = utcnow()
        await session.execute(insert(table_of(JobEvent)), [{**r, "created_at": now} for r in rows])
