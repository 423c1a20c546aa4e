"""JobEvent: the outbox of job changes; its id orders the live stream (SSE id)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from pikcel_jobs.db.base import Base, BigIntPK, JSONType, UTCDateTime, utcnow

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


def record_event(session: AsyncSession, job: Job, kind: str, data: dict[str, Any]) -> JobEvent:
    """Add an event for `job` to the session; it commits with the change it describes."""
    event = JobEvent(shop=job.shop, job_id=job.id, kind=kind, status=job.status, data=data)
    session.add(event)
    return event
