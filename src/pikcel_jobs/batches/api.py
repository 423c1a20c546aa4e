"""JSON routes for batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pikcel_jobs.batches import service
from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.batches.schemas import BatchCreate, BatchOut
from pikcel_jobs.jobs.api import job_json, ok, refuse_unsafe_urls
from pikcel_jobs.jobs.params import paging_from_query
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.ratelimit import rate_limit

router = APIRouter(prefix="/api/batches", tags=["batches"])


def batch_json(batch: JobBatch) -> dict[str, Any]:
    return BatchOut.model_validate(batch).model_dump(by_alias=True, mode="json")


@router.post("", status_code=201, dependencies=[rate_limit("create")])
async def create_batch(
    body: BatchCreate, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Many images, one tool: one job per image, all in one batch."""
    await refuse_unsafe_urls([str(i.input_image_url) for i in body.images], runtime, "images")
    async with db() as session:
        batch, jobs = await service.create_batch(session, shop=shop, data=body)
    runtime.nudge()
    return ok(201, batch=batch_json(batch), jobs=[job_json(j) for j in jobs])


@router.get("")
async def list_batches(request: Request, shop: ShopDomain, db: Db) -> JSONResponse:
    paging = paging_from_query(request.query_params, default_limit=50)
    async with db(read_only=True) as session:
        batches = await service.list_batches(session, shop=shop, limit=paging.limit)
    return ok(batches=[batch_json(b) for b in batches])


@router.get("/{batch_id}")
async def get_batch(batch_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        batch = await service.get_batch(session, shop=shop, batch_id=batch_id)
    return ok(batch=batch_json(batch))
