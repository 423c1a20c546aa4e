"""`/app/batches` (list with counters and progress) and `/app/batches/{id}` (counters,
status, progress, the batch's latest jobs, a link to all of them in the jobs list).
Reads through `batches.service`; the counters are kept exact by the batch service."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pikcel_jobs.batches import service
from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.jobs import service as jobs
from pikcel_jobs.jobs.schemas import JobFilter
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import Db
from pikcel_jobs.web.pages.common import PageRoute, latest_event_id, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LIST_LIMIT = 100
DETAIL_JOBS = 10
STATUS_TONES = {
    "pending": "info",
    "processing": "attention",
    "completed": "success",
    "partial": "attention",
    "failed": "critical",
}


@dataclass(frozen=True)
class BatchView:
    """A batch with what the page shows about it."""

    batch: JobBatch

    @property
    def finished(self) -> int:
        b = self.batch
        return b.completed_jobs + b.failed_jobs + b.cancelled_jobs

    @property
    def running(self) -> int:
        return max(0, self.batch.total_jobs - self.finished)

    @property
    def percent(self) -> int:
        total = self.batch.total_jobs
        return 100 if total == 0 else min(100, round(100 * self.finished / total))

    @property
    def tone(self) -> str:
        return STATUS_TONES.get(self.batch.status, "neutral")

    @property
    def title(self) -> str:
        return self.batch.name or f"Batch {self.batch.id[:8]}"


@router.get("/app/batches", response_class=HTMLResponse)
async def batches_list(request: Request, shop: ShopDomain, db: Db) -> HTMLResponse:
    async with db(read_only=True) as session:
        batches = await service.list_batches(session, shop=shop, limit=LIST_LIMIT)
        last_id = await latest_event_id(session, shop=shop)
    return render(
        request, "batches.html",
        {"batches": [BatchView(b) for b in batches], "limit": LIST_LIMIT},
        shop=shop, active="batches", live=True, last_event_id=last_id,
    )  # fmt: skip


@router.get("/app/batches/{batch_id}", response_class=HTMLResponse)
async def batch_detail(batch_id: str, request: Request, shop: ShopDomain, db: Db) -> HTMLResponse:
    async with db(read_only=True) as session:
        batch = await service.get_batch(session, shop=shop, batch_id=batch_id)
        page = await jobs.list_jobs(
            session, shop=shop, job_filter=JobFilter(batch_id=batch.id), limit=DETAIL_JOBS,
            with_total=False,
        )  # fmt: skip
        last_id = await latest_event_id(session, shop=shop)
    return render(
        request, "batches_detail.html",
        {"view": BatchView(batch), "batch": batch, "jobs": page.jobs,
         "more_jobs": page.next_cursor is not None},
        shop=shop, active="batches", live=True, last_event_id=last_id,
    )  # fmt: skip
