"""Schedule shapes of our HTTP API."""

from __future__ import annotations

from datetime import datetime

from croniter import croniter
from pydantic import Field, field_validator

from pikcel_jobs.core.schemas import ApiInput, ApiModel


class ScheduleCreate(ApiInput):
    name: str = Field(min_length=1, max_length=120)
    cron: str = Field(min_length=9, max_length=100)
    template_id: str = Field(min_length=1, max_length=36)
    product_query: str = Field("created_at:>={today}", max_length=500)
    max_products: int = Field(50, ge=1, le=250)
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:  # ScheduleUpdate: not changed
            return value
        if not croniter.is_valid(value) or len(value.split()) != 5:
            raise ValueError(
                "must be a five-field cron expression, e.g. '0 2 * * *' (02:00 UTC daily)"
            )
        return value


class ScheduleUpdate(ApiInput):
    name: str | None = Field(None, min_length=1, max_length=120)
    cron: str | None = Field(None, min_length=9, max_length=100)
    product_query: str | None = Field(None, max_length=500)
    max_products: int | None = Field(None, ge=1, le=250)
    enabled: bool | None = None

    _cron = field_validator("cron")(ScheduleCreate._cron.__func__)  # type: ignore[attr-defined]


class ScheduleOut(ApiModel):
    id: str
    name: str
    cron: str
    template_id: str
    product_query: str
    max_products: int
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_batch_id: str | None
    last_error: str | None
    created_at: datetime
