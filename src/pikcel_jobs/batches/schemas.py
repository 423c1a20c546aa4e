"""Batch shapes of our HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, HttpUrl

from pikcel_jobs.core.schemas import ApiInput, ApiModel
from pikcel_jobs.jobs.schemas import ID_PATTERN, Priority

MAX_BATCH_IMAGES = 1000


class BatchImage(ApiInput):
    input_image_url: HttpUrl
    product_id: str | None = Field(None, pattern=ID_PATTERN)
    product_title: str | None = Field(None, max_length=500)
    variant_id: str | None = Field(None, pattern=ID_PATTERN)
    image_id: str | None = Field(None, pattern=ID_PATTERN)


class BatchCreate(ApiInput):
    name: str | None = Field(None, max_length=255)
    tool_id: str = Field(min_length=1, max_length=100)
    images: list[BatchImage] = Field(min_length=1, max_length=MAX_BATCH_IMAGES)
    parameters: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = "normal"
    template_id: str | None = Field(None, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)
    scheduled_for: datetime | None = None


class BatchOut(ApiModel):
    id: str
    shop: str
    name: str | None
    tool_id: str | None
    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    cancelled_jobs: int
    status: str
    created_at: datetime
    updated_at: datetime
