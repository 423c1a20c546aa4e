"""`/app`: the merchant's dashboard."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.schemas import JobFilter
from pikcel_jobs.jobs.states import ACTIVE
from pikcel_jobs.pikcel.schemas import Profile
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.pages.common import (
    PageRoute,
    from_pikcel,
    latest_event_id,
    render,
    tools_or_none,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


async def pikcel_profile(runtime: Runtime) -> tuple[Profile | None, str | None]:
    """The PikcelAI account, or a message a merchant understands when it can't be read."""
    profile = await from_pikcel(runtime, runtime.pikcel.get_profile, "credits balance")
    if profile is None:
        return None, "PikcelAI can't be reached right now, so your credits balance is unknown."
    return profile, None


@router.get("/app", response_class=HTMLResponse)
async def dashboard(
    request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> HTMLResponse:
    profile_task = asyncio.create_task(pikcel_profile(runtime))
    tools_task = asyncio.create_task(tools_or_none(runtime))  # names for jobs not sent yet
    try:
        async with db(read_only=True) as session:
            stats = await service.job_stats(session, shop=shop, job_filter=JobFilter())
            recent = await service.list_jobs(
                session, shop=shop, job_filter=JobFilter(), limit=8, with_total=False
            )
            active = await service.list_jobs(
                session, shop=shop, job_filter=JobFilter(status=sorted(ACTIVE)), limit=10
            )
            last_id = await latest_event_id(session, shop=shop)
    except BaseException:
        profile_task.cancel()
        tools_task.cancel()
        raise
    profile, profile_error = await profile_task
    await tools_task
    return render(
        request, "dashboard.html",
        {"stats": stats, "recent": recent.jobs, "active": active.jobs,
         "active_total": active.total, "profile": profile, "profile_error": profile_error},
        shop=shop, active="dashboard", live=True, last_event_id=last_id,
    )  # fmt: skip
