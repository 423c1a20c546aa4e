"""Worker processes that are running, each refreshing its row (worker/membership.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pikcel_jobs.db.base import Base, UTCDateTime, utcnow


class WorkerProcess(Base):
    __tablename__ = "worker_processes"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # the lease owner name
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
