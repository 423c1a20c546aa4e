"""JSON routes for jobs (DESIGN §5). Thin: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.params import filter_from_query, paging_from_query
from pikcel_jobs.jobs.schemas import AttemptOut, EventOut, JobCreate, JobDetailOut, JobOut
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import Db

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def job_json(job: Job) -> dict[str, Any]:
    return JobOut.model_validate(job).model_dump(by_alias=True, mode="json")


def ok(status_code: int = 200, **payload: Any) -> JSONResponse:
    return JSONResponse({"success": True, **payload}, status_code=status_code)


@router.post("", status_code=201)
async def create_job(body: JobCreate, shop: ShopDomain, db: Db) -> JSONResponse:
    """Record a job; the worker dispatches it to PikcelAI."""
    if body.input_image_url is None:
        raise InvalidInput("give inputImageUrl; picking a product image needs the Shopify link")
    async with db() as session:
        job = await service.create_job(
            session, shop=shop, data=body, input_image_url=str(body.input_image_url)
        )
    return ok(201, job=job_json(job))


@router.get("")
async def list_jobs(request: Request, shop: ShopDomain, db: Db) -> JSONResponse:
    job_filter = filter_from_query(request.query_params)
    paging = paging_from_query(request.query_params)
    async with db(read_only=True) as session:
        page = await service.list_jobs(
            session, shop=shop, job_filter=job_filter,
            cursor=paging.cursor, limit=paging.limit, offset=paging.offset,
        )  # fmt: skip
    return ok(jobs=[job_json(j) for j in page.jobs], nextCursor=page.next_cursor, total=page.total)


@router.get("/stats")
async def job_stats(request: Request, shop: ShopDomain, db: Db) -> JSONResponse:
    job_filter = filter_from_query(request.query_params)
    async with db(read_only=True) as session:
        stats = await service.job_stats(session, shop=shop, job_filter=job_filter)
    return ok(stats=stats.model_dump(by_alias=True, mode="json"))


@router.get("/{job_id}")
async def get_job(job_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        detail = await service.get_job_detail(session, shop=shop, job_id=job_id)
        out = JobDetailOut(
            **JobOut.model_validate(detail.job).model_dump(),
            attempts=[AttemptOut.model_validate(a) for a in detail.attempts],
            events=[EventOut.model_validate(e) for e in detail.events],
        )
    return ok(job=out.model_dump(by_alias=True, mode="json"))
