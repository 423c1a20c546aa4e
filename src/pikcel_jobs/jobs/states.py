"""The one transition table for job status and push status.

Every status change goes through `change_status` / `change_push_status`, which check
the table, stamp the row and write a `JobEvent` in the same transaction. An illegal
transition raises `IllegalTransition` before anything is changed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pikcel_jobs.jobs.models import Job


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"  # waits for scheduledFor; nothing sent upstream yet
    PENDING = "pending"  # queued: to dispatch, or dispatched and waiting upstream
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset({JobStatus.SCHEDULED, JobStatus.PENDING, JobStatus.PROCESSING})
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
# Order used to keep out-of-order upstream news from moving a job backwards.
PROGRESS_RANK = {
    JobStatus.SCHEDULED: 0,
    JobStatus.PENDING: 1,
    JobStatus.PROCESSING: 2,
    JobStatus.COMPLETED: 3,
    JobStatus.FAILED: 3,
    JobStatus.CANCELLED: 3,
}

S = JobStatus
# (from, to) pairs allowed in normal operation. Leaving a terminal state is only
# possible through `retry`, which starts a new attempt.
STATUS_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (S.SCHEDULED, S.PENDING),
        (S.SCHEDULED, S.CANCELLED),
        (S.PENDING, S.PROCESSING),
        (S.PENDING, S.COMPLETED),
        (S.PENDING, S.FAILED),
        (S.PENDING, S.CANCELLED),
        (S.PROCESSING, S.COMPLETED),
        (S.PROCESSING, S.FAILED),
        (S.PROCESSING, S.CANCELLED),
    }
)
RETRY_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {(S.FAILED, S.PENDING), (S.CANCELLED, S.PENDING)}
)


class PushStatus(StrEnum):
    NONE = "none"
    AWAITING_REVIEW = "awaiting_review"
    REJECTED = "rejected"
    QUEUED = "queued"
    UPLOADING = "uploading"
    ATTACHED = "attached"  # media created on the product, waiting for READY
    PUSHED = "pushed"
    FAILED = "failed"
    REVERTING = "reverting"
    REVERTED = "reverted"


P = PushStatus
PUSH_TRANSITIONS: frozenset[tuple[PushStatus, PushStatus]] = frozenset(
    {
        (P.NONE, P.AWAITING_REVIEW),
        (P.NONE, P.QUEUED),
        (P.AWAITING_REVIEW, P.QUEUED),
        (P.AWAITING_REVIEW, P.REJECTED),
        (P.REJECTED, P.QUEUED),
        (P.QUEUED, P.UPLOADING),
        (P.QUEUED, P.FAILED),
        (P.UPLOADING, P.ATTACHED),
        (P.UPLOADING, P.FAILED),
        (P.ATTACHED, P.PUSHED),
        (P.ATTACHED, P.FAILED),
        (P.FAILED, P.QUEUED),
        (P.PUSHED, P.REVERTING),
        (P.REVERTING, P.REVERTED),
        (P.REVERTING, P.PUSHED),  # revert failed: the pushed image stays
        (P.REVERTED, P.QUEUED),
    }
)


class IllegalTransition(ValueError):
    """A change the state machine does not allow; nothing was changed."""

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"a job cannot go from {kind} '{current}' to '{target}'")
        self.kind = kind
        self.current = current
        self.target = target


def can_change_status(current: JobStatus, target: JobStatus, *, retry: bool = False) -> bool:
    pairs = RETRY_TRANSITIONS if retry else STATUS_TRANSITIONS
    return (current, target) in pairs


def can_change_push_status(current: PushStatus, target: PushStatus) -> bool:
    return (current, target) in PUSH_TRANSITIONS


async def record_new_job(session: AsyncSession, job: Job) -> None:
    """Count a new job in the rollups and announce it; call after `session.add(job)`."""
    from pikcel_jobs.analytics import rollups
    from pikcel_jobs.events.models import record_event

    await rollups.add(session, rollups.Contribution.of(job))
    record_event(session, job, "created", {"to": str(job.status)})


async def change_status(
    session: AsyncSession,
    job: Job,
    target: JobStatus,
    *,
    retry: bool = False,
    fields: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Move `job` to `target` (setting `fields` with it), keep the rollups in step and
    record the event. Raises before touching anything when the table forbids it."""
    from pikcel_jobs.analytics import rollups
    from pikcel_jobs.events.models import record_event
    from pikcel_jobs.notifications.hooks import on_job_status

    current = JobStatus(job.status)
    if not can_change_status(current, target, retry=retry):
        raise IllegalTransition("status", current, target)
    before = rollups.Contribution.of(job)
    for name, value in (fields or {}).items():
        setattr(job, name, value)
    job.status = target
    job.version += 1
    await rollups.move(session, before, rollups.Contribution.of(job))
    if job.batch_id:
        from pikcel_jobs.batches import counters

        await counters.shift(session, job.batch_id, [(current.value, target.value)])
    payload = {"from": current.value, "to": target.value, **(data or {})}
    record_event(session, job, "status", payload)
    await on_job_status(session, job, current.value, target.value)


def change_push_status(
    session: AsyncSession, job: Job, target: PushStatus, *, data: dict[str, Any] | None = None
) -> None:
    from pikcel_jobs.events.models import record_event

    current = PushStatus(job.push_status)
    if not can_change_push_status(current, target):
        raise IllegalTransition("push status", current, target)
    job.push_status = target
    job.version += 1
    record_event(session, job, "push", {"from": current.value, "to": target.value, **(data or {})})
