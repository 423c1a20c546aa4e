"""Batch counters moved by atomic, set-based UPDATEs in the transaction that changes
the jobs, so they stay exact however many workers finish jobs at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.jobs.states import JobStatus

COUNTED = {
    JobStatus.COMPLETED: "completed_jobs",
    JobStatus.FAILED: "failed_jobs",
    JobStatus.CANCELLED: "cancelled_jobs",
}


async def shift(session: AsyncSession, batch_id: str, moves: Iterable[tuple[str, str]]) -> None:
    """Apply (old status, new status) moves of jobs of one batch to its counters."""
    delta: Counter[str] = Counter()
    started = finishing = False
    for old, new in moves:
        if old in COUNTED:
            delta[COUNTED[JobStatus(old)]] -= 1
        if new in COUNTED:
            delta[COUNTED[JobStatus(new)]] += 1
        started = started or new != JobStatus.SCHEDULED
        finishing = finishing or new in COUNTED
    if not delta and not started:
        return
    t = JobBatch.__table__.c
    completed = t.completed_jobs + delta["completed_jobs"]
    failed = t.failed_jobs + delta["failed_jobs"]
    cancelled = t.cancelled_jobs + delta["cancelled_jobs"]
    done = completed + failed + cancelled
    status = case(
        (
            done < t.total_jobs,
            case((done > 0, "processing"), else_="processing" if started else t.status),
        ),
        (failed + cancelled == 0, "completed"),
        (completed == 0, "failed"),
        else_="partial",
    )
    await session.execute(
        update(JobBatch)
        .where(JobBatch.id == batch_id)
        .values(
            completed_jobs=completed, failed_jobs=failed, cancelled_jobs=cancelled, status=status
        )
        .execution_options(synchronize_session=False)
    )
    if finishing:  # the batch may just have finished: one message for all its jobs
        from pikcel_jobs.notifications.hooks import on_batch_counts

        await on_batch_counts(session, batch_id)
