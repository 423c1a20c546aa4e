"""Typed views of PikcelAI's JSON (DESIGN §3). Unknown fields are kept, never rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
Priority = Literal["low", "normal", "high", "urgent"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
WEBHOOK_EVENTS = ("job.started", "job.progress", "job.completed", "job.failed", "job.cancelled")


class PikcelModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Tool(PikcelModel):
    id: str
    name: str
    description: str | None = None
    category: str | None = None
    credits_required: float = 0
    base_price: float | None = None
    is_active: bool = True
    default_parameters: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Job(PikcelModel):
    id: str
    user_id: str | None = None
    tool_id: str
    tool_name: str | None = None
    status: JobStatus
    priority: str = "normal"
    input_image_url: str | None = None
    output_image_url: str | None = None
    thumbnail_url: str | None = None
    parameters: dict[str, Any] | None = None
    error_message: str | None = None
    credits_used: float = 0
    processing_time_ms: int | None = None
    progress: int | None = Field(None, ge=0, le=100)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Subscription(PikcelModel):
    plan: str | None = None
    status: str | None = None
    credits_included: float | None = None
    renewal_date: datetime | None = None


class Profile(PikcelModel):
    id: str
    email: str | None = None
    full_name: str | None = None
    credits_balance: float = 0
    subscription: Subscription | None = None
    total_jobs_processed: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Template(PikcelModel):
    id: str
    name: str
    description: str | None = None
    category: str | None = None
    tool_id: str | None = None
    parameters: dict[str, Any] | None = None
    thumbnail_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class BulkImage(PikcelModel):
    url: str
    metadata: dict[str, Any] | None = None


class BulkJob(PikcelModel):
    id: str
    total_images: int
    completed: int = 0
    failed: int = 0
    status: str
    jobs: list[Job] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Upload(PikcelModel):
    url: str
    path: str | None = None
    size: int | None = None
    mime_type: str | None = None
    uploaded_at: datetime | None = None


class JobPage(PikcelModel):
    data: list[Job]
    count: int
    total: int | None = None
    has_more: bool = False


class WebhookEvent(PikcelModel):
    event: str  # one of WEBHOOK_EVENTS; kept open so a new event type is not a parse error
    job_id: str
    job: Job
    timestamp: datetime | None = None
