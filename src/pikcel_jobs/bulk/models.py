"""BulkOperation: one merchant action over many jobs, with readable progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pikcel_jobs.db.base import Base, JSONType, UTCDateTime, new_id, utcnow


class BulkOperation(Base):
    __tablename__ = "bulk_operations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    shop: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(20))  # retry | sync | cancel | push | approve
    status: Mapped[str] = mapped_column(String(20), default="running")  # running | completed
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    selection: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written after every chunk; a running operation whose heartbeat stops is resumed.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_bulk_operations_shop_created", "shop", "created_at"),)
