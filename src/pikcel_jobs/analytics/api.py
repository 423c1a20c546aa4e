"""`GET /api/analytics?from=&to=` (or `days=`): the shop's analytics as JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pikcel_jobs.analytics import service
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import Db

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


@router.get("")
async def get_analytics(request: Request, shop: ShopDomain, db: Db) -> JSONResponse:
    """Jobs per day by status, credits per day, success rate and median processing time
    per tool, over `from`..`to` (UTC dates, both included; default: the last 30 days)."""
    day_range = service.parse_range(request.query_params)
    async with db(read_only=True) as session:
        result = await service.analytics(session, shop=shop, day_range=day_range)
    return JSONResponse(
        {"success": True, "analytics": result.model_dump(by_alias=True, mode="json")}
    )
