"""`/app/analytics`: charts over a chosen range (server-rendered SVG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from pikcel_jobs.analytics import charts, service
from pikcel_jobs.analytics.schemas import Analytics
from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import Db
from pikcel_jobs.web.pages.common import PageRoute, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def build_charts(result: Analytics) -> dict[str, Markup]:
    days = [p.day for p in result.series]
    series = [
        charts.Series(s, s.capitalize(), charts.STATUS_COLORS.get(s, "#8a8a8a"))
        for s in result.statuses
    ]
    rated = sorted(result.tools, key=lambda t: (t.success_rate is None, -(t.success_rate or 0)))
    timed = sorted(
        result.tools,
        key=lambda t: (t.median_processing_time_ms is None, t.median_processing_time_ms or 0),
    )
    return {
        "jobs": charts.stacked_bars(
            chart_id="chart-jobs",
            title="Jobs per day by status",
            days=days,
            series=series,
            values=[p.by_status for p in result.series],
        ),
        "credits": charts.line_chart(
            chart_id="chart-credits",
            title="Credits used per day",
            days=days,
            values=[p.credits for p in result.series],
            label="Credits used",
        ),
        "success": charts.horizontal_bars(
            chart_id="chart-success",
            title="Success rate per tool",
            bars=[
                charts.Bar(
                    t.tool_name,
                    t.success_rate,
                    f"{t.success_rate * 100:.1f}%"
                    if t.success_rate is not None
                    else "no finished jobs",
                    f"({t.completed:,} completed, {t.failed:,} failed)",
                )
                for t in rated
            ],
            color=charts.RATE_COLOR,
            axis=lambda v: f"{v * 100:.0f}%",
            maximum=1.0,
        ),
        "time": charts.horizontal_bars(
            chart_id="chart-time",
            title="Median processing time per tool",
            bars=[
                charts.Bar(
                    t.tool_name,
                    t.median_processing_time_ms,
                    charts.duration_label(t.median_processing_time_ms)
                    if t.median_processing_time_ms is not None
                    else "no completed jobs",
                    f"(median of {t.completed:,} completed jobs)",
                )
                for t in timed
            ],
            color=charts.TIME_COLOR,
            axis=lambda v: charts.duration_label(v) if v else "0",
            empty_message="No completed jobs in this range",
        ),
    }


def jobs_query(day_range: service.DayRange) -> dict[str, str]:
    """The jobs list's filter for the same days (its `to` is inclusive)."""
    last = day_range.end - timedelta(microseconds=1)
    return {
        "from": day_range.start.isoformat().replace("+00:00", "Z"),
        "to": last.isoformat().replace("+00:00", "Z"),
    }


@router.get("/app/analytics", response_class=HTMLResponse)
async def analytics_page(request: Request, shop: ShopDomain, db: Db) -> HTMLResponse:
    error = None
    try:
        day_range = service.parse_range(request.query_params)
    except InvalidInput as exc:
        error = exc.message
        day_range = service.parse_range({})
    async with db(read_only=True) as session:
        result = await service.analytics(session, shop=shop, day_range=day_range)
    today = datetime.now(UTC).date()
    presets: list[dict[str, Any]] = []
    for days in service.PRESETS:
        preset = service.DayRange.last_days(days, today)
        presets.append({"days": days, "active": preset == day_range, "href": f"?days={days}"})
    return render(
        request, "analytics.html",
        {"analytics": result, "charts": build_charts(result), "presets": presets,
         "range": day_range, "error": error, "today": today,
         "range_query": jobs_query(day_range)},
        shop=shop, active="analytics",
    )  # fmt: skip
