"""Poll answers written many per transaction (`jobs/tasks.py: write_polls`): each row is
still a compare-and-set on the lease, so an answer for a row another worker took over is
dropped for that row alone, and the rest of the batch is written."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.db.group_commit import GroupCommit
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.tasks import Polled, Seen, write_polls
from pikcel_jobs.pikcel.schemas import Job as RemoteJob
from pikcel_jobs.worker.claim import LeaseLost
from tests.support.seeding import seed_jobs

Sessions = async_sessionmaker[AsyncSession]


def completed(remote_id: str) -> RemoteJob:
    return RemoteJob.model_validate({
        "id": remote_id, "tool_id": "background-removal", "status": "completed",
        "credits_used": 1, "processing_time_ms": 900, "progress": 100,
        "output_image_url": "https://cdn.example.com/out.png",
        "completed_at": datetime.now(UTC).isoformat(),
    })  # fmt: skip


async def test_an_answer_for_a_row_leased_elsewhere_is_dropped_alone(
    sessions: Sessions, app_settings: Settings, shop: str
) -> None:
    ours, theirs = await seed_jobs(sessions, shop, 2, status="processing")
    expires = datetime.now(UTC) + timedelta(minutes=5)
    async with unit_of_work(sessions) as session:
        for job_id, owner in ((ours, "worker-a"), (theirs, "worker-b")):
            job = await session.get(Job, job_id)
            assert job is not None
            job.pikcel_job_id = f"remote-{job_id}"
            job.lease_owner, job.lease_expires_at = owner, expires

    ctx: Any = SimpleNamespace(owner="worker-a", settings=app_settings)
    writer = GroupCommit(sessions, partial(write_polls, ctx=ctx), name="test")
    try:
        results = await asyncio.gather(
            writer.submit(Polled(ours, completed(f"remote-{ours}"))),
            writer.submit(Polled(theirs, completed(f"remote-{theirs}"))),
            return_exceptions=True,
        )
    finally:
        await writer.stop()

    assert results[0] is None
    assert isinstance(results[1], LeaseLost)
    async with unit_of_work(sessions, read_only=True) as session:
        rows = {j.id: j for j in (await session.execute(select(Job).where(Job.shop == shop))).scalars()}
        changes = (
            await session.execute(
                select(JobEvent.job_id, JobEvent.status).where(
                    JobEvent.shop == shop, JobEvent.kind == "status"
                )
            )
        ).all()
    mine, other = rows[ours], rows[theirs]
    assert mine.status == "completed" and mine.credits_used == 1 and mine.progress == 100
    assert mine.lease_owner is None and mine.lease_expires_at is None  # given back
    assert other.status == "processing" and other.lease_owner == "worker-b"  # untouched
    assert changes == [(ours, "completed")]


def still_working(remote_id: str, progress: int) -> RemoteJob:
    return RemoteJob.model_validate({
        "id": remote_id, "tool_id": "background-removal", "status": "processing",
        "progress": progress,
    })  # fmt: skip


async def test_still_working_answers_are_written_as_seen_or_from_the_row_as_it_is_now(
    sessions: Sessions, app_settings: Settings, shop: str
) -> None:
    """"Still working" about a row as the claim saw it: written by compare-and-set with
    nothing read first. A row a webhook moved meanwhile fails that check and is written
    from its current state; a row another worker holds is dropped alone."""
    unchanged, moved, elsewhere = await seed_jobs(sessions, shop, 3, status="processing")
    expires = datetime.now(UTC) + timedelta(minutes=5)
    async with unit_of_work(sessions) as session:
        for job_id, owner in ((unchanged, "worker-a"), (moved, "worker-a"), (elsewhere, "worker-b")):
            job = await session.get(Job, job_id)
            assert job is not None
            job.pikcel_job_id = f"remote-{job_id}"
            job.lease_owner, job.lease_expires_at = owner, expires
            job.progress, job.poll_interval_seconds = 10, 4.0
    seen = Seen("processing", 10, 4.0)
    async with unit_of_work(sessions) as session:  # a webhook, after the claim
        job = await session.get(Job, moved)
        assert job is not None
        job.progress, job.poll_interval_seconds = 60, 2.0

    ctx: Any = SimpleNamespace(owner="worker-a", settings=app_settings)
    before = datetime.now(UTC)
    async with unit_of_work(sessions) as session:
        results = await write_polls(session, [
            Polled(unchanged, still_working(f"remote-{unchanged}", 10), seen),
            Polled(moved, still_working(f"remote-{moved}", 10), seen),
            Polled(elsewhere, still_working(f"remote-{elsewhere}", 10), seen),
        ], ctx=ctx)  # fmt: skip

    assert results[:2] == [None, None] and isinstance(results[2], LeaseLost)
    async with unit_of_work(sessions, read_only=True) as session:
        rows = {j.id: j for j in (await session.execute(select(Job).where(Job.shop == shop))).scalars()}
    cap = app_settings.poll_max_seconds
    a, b, c = rows[unchanged], rows[moved], rows[elsewhere]
    # Backed off from the interval the claim saw, lease given back.
    assert a.poll_interval_seconds == min(cap, 8.0) and a.lease_owner is None
    assert a.next_attempt_at is not None and a.next_attempt_at >= before
    # The webhook's progress stays (an older "10" never lowers it); backed off from its 2 s.
    assert b.progress == 60 and b.poll_interval_seconds == min(cap, 4.0) and b.lease_owner is None
    assert c.lease_owner == "worker-b" and c.poll_interval_seconds == 4.0  # untouched
