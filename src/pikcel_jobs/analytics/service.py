"""Analytics over a range of days: jobs per day by status, credits per day, success rate
and median processing time per tool. Days are UTC days, as the rollups count them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.analytics import repository
from pikcel_jobs.analytics.schemas import Analytics, DayPoint, ToolPoint, Totals
from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.jobs.states import JobStatus

PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366
# Bottom to top in the stacked chart: finished work first, then what is still moving.
STATUS_ORDER = [
    JobStatus.COMPLETED.value,
    JobStatus.FAILED.value,
    JobStatus.CANCELLED.value,
    JobStatus.PROCESSING.value,
    JobStatus.PENDING.value,
    JobStatus.SCHEDULED.value,
]


@dataclass(frozen=True)
class DayRange:
    first: date
    last: date  # inclusive

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=UTC)

    def each_day(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]

    @classmethod
    def last_days(cls, days: int, today: date) -> DayRange:
        return cls(today - timedelta(days=days - 1), today)


def _parse_day(name: str, raw: str) -> date:
    text = raw.strip()
    try:
        if len(text) > 10:  # a full timestamp: its UTC day
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC)
            return moment.date()
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: give a date as YYYY-MM-DD (got '{text[:40]}')") from None


def parse_range(params: Mapping[str, str], *, today: date | None = None) -> DayRange:
    """`from`/`to` (dates, both inclusive) or `days` (a preset such as 7, 30, 90).
    Missing: the last 30 days up to today (UTC)."""
    today = today or datetime.now(UTC).date()
    raw_days = (params.get("days") or "").strip()
    days = DEFAULT_DAYS
    if raw_days:
        if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_DAYS:
            raise InvalidInput(f"days: give a number of days from 1 to {MAX_DAYS}")
        days = int(raw_days)
    raw_from, raw_to = params.get("from") or "", params.get("to") or ""
    last = _parse_day("to", raw_to) if raw_to.strip() else None
    first = _parse_day("from", raw_from) if raw_from.strip() else None
    if first is None and last is None:
        return DayRange.last_days(days, today)
    if last is None and first is not None:
        last = max(first, min(today, first + timedelta(days=days - 1)))
    assert last is not None
    if first is None:
        first = last - timedelta(days=days - 1)
    if first > last:
        raise InvalidInput("from: the range must start on or before its last day ('to')")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput(f"to: a range can cover at most {MAX_DAYS} days")
    return DayRange(first, last)


def tool_label(tool_id: str) -> str:
    """'background-removal' → 'Background removal' when no name is known."""
    words = tool_id.replace("_", "-").split("-")
    return " ".join(words).capitalize() if words else tool_id


async def analytics(session: AsyncSession, *, shop: str, day_range: DayRange) -> Analytics:
    first, last = day_range.first, day_range.last
    daily = await repository.daily_by_status(session, shop=shop, first_day=first, last_day=last)
    per_tool = await repository.by_tool_and_status(
        session, shop=shop, first_day=first, last_day=last
    )
    medians = await repository.median_time_per_tool(
        session, shop=shop, start=day_range.start, end=day_range.end
    )

    by_day: dict[date, dict[str, int]] = {}
    credits_by_day: dict[date, int] = {}
    seen_statuses: set[str] = set()
    for day, status, jobs, credits in daily:
        by_day.setdefault(day, {})[status] = jobs
        credits_by_day[day] = credits_by_day.get(day, 0) + credits
        seen_statuses.add(status)
    statuses = [s for s in STATUS_ORDER if s in seen_statuses]
    statuses += sorted(seen_statuses - set(statuses))
    series = []
    for day in day_range.each_day():
        counts = by_day.get(day, {})
        series.append(
            DayPoint(
                day=day,
                total=sum(counts.values()),
                by_status={s: counts.get(s, 0) for s in statuses},
                credits=credits_by_day.get(day, 0),
            )
        )

    tools: dict[str, dict[str, int]] = {}
    for tool_id, status, jobs, credits, ms_sum, ms_count in per_tool:
        row = tools.setdefault(tool_id, {"jobs": 0, "credits": 0, "ms": 0, "ms_n": 0})
        row["jobs"] += jobs
        row["credits"] += credits
        row[status] = row.get(status, 0) + jobs
        if status == JobStatus.COMPLETED.value:
            row["ms"] += ms_sum
            row["ms_n"] += ms_count
    tool_points = []
    for tool_id, row in tools.items():
        completed, failed = row.get("completed", 0), row.get("failed", 0)
        median, name = medians.get(tool_id, (None, None))
        tool_points.append(
            ToolPoint(
                tool_id=tool_id,
                tool_name=name or tool_label(tool_id),
                jobs=row["jobs"],
                completed=completed,
                failed=failed,
                credits=row["credits"],
                success_rate=round(completed / (completed + failed), 4)
                if completed + failed
                else None,
                median_processing_time_ms=round(median, 1) if median is not None else None,
                average_processing_time_ms=round(row["ms"] / row["ms_n"], 1)
                if row["ms_n"]
                else None,
            )
        )
    tool_points.sort(key=lambda t: (-t.jobs, t.tool_id))

    completed = sum(t.completed for t in tool_points)
    failed = sum(t.failed for t in tool_points)
    busiest = max(series, key=lambda p: p.total) if series else None
    totals = Totals(
        jobs=sum(p.total for p in series),
        completed=completed,
        failed=failed,
        credits=sum(p.credits for p in series),
        success_rate=round(completed / (completed + failed), 4) if completed + failed else None,
        busiest_day=busiest.day if busiest and busiest.total else None,
    )
    return Analytics(
        from_=first, to=last, days=day_range.days, statuses=statuses,
        series=series, tools=tool_points, totals=totals,
    )  # fmt: skip
