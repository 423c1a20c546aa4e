"""The two places a change can cause a notification, called inside the change's
transaction, so the message is written (or not) together with the change.

* `on_job_status` — from `jobs.states.change_status`, on every status change;
* `on_batch_counts` — from `batches.counters.shift`, when jobs of a batch finish.

Jobs inside a batch never notify one by one: their batch sends one message at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pikcel_jobs.jobs.models import Job


async def on_job_status(session: AsyncSession, job: Job, old: str, new: str) -> None:
    if job.batch_id or new not in ("completed", "failed"):
        return
    from pikcel_jobs.notifications.models import Kind
    from pikcel_jobs.notifications.service import notify_job

    await notify_job(session, job, Kind.JOB_FAILED if new == "failed" else Kind.JOB_COMPLETED)


async def on_batch_counts(session: AsyncSession, batch_id: str) -> None:
    from pikcel_jobs.notifications.service import notify_batch_if_finished

    await notify_batch_if_finished(session, batch_id)
