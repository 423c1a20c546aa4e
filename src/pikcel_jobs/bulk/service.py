"""Bulk retry / sync / cancel over up to hundreds of thousands of jobs.

The route records the operation and answers at once; `run_operation` then works
through the selection in chunks, each one transaction of a few set-based statements.
Eligibility is re-checked under lock in every chunk, so two clicks never retry a job
twice, and a resumed operation skips what is already done."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.analytics import rollups
from pikcel_jobs.batches import counters
from pikcel_jobs.bulk.models import BulkOperation
from pikcel_jobs.bulk.schemas import BulkRequest
from pikcel_jobs.core.errors import InvalidInput, NotFound
from pikcel_jobs.db.base import new_id, utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.repository import filtered
from pikcel_jobs.jobs.schemas import JobFilter
from pikcel_jobs.jobs.service import attempt_key
from pikcel_jobs.jobs.states import JobStatus, PushStatus

log = logging.getLogger("pikcel_jobs.bulk")
CHUNK = 1000
S = JobStatus
ELIGIBLE = {
    "retry": [S.FAILED, S.CANCELLED],
    "cancel": [S.SCHEDULED, S.PENDING, S.PROCESSING],
    "sync": [S.PENDING, S.PROCESSING],
    "push": [S.COMPLETED],
    "approve": [S.COMPLETED],
}


def selection_filter(request: BulkRequest) -> JobFilter | None:
    if request.filter is None:
        return None
    from pydantic import ValidationError

    from pikcel_jobs.web.errors import describe_validation

    try:
        return JobFilter.model_validate(request.filter)
    except ValidationError as exc:
        raise InvalidInput("filter: " + describe_validation(list(exc.errors()))) from None


def eligible(shop: str, action: str, selection: dict[str, Any]) -> Any:
    """SELECT of the jobs the operation still has to act on."""
    if "jobIds" in selection:
        stmt = select(Job).where(Job.shop == shop, Job.id.in_(selection["jobIds"]))
    else:
        stmt = filtered(shop, JobFilter.model_validate(selection["filter"]))
    stmt = stmt.where(Job.status.in_([s.value for s in ELIGIBLE[action]]))
    if action == "sync":
        stmt = stmt.where(Job.pikcel_job_id.is_not(None))
    elif action == "push":
        stmt = stmt.where(*pushable_conditions())
    elif action == "approve":
        stmt = stmt.where(Job.push_status == PushStatus.AWAITING_REVIEW.value)
    return stmt


def pushable_conditions() -> list[Any]:
    from pikcel_jobs.push.service import PUSHABLE

    return [
        Job.push_status.in_([p.value for p in PUSHABLE]),
        Job.output_key.is_not(None),
        Job.product_id.is_not(None),
    ]


async def start_operation(
    session: AsyncSession, *, shop: str, request: BulkRequest
) -> BulkOperation:
    job_filter = selection_filter(request)
    selection: dict[str, Any] = (
        {"jobIds": sorted(set(request.job_ids or []))}
        if job_filter is None
        else {"filter": job_filter.model_dump(by_alias=True, mode="json", exclude_defaults=True)}
    )
    stmt = eligible(shop, request.action, selection)
    total = int(
        (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    )
    now = utcnow()
    op = BulkOperation(
        id=new_id(), shop=shop, action=request.action, status="running" if total else "completed",
        total=total, selection=selection, created_at=now, heartbeat_at=now,
        finished_at=None if total else now,
        message=None if total else "no job matches this action",
    )  # fmt: skip
    session.add(op)
    record_progress(session, op)
    return op


def record_progress(session: AsyncSession, op: BulkOperation) -> None:
    data = {
        "action": op.action, "total": op.total, "processed": op.processed,
        "succeeded": op.succeeded, "skipped": op.skipped, "message": op.message,
    }  # fmt: skip
    session.add(JobEvent(shop=op.shop, job_id=op.id, kind="bulk", status=op.status, data=data))


async def get_operation(session: AsyncSession, *, shop: str, operation_id: str) -> BulkOperation:
    op = (
        await session.execute(
            select(BulkOperation).where(
                BulkOperation.shop == shop, BulkOperation.id == operation_id
            )
        )
    ).scalar_one_or_none()
    if op is None:
        raise NotFound("bulk operation not found")
    return op


async def chunks(
    sessions: async_sessionmaker[AsyncSession], op: BulkOperation
) -> AsyncIterator[list[str]]:
    """Keyset walk over the selection, newest first, CHUNK ids at a time."""
    position: tuple[datetime, str] | None = None
    while True:
        async with unit_of_work(sessions, read_only=True) as session:
            stmt = eligible(op.shop, op.action, op.selection).with_only_columns(
                Job.created_at, Job.id
            )
            if position is not None:
                stmt = stmt.where(tuple_(Job.created_at, Job.id) < position)
            rows = (
                await session.execute(
                    stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(CHUNK)
                )
            ).all()
        if not rows:
            return
        position = (rows[-1][0], rows[-1][1])
        yield [row[1] for row in rows]


async def run_operation(sessions: async_sessionmaker[AsyncSession], operation_id: str) -> None:
    async with unit_of_work(sessions, read_only=True) as session:
        op = await session.get(BulkOperation, operation_id)
    if op is None or op.status != "running":
        return
    async for ids in chunks(sessions, op):
        async with unit_of_work(sessions) as session:
            done = await ACTIONS[op.action](session, op.shop, ids)
            row = await session.get(BulkOperation, op.id, with_for_update=True)
            assert row is not None
            row.processed += len(ids)
            row.succeeded += done
            row.skipped += len(ids) - done
            row.heartbeat_at = utcnow()
            record_progress(session, row)
    async with unit_of_work(sessions) as session:
        row = await session.get(BulkOperation, op.id, with_for_update=True)
        assert row is not None
        row.status = "completed"
        row.finished_at = utcnow()
        row.total = max(row.total, row.processed)
        record_progress(session, row)


async def locked_rows(
    session: AsyncSession, shop: str, ids: Sequence[str], statuses: list[S]
) -> list[Job]:
    stmt = (
        select(Job)
        .where(Job.shop == shop, Job.id.in_(ids), Job.status.in_([s.value for s in statuses]))
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars().all())


async def move_counts(session: AsyncSession, jobs: list[Job], target: S) -> None:
    """Rollups and batch counters for a set of jobs moving to `target`, grouped."""
    deltas: Counter[tuple[str, Any, str, str]] = Counter()
    credits: Counter[tuple[str, Any, str, str]] = Counter()
    times: Counter[tuple[str, Any, str, str]] = Counter()
    timed: Counter[tuple[str, Any, str, str]] = Counter()
    batches: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for job in jobs:
        old = (job.shop, job.created_at.date(), job.tool_id, job.status)
        new = (job.shop, job.created_at.date(), job.tool_id, target.value)
        deltas[old] -= 1
        deltas[new] += 1
        credits[old] -= job.credits_used or 0
        if job.processing_time_ms is not None:
            times[old] -= job.processing_time_ms
            timed[old] -= 1
        if target is not S.PENDING:  # cancel keeps what was measured; retry clears it
            credits[new] += job.credits_used or 0
            if job.processing_time_ms is not None:
                times[new] += job.processing_time_ms
                timed[new] += 1
        if job.batch_id:
            batches[job.batch_id].append((job.status, target.value))
    keys = set(deltas) | set(credits) | set(times)
    await rollups.add_rows(
        session,
        [
            {"shop": k[0], "day": k[1], "tool_id": k[2], "status": k[3], "jobs": deltas[k],
             "credits": credits[k], "time_ms_sum": times[k], "time_ms_count": timed[k]}
            for k in keys
        ],
    )  # fmt: skip
    for batch_id, moves in batches.items():
        await counters.shift(session, batch_id, moves)


def events_for(jobs: list[Job], target: S, **data: Any) -> list[dict[str, Any]]:
    return [
        {"shop": j.shop, "job_id": j.id, "kind": "status", "status": target.value,
         "data": {"from": j.status, "to": target.value, "via": "bulk", **data},
         "created_at": utcnow()}
        for j in jobs
    ]  # fmt: skip


async def bulk_retry(session: AsyncSession, shop: str, ids: Sequence[str]) -> int:
    jobs = await locked_rows(session, shop, ids, ELIGIBLE["retry"])
    if not jobs:
        return 0
    now = utcnow()
    await move_counts(session, jobs, S.PENDING)
    job_ids = [j.id for j in jobs]
    attempts = [
        {"id": new_id(), "job_id": j.id, "number": j.attempt + 1,
         "idempotency_key": attempt_key(j.id, j.attempt + 1),
         "status": S.PENDING.value, "credits_used": 0, "created_at": now}
        for j in jobs
    ]  # fmt: skip
    events = events_for(jobs, S.PENDING)
    await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(
            status=S.PENDING.value,
            attempt=Job.attempt + 1,
            idempotency_key=Job.id + ":" + cast(Job.attempt + 1, String),
            pikcel_job_id=None,
            error_message=None,
            progress=0,
            credits_used=0,
            processing_time_ms=None,
            started_at=None,
            completed_at=None,
            output_image_url=None,
            thumbnail_url=None,
            output_key=None,
            thumbnail_key=None,
            remote_output_url=None,
            deadline_at=None,
            dispatch_errors=0,
            poll_interval_seconds=0.0,
            next_attempt_at=now,
            lease_owner=None,
            lease_expires_at=None,
            cancel_requested_at=None,
            version=Job.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(insert(JobAttempt), attempts)
    await session.execute(insert(JobEvent), events)
    return len(jobs)


async def bulk_cancel(session: AsyncSession, shop: str, ids: Sequence[str]) -> int:
    jobs = await locked_rows(session, shop, ids, ELIGIBLE["cancel"])
    now = utcnow()
    local = [j for j in jobs if j.pikcel_job_id is None]
    remote_ids = [j.id for j in jobs if j.pikcel_job_id is not None]
    if local:
        await move_counts(session, local, S.CANCELLED)
        local_ids = [j.id for j in local]
        await session.execute(
            update(Job)
            .where(Job.id.in_(local_ids))
            .values(
                status=S.CANCELLED.value,
                completed_at=now,
                next_attempt_at=None,
                version=Job.version + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(JobAttempt)
            .where(
                JobAttempt.job_id.in_(local_ids), JobAttempt.status.in_(["pending", "processing"])
            )
            .values(status=S.CANCELLED.value, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.execute(insert(JobEvent), events_for(local, S.CANCELLED))
    if remote_ids:
        # Running upstream: the worker cancels them at PikcelAI first, then here.
        await session.execute(
            update(Job)
            .where(Job.id.in_(remote_ids))
            .values(cancel_requested_at=now, next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(jobs)


async def bulk_sync(session: AsyncSession, shop: str, ids: Sequence[str]) -> int:
    result = await session.execute(
        update(Job)
        .where(
            Job.shop == shop,
            Job.id.in_(ids),
            Job.pikcel_job_id.is_not(None),
            Job.status.in_([s.value for s in ELIGIBLE["sync"]]),
        )
        .values(next_attempt_at=utcnow(), poll_interval_seconds=0.0)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def push_events(
    jobs: list[Job], target: PushStatus, now: datetime, *, via: str, mode: str | None = None
) -> list[dict[str, Any]]:
    return [
        {"shop": j.shop, "job_id": j.id, "kind": "push", "status": j.status,
         "data": {"from": j.push_status, "to": target.value, "via": via,
                  "mode": mode or j.push_mode or "add"},
         "created_at": now}
        for j in jobs
    ]  # fmt: skip


async def bulk_push(session: AsyncSession, shop: str, ids: Sequence[str]) -> int:
    """Push (add) the completed jobs' images; with review on, new ones wait for it."""
    from pikcel_jobs.push.service import review_required

    stmt = (
        select(Job)
        .where(Job.shop == shop, Job.id.in_(ids), Job.status == S.COMPLETED.value)
        .where(*pushable_conditions())
        .with_for_update()
    )
    jobs = list((await session.execute(stmt)).scalars().all())
    if not jobs:
        return 0
    now = utcnow()
    review = await review_required(session, shop)
    held = [j for j in jobs if review and j.push_status == PushStatus.NONE.value]
    queued = [j for j in jobs if j not in held]
    reset = {
        "push_mode": "add", "push_error": None, "push_resource_url": None,
        "shopify_media_id": None, "push_tries": 0, "version": Job.version + 1,
        "updated_at": now,
    }  # fmt: skip
    for group, target, extra in (
        (held, PushStatus.AWAITING_REVIEW, {"push_next_at": None, "push_step_at": None}),
        (queued, PushStatus.QUEUED, {"push_next_at": now, "push_step_at": now}),
    ):
        if not group:
            continue
        await session.execute(
            update(Job)
            .where(Job.id.in_([j.id for j in group]))
            .values(push_status=target.value, **reset, **extra)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            insert(JobEvent), push_events(group, target, now, via="bulk", mode="add")
        )
    return len(jobs)


