"""Base models for our HTTP API: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

EARLIEST_YEAR, LATEST_YEAR = 1900, 9000


class ApiModel(BaseModel):
    """Output model: serialised with camelCase aliases."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class ApiInput(BaseModel):
    """Input model: camelCase names, unknown fields rejected with a clear message."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """NUL characters are refused everywhere, JSON keys included: PostgreSQL can
        store none of them (text or JSONB), so they would fail at the database."""
        if _has_nul(data):
            raise ValueError("text may not contain NUL (\\u0000) characters")
        return data

    @model_validator(mode="after")
    def _storable_dates(self) -> ApiInput:
        for name, value in self:
            if isinstance(value, datetime) and not _storable(value):
                field = type(self).model_fields[name].alias or to_camel(name)
                raise ValueError(
                    f"{field} must be a date between {EARLIEST_YEAR} and {LATEST_YEAR}"
                )
        return self


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 50:
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def _storable(value: datetime) -> bool:
    try:
        utc = value.astimezone(UTC) if value.tzinfo else value
    except (OverflowError, ValueError):
        return False
    return EARLIEST_YEAR <= utc.year <= LATEST_YEAR
