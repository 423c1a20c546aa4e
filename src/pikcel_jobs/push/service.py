"""Merchant actions on a job's push: push (add or replace), approve, reject, revert.

Each one locks the job row and checks the push status before changing it, so a double
click queues one push; the work itself is done by the worker (push/tasks.py). Services
never commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.core.errors import Conflict, InvalidInput
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.jobs.actions import locked_job
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.states import JobStatus, PushStatus, change_push_status
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.shops.service import shop_settings

PushMode = Literal["add", "replace"]
P = PushStatus
# A push may be (re)started from these; the first one is subject to review.
PUSHABLE = frozenset({P.NONE, P.FAILED, P.REVERTED, P.REJECTED})
IN_FLIGHT = frozenset({P.AWAITING_REVIEW, P.QUEUED, P.UPLOADING, P.ATTACHED})
REVERT_WINDOW = timedelta(days=30)


def push_problem(job: Job, mode: str) -> str | None:
    """Why this job cannot be pushed, in a merchant's words; None when it can."""
    if job.status != JobStatus.COMPLETED:
        return f"only completed jobs can be pushed to Shopify; this one is {job.status}"
    if not job.output_key:
        return "the output image is not stored yet; try again in a moment"
    if not job.product_id:
        return "this job has no product to push the image to"
    if mode == "replace" and not job.image_id:
        return "replace needs the product image the job started from (imageId)"
    return None


def reset_push(job: Job, *, mode: str) -> None:
    """Clear the checkpoints of an earlier push before a new one."""
    job.push_mode = mode
    job.push_error = None
    job.push_resource_url = None
    job.shopify_media_id = None
    job.push_tries = 0
    job.push_step_at = None
    job.push_next_at = None


def queue(session: AsyncSession, job: Job, *, via: str) -> None:
    change_push_status(session, job, P.QUEUED, data={"via": via, "mode": job.push_mode})
    job.push_next_at = utcnow()
    job.push_step_at = job.push_next_at


async def review_required(session: AsyncSession, shop: str) -> bool:
    return bool(shop_settings(await session.get(Shop, shop))["reviewBeforePublish"])


async def request_push(
    session: AsyncSession, *, shop: str, job_id: str, mode: PushMode = "add"
) -> Job:
    """Queue the push (or hold it for review when the shop reviews before publishing).
    A push already on its way is left alone, so a second click changes nothing."""
    job = await locked_job(session, shop=shop, job_id=job_id)
    current = PushStatus(job.push_status)
    if current in IN_FLIGHT:
        return job
    if current is P.PUSHED:
        raise Conflict(
            "this image is already on the product; revert it first to push again",
            code="ALREADY_PUSHED",
        )
    if current is P.REVERTING:
        raise Conflict("this push is being reverted; wait until it is done")
    problem = push_problem(job, mode)
    if problem:
        raise InvalidInput(problem, code="NOT_PUSHABLE")
    reset_push(job, mode=mode)
    if current is P.NONE and await review_required(session, shop):
        change_push_status(session, job, P.AWAITING_REVIEW, data={"mode": mode})
    else:
        queue(session, job, via="merchant")
    return job


async def approve(session: AsyncSession, *, shop: str, job_id: str) -> Job:
    job = await locked_job(session, shop=shop, job_id=job_id)
    current = PushStatus(job.push_status)
    if current in IN_FLIGHT - {P.AWAITING_REVIEW} or current is P.PUSHED:
        return job  # approved already
    if current is not P.AWAITING_REVIEW:
        raise Conflict("this job is not waiting for review", code="NOT_AWAITING_REVIEW")
    problem = push_problem(job, job.push_mode or "add")
    if problem:
        raise InvalidInput(problem, code="NOT_PUSHABLE")
    queue(session, job, via="approved")
    return job


async def reject(session: AsyncSession, *, shop: str, job_id: str) -> Job:
    job = await locked_job(session, shop=shop, job_id=job_id)
    current = PushStatus(job.push_status)
    if current is P.REJECTED:
        return job
    if current is not P.AWAITING_REVIEW:
        raise Conflict("this job is not waiting for review", code="NOT_AWAITING_REVIEW")
    change_push_status(session, job, P.REJECTED)
    return job


async def request_revert(session: AsyncSession, *, shop: str, job_id: str) -> Job:
    """Put the product back as it was: the worker re-adds a replaced original, then
    removes our image. Only for pushes of the last REVERT_WINDOW."""
    job = await locked_job(session, shop=shop, job_id=job_id)
    current = PushStatus(job.push_status)
    if current is P.REVERTING:
        return job
    if current is not P.PUSHED:
        raise Conflict("only an image pushed to Shopify can be reverted", code="NOT_PUSHED")
    if job.push_mode not in ("add", "replace") or not job.shopify_media_id:
        raise Conflict("this push cannot be reverted", code="NOT_REVERTIBLE")
    if job.pushed_at is None or utcnow() - job.pushed_at > REVERT_WINDOW:
        raise Conflict(
            f"a push can be reverted for {REVERT_WINDOW.days} days; this one is older",
            code="REVERT_WINDOW_PASSED",
        )
    change_push_status(session, job, P.REVERTING)
    job.push_error = None
    job.push_tries = 0
    job.push_next_at = utcnow()
    job.push_step_at = job.push_next_at
    return job


async def queue_after_completion(session: AsyncSession, job: Job) -> bool:
    """Auto-push (shop setting `autoPush`) once the output copy is stored: queued, or
    held for review when `reviewBeforePublish` is on. True when something was queued."""
    if job.push_status != P.NONE or push_problem(job, "add") is not None:
        return False
    settings = shop_settings(await session.get(Shop, job.shop))
    if not settings["autoPush"]:
        return False
    reset_push(job, mode="add")
    if settings["reviewBeforePublish"]:
        change_push_status(session, job, P.AWAITING_REVIEW, data={"mode": "add", "via": "auto"})
    else:
        queue(session, job, via="auto")
    return True
