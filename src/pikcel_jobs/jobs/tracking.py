"""Applying what PikcelAI says about a job (webhook or poll) to our row.

Monotonic and idempotent: news may repeat and arrive out of order, so a job never
moves backwards (a late `started` after `completed` changes nothing), progress only
rises, and credits are set from the remote figure, never added, so nothing counts
twice. News about an older attempt (before a retry) updates that attempt's history
only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.analytics import rollups
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.events import models as events
from pikcel_jobs.events.models import record_event
from pikcel_jobs.jobs import repository
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.states import PROGRESS_RANK, TERMINAL, JobStatus, change_status
from pikcel_jobs.shops.models import Shop


class RemoteJob(Protocol):
    """The fields of PikcelAI's Job we use (the client's model has them)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def progress(self) -> int | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def credits_used(self) -> float | None: ...
    @property
    def processing_time_ms(self) -> int | None: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def output_image_url(self) -> str | None: ...


REMOTE_STATUS = {
    "pending": JobStatus.PENDING,
    "processing": JobStatus.PROCESSING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}


def next_poll_delay(interval: float, *, changed: bool, initial: float, cap: float) -> float:
    """Adaptive backoff: soon after a change, then doubling up to the cap."""
    if changed or interval <= 0:
        return initial
    return min(cap, interval * 2)


@asynccontextmanager
async def batch_of_changes(
    session: AsyncSession, news: Sequence[tuple[Job, RemoteJob]]
) -> AsyncIterator[None]:
    """Many jobs about to take remote news in one transaction (webhooks, polls): what a
    status change reads (current attempts, the shops' notification settings) is read
    once for the jobs whose status the news moves, and rollups and events are written
    once when the block ends."""
    moving = [job for job, remote in news if moves_status(job, remote)]
    await repository.preload_current_attempts(session, moving)
    domains = sorted({job.shop for job in moving})
    # Held while the block runs: the session's identity map keeps objects only while
    # something refers to them, and `session.get(Shop, ...)` should find them there.
    shops = (
        (await session.execute(select(Shop).where(Shop.domain.in_(domains)))).scalars().all()
        if domains
        else []
    )
    async with rollups.summed(session), events.collected(session):
        yield
    del shops


def moves_status(job: Job, remote: RemoteJob) -> bool:
    """Whether the news moves the job's status forward (never backwards, never out of
    a terminal state: a terminal status has the highest rank)."""
    target = REMOTE_STATUS.get(remote.status)
    return target is not None and PROGRESS_RANK[target] > PROGRESS_RANK[JobStatus(job.status)]


def only_reschedules(status: str, progress: int, remote: RemoteJob) -> bool:
    """Whether `apply_remote` would change nothing but the next poll time of an active
    job in `status` at `progress` (the common answer: "still working")."""
    if status not in (JobStatus.PENDING, JobStatus.PROCESSING):
        return False
    target = REMOTE_STATUS.get(remote.status)
    if target is None or PROGRESS_RANK[target] > PROGRESS_RANK[JobStatus(status)]:
        return False
    return not (status == JobStatus.PROCESSING and _progress(remote) > progress)


def _progress(remote: RemoteJob) -> int:
    return -1 if remote.progress is None else max(0, min(99, int(remote.progress)))


async def apply_remote(
    session: AsyncSession,
    job: Job,
    remote: RemoteJob,
    *,
    poll_initial: float,
    poll_max: float,
    via: str,
    now: datetime | None = None,
) -> bool:
    """Merge the remote state into `job`; returns True when anything changed."""
    now = now or utcnow()
    target = REMOTE_STATUS.get(remote.status)
    if target is None:
        return False
    changed = False

    if moves_status(job, remote):  # forward only: terminal states outrank every target
        # Only a status change touches the attempt row: a bare progress poll reads nothing more.
        attempt = await repository.current_attempt(session, job=job)
        fields: dict[str, object] = {"error_message": None}
        if target is JobStatus.PROCESSING:
            fields["started_at"] = remote.started_at or now
        if target in TERMINAL:
            fields.update(
                started_at=job.started_at or remote.started_at,
                completed_at=remote.completed_at or now,
                credits_used=int(remote.credits_used or 0) if target is JobStatus.COMPLETED else 0,
                processing_time_ms=remote.processing_time_ms,
                error_message=_failure_message(remote) if target is JobStatus.FAILED else None,
            )
            if target is JobStatus.COMPLETED:
                fields.update(progress=100, remote_output_url=remote.output_image_url)
        await change_status(session, job, target, fields=fields, data={"via": via})
        changed = True
        if attempt is not None:
            attempt.status = target
            if target in TERMINAL:
                attempt.finished_at = job.completed_at
                attempt.credits_used = job.credits_used
                attempt.error_message = job.error_message

    if job.status == JobStatus.PROCESSING and remote.progress is not None:
        progress = _progress(remote)
        if progress > job.progress:
            job.progress = progress
            record_event(session, job, "progress", {"progress": progress, "via": via})
            changed = True

    schedule_next(job, changed=changed, poll_initial=poll_initial, poll_max=poll_max, now=now)
    return changed


def schedule_next(
    job: Job, *, changed: bool, poll_initial: float, poll_max: float, now: datetime
) -> None:
    """Set when the worker should next look at the job, if at all."""
    if job.status == JobStatus.COMPLETED:
        # Copy the output into our storage (due at once) unless already done.
        job.next_attempt_at = now if job.output_key is None and job.remote_output_url else None
        return
    if job.status in TERMINAL:
        job.next_attempt_at = None
        return
    job.poll_interval_seconds = next_poll_delay(
        job.poll_interval_seconds, changed=changed, initial=poll_initial, cap=poll_max
    )
    job.next_attempt_at = now + timedelta(seconds=job.poll_interval_seconds)


def _failure_message(remote: RemoteJob) -> str:
    return remote.error_message or "PikcelAI could not process this image"


async def apply_to_old_attempt(
    session: AsyncSession, attempt: JobAttempt, remote: RemoteJob
) -> bool:
    """News about a superseded remote job: keep its history, leave the job alone."""
    target = REMOTE_STATUS.get(remote.status)
    if target is None or JobStatus(attempt.status) in TERMINAL:
        return False
    if PROGRESS_RANK[target] <= PROGRESS_RANK[JobStatus(attempt.status)]:
        return False
    attempt.status = target
    if target in TERMINAL:
        attempt.finished_at = remote.completed_at or utcnow()
        attempt.credits_used = int(remote.credits_used or 0) if target is JobStatus.COMPLETED else 0
        attempt.error_message = remote.error_message
    return True
