"""Notification shapes of our HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from pikcel_jobs.core.schemas import ApiInput, ApiModel


class AttemptOut(ApiModel):
    number: int
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    started_at: datetime


class DeliveryOut(ApiModel):
    id: str
    channel: str
    kind: str
    target: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    replay_of: str | None
    payload: dict[str, Any]
    created_at: datetime
    sent_at: datetime | None
    log: list[AttemptOut] = Field(default_factory=list)


class NotificationSettings(ApiModel):
    notification_email: str | None = None
    notify_on_failure: bool = True
    notify_on_completion: bool = False
    daily_digest: bool = False
    webhook_url: str | None = None
    webhook_secret: str | None = None


class NotificationSettingsUpdate(ApiInput):
    """Partial update: only the fields given change."""

    notification_email: str | None = Field(None, max_length=254)
    notify_on_failure: bool | None = None
    notify_on_completion: bool | None = None
    daily_digest: bool | None = None
    webhook_url: str | None = Field(None, max_length=2000)
    rotate_webhook_secret: bool = False


class SendTestRequest(ApiInput):
    channel: Literal["email", "webhook"] | None = None  # None: every configured target
