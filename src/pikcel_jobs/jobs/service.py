"""Job use cases. Functions take the session and never commit: the request or the
worker task that calls them is the unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.core.errors import NotFound
from pikcel_jobs.db.base import new_id, utcnow
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs import repository
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.schemas import MAX_PAGE_SIZE, Cursor, JobCreate, JobFilter, JobStats
from pikcel_jobs.jobs.states import JobStatus, record_new_job


async def create_job(
    session: AsyncSession,
    *,
    shop: str,
    data: JobCreate,
    input_image_url: str,
    tool_name: str | None = None,
    now: datetime | None = None,
) -> Job:
    """Record the job first; the worker dispatches it (a crash in between loses nothing
    and leaves no remote job we do not know about)."""
    now = now or utcnow()
    if data.batch_id is not None:
        # Only a batch of this shop (found in the identity map when the batch is being
        # created in this transaction): another shop's batch is not found.
        batch = await session.get(JobBatch, data.batch_id)
        if batch is None or batch.shop != shop:
            raise NotFound("batch not found")
    scheduled = data.scheduled_for is not None and data.scheduled_for > now
    job_id = new_id()
    job = Job(
        id=job_id,
        shop=shop,
        tool_id=data.tool_id,
        tool_name=tool_name,
        status=JobStatus.SCHEDULED if scheduled else JobStatus.PENDING,
        priority=data.priority,
        input_image_url=input_image_url,
        parameters=data.parameters,
        product_id=data.product_id,
        product_title=data.product_title,
        variant_id=data.variant_id,
        image_id=data.image_id,
        meta=data.metadata,
        template_id=data.template_id,
        scheduled_for=data.scheduled_for,
        batch_id=data.batch_id,
        next_attempt_at=data.scheduled_for if scheduled else now,
        idempotency_key=attempt_key(job_id, 1),
        attempt=1,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.add(
        JobAttempt(job_id=job.id, number=1, idempotency_key=job.idempotency_key, created_at=now)
    )
    await session.flush()
    await record_new_job(session, job)
    return job


def attempt_key(job_id: str, attempt: int) -> str:
    """The Idempotency-Key of one attempt: stable, so a dispatch retried after a crash
    can never create a second remote job, and new for each merchant retry."""
    return f"{job_id}:{attempt}"


async def get_job(session: AsyncSession, *, shop: str, job_id: str) -> Job:
    job = await repository.get(session, shop=shop, job_id=job_id)
    if job is None:
        raise NotFound("job not found")
    return job


@dataclass
class JobDetail:
    job: Job
    attempts: Sequence[JobAttempt]
    events: Sequence[JobEvent]


async def get_job_detail(session: AsyncSession, *, shop: str, job_id: str) -> JobDetail:
    job = await get_job(session, shop=shop, job_id=job_id)
    return JobDetail(
        job=job,
        attempts=await repository.attempts(session, job_id=job.id),
        events=await repository.events(session, shop=shop, job_id=job.id),
    )


@dataclass
class JobPage:
    jobs: Sequence[Job]
    next_cursor: str | None
    total: int
    total_exact: bool = True  # False: at least `total` jobs match (a capped count)


async def list_jobs(
    session: AsyncSession,
    *,
    shop: str,
    job_filter: JobFilter,
    cursor: str | None = None,
    limit: int = 25,
    offset: int | None = None,
    with_total: bool = True,
) -> JobPage:
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    position = Cursor.decode(cursor) if cursor else None
    rows, next_position = await repository.list_page(
        session, shop=shop, job_filter=job_filter, cursor=position, limit=limit, offset=offset
    )
    total, exact = (
        await repository.count(session, shop=shop, job_filter=job_filter)
        if with_total
        else (-1, False)
    )
    return JobPage(
        jobs=rows,
        next_cursor=next_position.encode() if next_position else None,
        total=total,
        total_exact=exact,
    )


async def job_stats(session: AsyncSession, *, shop: str, job_filter: JobFilter) -> JobStats:
    """Totals per status, credits, average time and success rate in one query."""
    live = {status.value for status in JobStatus}
    by_status = {
        status: row
        for status, row in (
            await repository.aggregate_by_status(session, shop=shop, job_filter=job_filter)
        ).items()
        if status in live  # archived jobs stay in analytics, not in the shop's statistics
    }
    counts = {status.value: by_status.get(status.value, (0, 0, 0, 0))[0] for status in JobStatus}
    credits = sum(row[1] for row in by_status.values())
    ms_sum = sum(row[2] for row in by_status.values())
    ms_count = sum(row[3] for row in by_status.values())
    finished = counts["completed"] + counts["failed"]
    return JobStats(
        total=sum(counts.values()),
        by_status=counts,
        credits_used=credits,
        average_processing_time_ms=round(ms_sum / ms_count, 1) if ms_count else None,
        success_rate=round(counts["completed"] / finished, 4) if finished else None,
        **{status.value: counts[status.value] for status in JobStatus},
    )
