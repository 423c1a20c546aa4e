"""`POST /api/jobs/bulk` and `GET /api/jobs/bulk/{id}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pikcel_jobs.bulk import service
from pikcel_jobs.bulk.models import BulkOperation
from pikcel_jobs.bulk.schemas import BulkOperationOut, BulkRequest
from pikcel_jobs.jobs.api import ok
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.ratelimit import rate_limit

router = APIRouter(prefix="/api/jobs/bulk", tags=["jobs"])


def operation_json(op: BulkOperation) -> dict[str, Any]:
    return BulkOperationOut.model_validate(op).model_dump(by_alias=True, mode="json")


@router.post("", dependencies=[rate_limit("bulk")])
async def start_bulk(
    body: BulkRequest, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Retry, sync or cancel many jobs: answers at once; progress is readable at
    `GET /api/jobs/bulk/{id}` and streamed as `bulk` events on `/api/events`."""
    async with db() as session:
        op = await service.start_operation(session, shop=shop, request=body)
    if op.status == "running":
        runtime.spawn(service.run_operation(runtime.sessions, op.id), name=f"bulk-{op.id}")
    return ok(operation=operation_json(op))


@router.get("/{operation_id}")
async def get_bulk(operation_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        op = await service.get_operation(session, shop=shop, operation_id=operation_id)
    return ok(operation=operation_json(op))
