"""`/app/tools`: PikcelAI's tools, with this shop's use of each."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pikcel_jobs.analytics.repository import median_time_per_tool
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.schemas import JobFilter, JobStats
from pikcel_jobs.pikcel.schemas import Tool
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.pages.common import PageRoute, render, tools_or_none

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass
class ToolRow:
    id: str
    tool: Tool | None  # None: used by this shop but not in PikcelAI's list (any more)
    stats: JobStats
    median_ms: float | None


@router.get("/app/tools", response_class=HTMLResponse)
async def tools_page(
    request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> HTMLResponse:
    tools = await tools_or_none(runtime)
    async with db(read_only=True) as session:
        medians = {
            tool_id: ms
            for tool_id, (ms, _) in (await median_time_per_tool(session, shop=shop)).items()
        }
        ids = [t.id for t in tools or []]
        used = await service.job_stats(session, shop=shop, job_filter=JobFilter())
        rows = []
        for tool_id in ids:
            stats = await service.job_stats(
                session, shop=shop, job_filter=JobFilter(tool_id=tool_id)
            )
            tool = next(t for t in tools or [] if t.id == tool_id)
            rows.append(ToolRow(tool_id, tool, stats, medians.get(tool_id)))
        for tool_id in sorted(set(medians) - set(ids)):
            stats = await service.job_stats(
                session, shop=shop, job_filter=JobFilter(tool_id=tool_id)
            )
            rows.append(ToolRow(tool_id, None, stats, medians.get(tool_id)))
    return render(
        request, "tools.html",
        {"rows": rows, "unavailable": tools is None, "shop_total": used.total},
        shop=shop, active="tools",
    )  # fmt: skip
