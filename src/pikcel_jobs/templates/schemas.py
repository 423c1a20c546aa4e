"""Template shapes of our HTTP API: saved job configurations (tool, parameters,
priority) with a name unique in the shop."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from pikcel_jobs.core.schemas import ApiInput, ApiModel
from pikcel_jobs.jobs.schemas import Priority

MAX_PARAMETERS_BYTES = 10_000


def _check_parameters(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value)) > MAX_PARAMETERS_BYTES:
        raise ValueError("must be under 10 KB of JSON")
    return value


def _check_name(value: str | None) -> str | None:
    if value is not None and any(ord(ch) < 32 for ch in value):
        raise ValueError("must be one line of text")
    return value


class TemplateCreate(ApiInput):
    name: str = Field(min_length=1, max_length=120)
    description: str | None = Field(None, max_length=2000)
    tool_id: str = Field(min_length=1, max_length=100)
    parameters: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = "normal"

    _parameters = field_validator("parameters")(_check_parameters)
    _name = field_validator("name")(_check_name)


class TemplateUpdate(ApiInput):
    """PUT body: the fields given replace the template's; the others stay as they are."""

    name: str | None = Field(None, min_length=1, max_length=120)
    description: str | None = Field(None, max_length=2000)
    tool_id: str | None = Field(None, min_length=1, max_length=100)
    parameters: dict[str, Any] | None = None
    priority: Priority | None = None

    _parameters = field_validator("parameters")(_check_parameters)
    _name = field_validator("name")(_check_name)


class TemplateOut(ApiModel):
    id: str
    shop: str
    name: str
    description: str | None
    tool_id: str
    parameters: dict[str, Any]
    priority: str
    created_at: datetime
    updated_at: datetime
