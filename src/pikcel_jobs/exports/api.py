"""`GET /api/jobs/export.csv` and `/api/jobs/export.xlsx`: the list's filters, streamed.

Registered before the jobs router, so `export.csv` is never read as a job id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from pikcel_jobs.exports import service
from pikcel_jobs.jobs.params import filter_from_query
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import Db
from pikcel_jobs.web.ratelimit import rate_limit

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_DOC: dict[int | str, dict[str, Any]] = {200: {"description": "The file, streamed"}}


def _download(body: AsyncIterator[bytes], media_type: str, extension: str) -> StreamingResponse:
    name = service.filename(extension)
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f"attachment; filename={name}",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/export.csv", response_class=StreamingResponse, responses=EXPORT_DOC,
    dependencies=[rate_limit("export")],
)  # fmt: skip
async def export_csv(request: Request, shop: ShopDomain, db: Db) -> StreamingResponse:
    """The jobs matching the list's filters (`status`, `toolId`, `productId`, `batchId`,
    `from`, `to`, `q`, `meta.<key>`), newest first, as CSV (UTF-8 with BOM)."""
    job_filter = filter_from_query(request.query_params)
    body = service.csv_stream(lambda: db(read_only=True), shop=shop, job_filter=job_filter)
    return _download(body, "text/csv; charset=utf-8", "csv")


@router.get(
    "/export.xlsx", response_class=StreamingResponse, responses=EXPORT_DOC,
    dependencies=[rate_limit("export")],
)  # fmt: skip
async def export_xlsx(request: Request, shop: ShopDomain, db: Db) -> StreamingResponse:
    """The same jobs as an Excel workbook."""
    job_filter = filter_from_query(request.query_params)
    body = service.xlsx_stream(lambda: db(read_only=True), shop=shop, job_filter=job_filter)
    return _download(body, XLSX_TYPE, "xlsx")
