"""Analytics on SQLite and PostgreSQL: per-day series from the rollups, success rate and
median processing time per tool (both dialects' median), range parsing, shop scoping,
the JSON route and the page with its SVG charts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.analytics import charts, service
from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs import service as jobs
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.jobs.states import JobStatus, change_status

Sessions = async_sessionmaker[AsyncSession]
Client = Callable[[str], httpx.AsyncClient]
DAY1 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


async def add_job(
    sessions: Sessions,
    shop: str,
    *,
    at: datetime,
    tool: str = "background-removal",
    tool_name: str | None = "Background removal",
    path: tuple[JobStatus, ...] = (),
    ms: int | None = None,
    credits: int = 0,
) -> str:
    async with unit_of_work(sessions) as session:
        job = await jobs.create_job(
            session, shop=shop,
            data=JobCreate.model_validate({"toolId": tool, "inputImageUrl": "https://cdn.example.com/a.png"}),
            input_image_url="https://cdn.example.com/a.png", tool_name=tool_name, now=at,
        )  # fmt: skip
        for target in path:
            fields = None
            if target == path[-1] and target in (JobStatus.COMPLETED, JobStatus.FAILED):
                fields = {"processing_time_ms": ms, "credits_used": credits}
            await change_status(session, job, target, fields=fields)
        return job.id


DONE = (JobStatus.PROCESSING, JobStatus.COMPLETED)
FAILED = (JobStatus.PROCESSING, JobStatus.FAILED)


async def seed(sessions: Sessions, shop: str) -> None:
    """Day 1: 3 completed upscales (100/300/200 ms) + 1 failed; day 3: 4 completed
    background removals (400/100/300/200 ms), 1 pending, 1 cancelled."""
    for ms in (100, 300, 200):
        await add_job(sessions, shop, at=DAY1, tool="upscale-2x", tool_name="Upscale 2x",
                      path=DONE, ms=ms, credits=2)  # fmt: skip
    await add_job(sessions, shop, at=DAY1, tool="upscale-2x", tool_name="Upscale 2x", path=FAILED)
    day3 = DAY1 + timedelta(days=2, hours=5)
    for ms in (400, 100, 300, 200):
        await add_job(sessions, shop, at=day3, path=DONE, ms=ms, credits=1)
    await add_job(sessions, shop, at=day3)
    await add_job(sessions, shop, at=day3, path=(JobStatus.CANCELLED,))


async def test_series_tools_and_medians(sessions: Sessions, shop: str) -> None:
    await seed(sessions, shop)
    day_range = service.DayRange(date(2026, 10, 31), date(2026, 11, 4))
    async with unit_of_work(sessions, read_only=True) as session:
        result = await service.analytics(session, shop=shop, day_range=day_range)

    assert result.days == 5 and result.series[0].day == date(2026, 10, 31)
    by_day = {p.day: p for p in result.series}
    assert by_day[date(2026, 10, 31)].total == 0
    assert by_day[date(2026, 11, 1)].by_status["completed"] == 3
    assert by_day[date(2026, 11, 1)].by_status["failed"] == 1
    assert by_day[date(2026, 11, 1)].credits == 6
    assert by_day[date(2026, 11, 3)].total == 6 and by_day[date(2026, 11, 3)].credits == 4
    assert by_day[date(2026, 11, 3)].by_status["pending"] == 1
    assert result.statuses[:3] == ["completed", "failed", "cancelled"]

    tools = {t.tool_id: t for t in result.tools}
    upscale, removal = tools["upscale-2x"], tools["background-removal"]
    assert upscale.tool_name == "Upscale 2x" and upscale.jobs == 4
    assert upscale.success_rate == 0.75  # 3 of 4 finished
    assert upscale.median_processing_time_ms == 200  # odd count: the middle one
    assert removal.median_processing_time_ms == 250  # even count: mean of the middle two
    assert removal.success_rate == 1.0 and removal.jobs == 6
    assert result.tools[0].tool_id == "background-removal"  # most jobs first
    assert result.totals.jobs == 10 and result.totals.credits == 10
    assert result.totals.busiest_day == date(2026, 11, 3)


async def test_range_bounds_are_whole_utc_days(sessions: Sessions, shop: str) -> None:
    await add_job(
        sessions, shop, at=datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC), path=DONE, ms=10
    )
    await add_job(sessions, shop, at=datetime(2026, 11, 2, 0, 0, tzinfo=UTC), path=DONE, ms=90)
    async with unit_of_work(sessions, read_only=True) as session:
        one = await service.analytics(
            session, shop=shop, day_range=service.DayRange(date(2026, 11, 1), date(2026, 11, 1))
        )
    assert one.totals.jobs == 1 and one.tools[0].median_processing_time_ms == 10


async def test_another_shop_sees_nothing(sessions: Sessions, shop: str, other_shop: str) -> None:
    await seed(sessions, shop)
    async with unit_of_work(sessions, read_only=True) as session:
        result = await service.analytics(
            session, shop=other_shop,
            day_range=service.DayRange(date(2026, 11, 1), date(2026, 11, 3)),
        )  # fmt: skip
    assert result.totals.jobs == 0 and result.tools == [] and result.statuses == []
    assert all(p.total == 0 for p in result.series)


TODAY = date(2026, 12, 4)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (date(2026, 11, 5), TODAY)),
        ({"days": "7"}, (date(2026, 11, 28), TODAY)),
        ({"days": "90"}, (date(2026, 9, 6), TODAY)),
        ({"from": "2026-11-01", "to": "2026-11-03"}, (date(2026, 11, 1), date(2026, 11, 3))),
        ({"from": "2026-11-01"}, (date(2026, 11, 1), date(2026, 11, 30))),
        ({"to": "2026-11-10", "days": "7"}, (date(2026, 11, 4), date(2026, 11, 10))),
        (
            {"from": "2026-11-01T23:30:00-02:00", "to": "2026-11-02"},
            (date(2026, 11, 2), date(2026, 11, 2)),
        ),
    ],
)
def test_parse_range(params: dict[str, str], expected: tuple[date, date]) -> None:
    day_range = service.parse_range(params, today=TODAY)
    assert (day_range.first, day_range.last) == expected


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"from": "2026-11-05", "to": "2026-11-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "366"),
        ({"days": "0"}, "days"),
        ({"days": "many"}, "days"),
    ],
)
def test_parse_range_rejects(params: dict[str, str], needle: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.parse_range(params, today=TODAY)
    assert needle in caught.value.message


async def test_json_route(
    client_for: Client, sessions: Sessions, shop: str, other_shop: str
) -> None:
    await seed(sessions, shop)
    response = await client_for(shop).get(
        "/api/analytics", params={"from": "2026-11-01", "to": "2026-11-03"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    data = body["analytics"]
    assert data["from"] == "2026-11-01" and data["to"] == "2026-11-03" and data["days"] == 3
    assert [p["day"] for p in data["series"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert data["series"][0]["byStatus"]["completed"] == 3
    tool = next(t for t in data["tools"] if t["toolId"] == "upscale-2x")
    assert tool["successRate"] == 0.75 and tool["medianProcessingTimeMs"] == 200
    assert data["totals"]["jobs"] == 10

    other = (
        await client_for(other_shop).get(
            "/api/analytics", params={"from": "2026-11-01", "to": "2026-11-03"}
        )
    ).json()
    assert other["analytics"]["totals"]["jobs"] == 0 and other["analytics"]["tools"] == []


async def test_json_route_errors(client_for: Client, shop: str, api_url: str) -> None:
    bad = await client_for(shop).get(
        "/api/analytics", params={"from": "2026-11-05", "to": "2026-11-01"}
    )
    assert bad.status_code == 400
    assert (
        bad.json()["error"]["code"] == "INVALID_INPUT" and "from" in bad.json()["error"]["message"]
    )
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/api/analytics")).status_code == 401


async def test_default_range_is_last_30_days(
    client_for: Client, sessions: Sessions, shop: str
) -> None:
    now = datetime.now(UTC)
    await add_job(sessions, shop, at=now - timedelta(days=2), path=DONE, ms=500, credits=3)
    await add_job(sessions, shop, at=now - timedelta(days=45), path=DONE, ms=500, credits=3)
    data = (await client_for(shop).get("/api/analytics")).json()["analytics"]
    assert data["days"] == 30 and data["to"] == now.date().isoformat()
    assert data["totals"]["jobs"] == 1 and data["totals"]["credits"] == 3


def parse_svgs(html: str) -> dict[str, ET.Element]:
    found = {}
    for match in re.finditer(r"<svg\b.*?</svg>", html, re.S):
        element = ET.fromstring(match.group(0))  # well-formed XML
        found[element.get("id", "")] = element
    return found


async def test_page_renders_svg_charts(client_for: Client, sessions: Sessions, shop: str) -> None:
    await seed(sessions, shop)
    response = await client_for(shop).get(
        "/app/analytics", params={"from": "2026-11-01", "to": "2026-11-03"}
    )
    assert response.status_code == 200, response.text
    html = response.text
    assert '<script src="http' not in html and "cdn" not in html.lower().replace(
        "cdn.example.com", ""
    )
    svgs = parse_svgs(html)
    assert set(svgs) == {"chart-jobs", "chart-credits", "chart-success", "chart-time"}
    for chart_id, svg in svgs.items():
        assert svg.get("role") == "img"
        assert svg.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
        assert svg.find(f"{SVG}title").text  # accessible name
        assert svg.find(f"{SVG}desc").text
    bars = svgs["chart-jobs"].findall(f".//{SVG}g[@data-day]")
    assert [b.get("data-day") for b in bars] == ["2026-11-01", "2026-11-03"]
    assert [b.get("data-total") for b in bars] == ["4", "6"]
    assert "Nov 1, 2026: 4 jobs" in bars[0].find(f"{SVG}title").text
    legend = [
        t.text for t in svgs["chart-jobs"].findall(f".//{SVG}g[@class='chart__legend']/{SVG}text")
    ]
    assert legend[:2] == ["Completed", "Failed"]
    time_bars = svgs["chart-time"].findall(f".//{SVG}g[@data-label]")
    assert [g.get("data-label") for g in time_bars] == ["Upscale 2x", "Background removal"]
    assert 'aria-current="page"' not in html.split("Range presets")[1].split("</nav>")[0]
    assert 'value="2026-11-01"' in html and "data-tools-table" in html


async def test_page_empty_state_and_bad_range(client_for: Client, shop: str) -> None:
    response = await client_for(shop).get("/app/analytics", params={"days": "7"})
    assert response.status_code == 200
    svgs = parse_svgs(response.text)
    assert all(svg.find(f".//{SVG}text[@data-empty='true']") is not None for svg in svgs.values())
    assert "No jobs in this range" in response.text
    assert 'aria-current="page">Last 7 days' in response.text

    bad = await client_for(shop).get("/app/analytics", params={"from": "soon"})
    assert bad.status_code == 200
    assert "from: give a date" in bad.text and "Showing the last 30 days" in bad.text


def test_nice_ticks() -> None:
    assert charts.nice_ticks(0) == [0, 1]
    assert charts.nice_ticks(7) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(100) == [0, 25, 50, 75, 100]
    assert charts.nice_ticks(1.0, integer=False) == [0, 0.25, 0.5, 0.75, 1.0]
    assert charts.nice_ticks(1.0) == [0, 1]
    assert charts.nice_ticks(3) == [0, 1, 2, 3]


def test_chart_text_is_escaped() -> None:
    svg = charts.horizontal_bars(
        chart_id="c", title="<script>", color="#000", axis=str,
        bars=[charts.Bar('Tool "<b>&', 1.0, "1 s")],
    )  # fmt: skip
    element = ET.fromstring(str(svg))
    assert element.find(f"{SVG}title").text == "<script>"
    assert "<b>" not in str(svg)