async def bulk_approve(session: AsyncSession, shop: str, ids: Sequence[str]) -> int:
    """Jobs waiting for review: push them."""
    stmt = (
        select(Job)
        .where(
            Job.shop == shop, Job.id.in_(ids), Job.status == S.COMPLETED.value,
            Job.push_status == PushStatus.AWAITING_REVIEW.value,
        )
        .with_for_update()
    )  # fmt: skip
    jobs = list((await session.execute(stmt)).scalars().all())
    if not jobs:
        return 0
    now = utcnow()
    await session.execute(
        update(Job)
        .where(Job.id.in_([j.id for j in jobs]))
        .values(
            push_status=PushStatus.QUEUED.value,
            push_next_at=now,
            push_step_at=now,
            version=Job.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        insert(JobEvent), push_events(jobs, PushStatus.QUEUED, now, via="bulk approve")
    )
    return len(jobs)


ACTIONS = {
    "retry": bulk_retry, "cancel": bulk_cancel, "sync": bulk_sync, "push": bulk_push,
    "approve": bulk_approve,
}  # fmt: skip


async def stalled_operations(
    sessions: async_sessionmaker[AsyncSession], *, older_than: datetime
) -> list[str]:
    async with unit_of_work(sessions, read_only=True) as session:
        stmt = select(BulkOperation.id).where(
            BulkOperation.status == "running", BulkOperation.heartbeat_at < older_than
        )
        return list((await session.execute(stmt)).scalars().all())
