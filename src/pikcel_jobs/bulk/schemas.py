"""Bulk action shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from pikcel_jobs.core.schemas import ApiInput, ApiModel

BulkAction = Literal["retry", "sync", "cancel", "push", "approve"]
MAX_JOB_IDS = 10_000


class BulkRequest(ApiInput):
    action: BulkAction
    job_ids: list[str] | None = Field(None, max_length=MAX_JOB_IDS)
    # The list's filters, with the same names as its query string (status, toolId, ...).
    filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> BulkRequest:
        if (self.job_ids is None) == (self.filter is None):
            raise ValueError("give either jobIds or filter")
        if self.job_ids is not None and not self.job_ids:
            raise ValueError("jobIds is empty")
        if self.job_ids and any(not isinstance(i, str) or len(i) > 64 for i in self.job_ids):
            raise ValueError("jobIds must hold job ids")
        return self


class BulkOperationOut(ApiModel):
    id: str
    action: str
    status: str
    total: int
    processed: int
    succeeded: int
    skipped: int
    message: str | None
    created_at: datetime
    finished_at: datetime | None
