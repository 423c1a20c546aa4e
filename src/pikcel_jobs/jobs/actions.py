"""Merchant actions on one job: retry, cancel, sync. Shop-scoped; never commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import Conflict, NotFound
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.events.models import record_event
from pikcel_jobs.jobs import repository
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.service import attempt_key
from pikcel_jobs.jobs.states import RETRYABLE, TERMINAL, JobStatus, change_status
from pikcel_jobs.jobs.tracking import RemoteJob, apply_remote


async def locked_job(session: AsyncSession, *, shop: str, job_id: str) -> Job:
    job = await repository.get(session, shop=shop, job_id=job_id, for_update=True)
    if job is None:
        raise NotFound("job not found")
    return job


async def retry_job(session: AsyncSession, *, shop: str, job_id: str) -> Job:
    """Start a new remote attempt for a failed or cancelled job, keeping the history.

    The row is locked, so of two clicks one retries and the other finds the job
    already pending."""
    job = await locked_job(session, shop=shop, job_id=job_id)
    if JobStatus(job.status) not in RETRYABLE:
        if job.status == JobStatus.PENDING and job.attempt > 1:
            raise Conflict("this job is already being retried", code="ALREADY_RETRYING")
        raise Conflict(f"only failed or cancelled jobs can be retried; this one is {job.status}")
    now = utcnow()
    job.attempt += 1
    job.idempotency_key = attempt_key(job.id, job.attempt)
    session.add(
        JobAttempt(
            job_id=job.id, number=job.attempt, idempotency_key=job.idempotency_key, created_at=now
        )
    )
    await change_status(
        session, job, JobStatus.PENDING, retry=True,
        fields={
            "pikcel_job_id": None, "error_message": None, "progress": 0, "credits_used": 0,
            "processing_time_ms": None, "started_at": None, "completed_at": None,
            "output_image_url": None, "thumbnail_url": None, "output_key": None,
            "thumbnail_key": None, "remote_output_url": None, "deadline_at": None,
            "dispatch_errors": 0, "poll_interval_seconds": 0.0, "next_attempt_at": now,
            "lease_owner": None, "lease_expires_at": None,
        },
        data={"attempt": job.attempt},
    )  # fmt: skip
    return job


async def cancel_locally(
    session: AsyncSession, job: Job, *, reason: str = "cancelled by the merchant"
) -> None:
    now = utcnow()
    await change_status(
        session, job, JobStatus.CANCELLED,
        fields={"completed_at": now, "next_attempt_at": None},
        data={"reason": reason},
    )  # fmt: skip
    attempt = await repository.current_attempt(session, job=job)
    if attempt is not None:
        attempt.status = JobStatus.CANCELLED
        attempt.finished_at = now


def ensure_cancellable(job: Job) -> None:
    if JobStatus(job.status) in TERMINAL:
        raise Conflict(f"this job has already finished ({job.status}); it cannot be cancelled")


async def apply_cancel_answer(
    session: AsyncSession, job: Job, remote: RemoteJob, settings: Settings
) -> None:
    """After PikcelAI answered a cancel: take its word (it may have finished first)."""
    await apply_remote(
        session, job, remote, via="cancel",
        poll_initial=settings.poll_initial_seconds, poll_max=settings.poll_max_seconds,
    )  # fmt: skip
    if JobStatus(job.status) not in TERMINAL:
        await cancel_locally(session, job)


async def reschedule_job(
    session: AsyncSession, *, shop: str, job_id: str, scheduled_for: datetime | None
) -> Job:
    """Move a job that has not started to another time (None: run now)."""
    job = await locked_job(session, shop=shop, job_id=job_id)
    if job.status not in (JobStatus.SCHEDULED, JobStatus.PENDING) or job.pikcel_job_id is not None:
        raise Conflict("only jobs that have not been sent to PikcelAI yet can be rescheduled")
    now = utcnow()
    if scheduled_for is not None and scheduled_for > now:
        if job.status == JobStatus.PENDING:
            raise Conflict(
                "this job is already queued to run now; cancel it and create a scheduled one"
            )
        job.scheduled_for = scheduled_for
        job.next_attempt_at = scheduled_for
        record_event(session, job, "rescheduled", {"scheduledFor": scheduled_for.isoformat()})
    else:
        job.next_attempt_at = now
        if job.status == JobStatus.SCHEDULED:
            await change_status(session, job, JobStatus.PENDING, data={"via": "run now"})
    return job
