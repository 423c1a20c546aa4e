"""Job and JobAttempt: the job row is both the merchant's record and the work queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pikcel_jobs.db.base import Base, JSONType, UTCDateTime, new_id, utcnow
from pikcel_jobs.jobs.states import JobStatus, PushStatus


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    shop: Mapped[str] = mapped_column(String(255))
    pikcel_job_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    tool_id: Mapped[str] = mapped_column(String(100))
    tool_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING)
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    input_image_url: Mapped[str] = mapped_column(Text)
    output_image_url: Mapped[str | None] = mapped_column(Text)
    thumbnail_url: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    credits_used: Mapped[int] = mapped_column(Integer, default=0)
    processing_time_ms: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    product_id: Mapped[str | None] = mapped_column(String(100))
    product_title: Mapped[str | None] = mapped_column(String(500))
    variant_id: Mapped[str | None] = mapped_column(String(100))
    image_id: Mapped[str | None] = mapped_column(String(100))
    # "metadata" is reserved on declarative classes; the column keeps the API's name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    template_id: Mapped[str | None] = mapped_column(String(100))
    pushed_to_shopify: Mapped[bool] = mapped_column(Boolean, default=False)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Tracking: the row is a unit of due work.
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True, default=new_id)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatch_errors: Mapped[int] = mapped_column(Integer, default=0)
    poll_interval_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by bulk cancel for jobs running upstream: the worker cancels them there first.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)
    output_key: Mapped[str | None] = mapped_column(String(255))  # our stored copy
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))
    remote_output_url: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("job_batches.id", ondelete="SET NULL"))

    # Push to Shopify.
    push_status: Mapped[str] = mapped_column(String(20), default=PushStatus.NONE)
    push_mode: Mapped[str | None] = mapped_column(String(10))  # add | replace
    push_error: Mapped[str | None] = mapped_column(Text)
    shopify_media_id: Mapped[str | None] = mapped_column(String(100))
    push_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Push checkpoints (push/tasks.py): the staged upload to attach, when the current
    # step began (the READY wait has a deadline), transient failures so far.
    push_resource_url: Mapped[str | None] = mapped_column(Text)
    push_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    push_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    attempts: Mapped[list[JobAttempt]] = relationship(
        back_populates="job",
        order_by="JobAttempt.number",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index("ix_jobs_shop_created", "shop", "created_at", "id"),
        Index("ix_jobs_shop_status_created", "shop", "status", "created_at", "id"),
        Index("ix_jobs_shop_tool_created", "shop", "tool_id", "created_at"),
        Index("ix_jobs_shop_product_created", "shop", "product_id", "created_at"),
        Index("ix_jobs_shop_batch", "shop", "batch_id"),
        Index("ix_jobs_due", "next_attempt_at"),
        Index("ix_jobs_push_due", "push_next_at"),
    )


class JobAttempt(Base):
    """One remote PikcelAI job a Job has had; a retry adds a row and keeps the old."""

    __tablename__ = "job_attempts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    pikcel_job_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING)
    error_message: Mapped[str | None] = mapped_column(Text)
    credits_used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    job: Mapped[Job] = relationship(back_populates="attempts")
