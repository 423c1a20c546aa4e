"""Analytics shapes of our HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from pikcel_jobs.core.schemas import ApiModel


class DayPoint(ApiModel):
    day: date
    total: int
    by_status: dict[str, int]
    credits: int


class ToolPoint(ApiModel):
    tool_id: str
    tool_name: str
    jobs: int
    completed: int
    failed: int
    credits: int
    success_rate: float | None = Field(description="completed ÷ (completed + failed)")
    median_processing_time_ms: float | None
    average_processing_time_ms: float | None


class Totals(ApiModel):
    jobs: int
    completed: int
    failed: int
    credits: int
    success_rate: float | None
    busiest_day: date | None


class Analytics(ApiModel):
    from_: date = Field(alias="from")
    to: date
    days: int
    statuses: list[str] = Field(description="statuses in the order the charts stack them")
    series: list[DayPoint]
    tools: list[ToolPoint]
    totals: Totals
