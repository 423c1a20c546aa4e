"""`/app/products/{id}`: one product's job history."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pikcel_jobs.core.errors import NotFound
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.schemas import ID_PATTERN, JobFilter
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import Db
from pikcel_jobs.web.pages.common import PageRoute, latest_event_id, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)
HISTORY_LIMIT = 50


def product_gid(value: str) -> str:
    """`123` and `gid://shopify/Product/123` name the same product."""
    value = value.strip()
    return f"gid://shopify/Product/{value}" if value.isdigit() else value


@router.get("/app/products/{product_id:path}", response_class=HTMLResponse)
async def product_history(
    request: Request, product_id: str, shop: ShopDomain, db: Db
) -> HTMLResponse:
    if not re.match(ID_PATTERN, product_id.strip()):
        raise NotFound("that is not a product id")
    gid = product_gid(product_id)
    async with db(read_only=True) as session:
        job_filter = JobFilter(product_id=gid)
        page = await service.list_jobs(
            session, shop=shop, job_filter=job_filter, limit=HISTORY_LIMIT
        )
        if page.total == 0 and product_id.strip().isdigit():
            job_filter = JobFilter(product_id=product_id.strip())  # stored as a bare number
            page = await service.list_jobs(
                session, shop=shop, job_filter=job_filter, limit=HISTORY_LIMIT
            )
        stats = await service.job_stats(session, shop=shop, job_filter=job_filter)
        last_id = await latest_event_id(session, shop=shop)
    title = next((j.product_title for j in page.jobs if j.product_title), None)
    return render(
        request, "product.html",
        {"product_id": job_filter.product_id, "title": title or "Product " + gid.rsplit("/", 1)[-1],
         "jobs": page.jobs, "total": page.total, "stats": stats},
        shop=shop, active="jobs", live=True, last_event_id=last_id,
    )  # fmt: skip
