"""Job shapes of our HTTP API (DESIGN §5): filters, input and output."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, HttpUrl, field_validator, model_validator

from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.core.schemas import ApiInput, ApiModel
from pikcel_jobs.jobs.states import JobStatus, PushStatus


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# A time the caller may send without a zone: read as UTC, as the API documents.
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]

Priority = Literal["low", "normal", "high", "urgent"]
MAX_PAGE_SIZE = 100
ID_PATTERN = r"^(gid://shopify/[A-Za-z]+/[0-9]{1,20}|[0-9]{1,20})$"  # a GID or a numeric id


class JobFilter(ApiInput):
    """The list's filters; the same object drives stats, bulk actions and exports."""

    status: list[JobStatus] = Field(default_factory=list)
    tool_id: str | None = Field(None, max_length=100)
    product_id: str | None = Field(None, max_length=100)
    batch_id: str | None = Field(None, max_length=36)
    from_: UtcDateTime | None = Field(None, alias="from")
    to: UtcDateTime | None = None
    q: str | None = Field(None, max_length=200)
    meta: dict[str, str] = Field(default_factory=dict)

    @field_validator("meta")
    @classmethod
    def _meta_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key.replace("_", "").replace("-", "").isalnum() or len(key) > 64:
                raise ValueError(f"metadata key '{key[:64]}' may hold letters, digits, - and _")
        return value

    @model_validator(mode="after")
    def _range(self) -> JobFilter:
        if self.from_ and self.to and self.from_ > self.to:
            raise ValueError("'from' must be before 'to'")
        return self


class Cursor(ApiModel):
    """Keyset position: the last row's (createdAt, id), opaque to clients."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            created, ident = json.loads(base64.urlsafe_b64decode(padded))
            return cls(created_at=datetime.fromisoformat(created), id=str(ident))
        except (ValueError, TypeError) as exc:
            raise InvalidInput("the cursor is not valid; start again from the first page") from exc


class JobCreate(ApiInput):
    tool_id: str = Field(min_length=1, max_length=100)
    input_image_url: HttpUrl | None = None
    product_id: str | None = Field(None, pattern=ID_PATTERN)
    product_title: str | None = Field(None, max_length=500)
    variant_id: str | None = Field(None, pattern=ID_PATTERN)
    image_id: str | None = Field(None, pattern=ID_PATTERN)
    parameters: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = "normal"
    template_id: str | None = Field(None, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)
    scheduled_for: UtcDateTime | None = None
    batch_id: str | None = Field(None, max_length=36)

    @model_validator(mode="after")
    def _image_source(self) -> JobCreate:
        if self.input_image_url is None and not (self.product_id and self.image_id):
            raise ValueError("give inputImageUrl, or productId and imageId of a product image")
        if len(json.dumps(self.parameters)) > 10_000 or len(json.dumps(self.metadata)) > 10_000:
            raise ValueError("parameters and metadata must each be under 10 KB of JSON")
        return self


class AttemptOut(ApiModel):
    number: int
    pikcel_job_id: str | None
    status: str
    error_message: str | None
    credits_used: int
    created_at: datetime
    dispatched_at: datetime | None
    finished_at: datetime | None


class EventOut(ApiModel):
    id: int
    kind: str
    status: str
    data: dict[str, Any]
    created_at: datetime


class JobOut(ApiModel):
    id: str
    shop: str
    pikcel_job_id: str | None
    tool_id: str
    tool_name: str | None
    status: JobStatus
    priority: str
    input_image_url: str
    output_image_url: str | None
    thumbnail_url: str | None
    parameters: dict[str, Any]
    error_message: str | None
    credits_used: int
    processing_time_ms: int | None
    progress: int
    product_id: str | None
    product_title: str | None
    variant_id: str | None
    image_id: str | None
    metadata: dict[str, Any] = Field(validation_alias="meta")
    template_id: str | None
    pushed_to_shopify: bool
    pushed_at: datetime | None
    push_status: PushStatus
    push_mode: str | None
    push_error: str | None
    shopify_media_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempt: int
    scheduled_for: datetime | None
    batch_id: str | None


class JobDetailOut(JobOut):
    attempts: list[AttemptOut] = Field(default_factory=list)
    events: list[EventOut] = Field(default_factory=list)


class JobStats(ApiModel):
    total: int
    by_status: dict[str, int]
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    scheduled: int
    credits_used: int
    average_processing_time_ms: float | None
    success_rate: float | None


class RescheduleBody(ApiInput):
    job_id: str = Field(min_length=1, max_length=64)
    scheduled_for: UtcDateTime | None = None
