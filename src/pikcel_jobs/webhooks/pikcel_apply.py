"""Applying verified PikcelAI webhooks, many per transaction (`db.group_commit`).

A webhook answers 2xx only once its change is committed. Deliveries that arrive while
a transaction is being written are applied together in the next one: one read of
receipts, one read of the jobs (locked in id order, so batches in other processes
cannot deadlock with it), the attempts and shops a status change reads read once,
rollups and events written once at the end, one insert of receipts, one commit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
from pikcel_jobs.db.base import table_of
from pikcel_jobs.db.group_commit import GroupCommit
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.tracking import apply_remote, apply_to_old_attempt, batch_of_changes
from pikcel_jobs.pikcel.schemas import WebhookEvent
from pikcel_jobs.webhooks.models import WebhookReceipt

log = logging.getLogger("pikcel_jobs.webhooks")


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # a delivery id already recorded: nothing applied again
    UNKNOWN_JOB = "unknown_job"  # no job or attempt with that remote id (no receipt kept)


@dataclass(frozen=True)
class Delivery:
    event: WebhookEvent
    ids: list[str]  # the ids it is known by (webhook-id, body hash)


async def apply_deliveries(
    session: AsyncSession, deliveries: list[Delivery], *, settings: Settings
) -> list[Outcome]:
    """Apply `deliveries` in arrival order inside the caller's transaction."""
    all_ids = [i for d in deliveries for i in d.ids]
    seen = set(
        (
            await session.execute(
                select(WebhookReceipt.delivery_id).where(
                    WebhookReceipt.source == "pikcel", WebhookReceipt.delivery_id.in_(all_ids)
                )
            )
        ).scalars()
    )
    remote_ids = sorted({d.event.job_id for d in deliveries})
    jobs = {
        job.pikcel_job_id: job
        for job in (
            await session.execute(
                select(Job)
                .where(Job.pikcel_job_id.in_(remote_ids))
                .order_by(Job.id)
                .with_for_update()
            )
        ).scalars()
    }
    old: dict[str, JobAttempt] = {}
    if missing := [r for r in remote_ids if r not in jobs]:
        for row in (
            await session.execute(select(JobAttempt).where(JobAttempt.pikcel_job_id.in_(missing)))
        ).scalars():
            old.setdefault(row.pikcel_job_id or "", row)

    outcomes: list[Outcome] = []
    receipts: list[dict[str, str]] = []
    news = [(jobs[d.event.job_id], d.event.job) for d in deliveries if d.event.job_id in jobs]
    async with batch_of_changes(session, news):
        for d in deliveries:
            if seen.intersection(d.ids):
                outcomes.append(Outcome.DUPLICATE)
                continue
            job, attempt = jobs.get(d.event.job_id), old.get(d.event.job_id)
            if job is not None:
                await apply_remote(
                    session, job, d.event.job, via="webhook",
                    poll_initial=settings.poll_initial_seconds, poll_max=settings.poll_max_seconds,
                )  # fmt: skip
            elif attempt is not None:
                await apply_to_old_attempt(session, attempt, d.event.job)
            else:
                # Maybe our dispatch answer is still being written: PikcelAI redelivers.
                log.warning("pikcel webhook for unknown job %s", d.event.job_id)
                outcomes.append(Outcome.UNKNOWN_JOB)
                continue
            seen.update(d.ids)
            receipts.extend({"source": "pikcel", "delivery_id": i} for i in d.ids)
            outcomes.append(Outcome.APPLIED)
    if receipts:
        await session.execute(insert(table_of(WebhookReceipt)), receipts)
    return outcomes


class WebhookApplier(GroupCommit[Delivery, Outcome]):
    """The per-process queue of verified deliveries and the task that applies them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        super().__init__(
            sessions, partial(apply_deliveries, settings=settings), name="pikcel-webhooks"
        )
