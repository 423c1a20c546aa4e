"""The worker's push handler: our stored output onto a Shopify product, step by step.

    queued ──► uploading ──(staged upload; checkpoint push_resource_url)
                         ──(adopt our media by alt marker, or attach; checkpoint media id)──►
    attached ──(READY? else reschedule; FAILED → delete it, fail with Shopify's reason)
             ──(replace: only now remove the original from the product)──► pushed
    reverting ──(replace: add the original back, then remove ours)──► reverted

Every step is safe to repeat after a crash anywhere: the staged upload is only a
temporary object, the alt text carries `pikcel:<job-id>` so an attach that happened
before the crash is found and adopted instead of repeated, and adding or removing a
product reference is idempotent. The original image is never removed before ours is
READY. Network calls run with no transaction open; each checkpoint is a short write
through `owned_job` (compare-and-set on the lease). Throttling, 5xx and network errors
back off durably in `push_next_at`; anything else fails the push with a message."""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import record_event
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.states import PushStatus, change_push_status
from pikcel_jobs.jobs.tasks import backoff
from pikcel_jobs.push.service import push_problem
from pikcel_jobs.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyOAuthError,
    ShopifyTransientError,
    ShopifyUserError,
    StagedUploadError,
)
from pikcel_jobs.shopify.graphql import ShopifyGraphQL
from pikcel_jobs.shopify.media import (
    add_media_reference,
    alt_marker,
    alt_with_marker,
    attach_media,
    delete_file,
    find_media_by_alt,
    get_media,
    remove_media_from_product,
    staged_upload,
    wait_media_ready,
)
from pikcel_jobs.shops.connect import forget_token, graphql_for_shop
from pikcel_jobs.shops.service import ShopNotConnected
from pikcel_jobs.worker.claim import LeaseLost, owned_job
from pikcel_jobs.worker.context import WorkerContext

log = logging.getLogger("pikcel_jobs.push")
P = PushStatus
ACTIVE = frozenset({P.QUEUED, P.UPLOADING, P.ATTACHED, P.REVERTING})
READY_WAIT_SECONDS = 3.0  # per handler run; then the row is rescheduled
READY_RECHECK = timedelta(seconds=1)
READY_DEADLINE = timedelta(minutes=15)
MAX_PUSH_TRIES = 8
# Called after each step with its name; tests raise in it to simulate a crash there.
StepHook = Callable[[str], Awaitable[None]]
PUSH_STEPS = (
    "started", "uploaded", "upload_saved", "attached", "attach_saved", "ready",
    "original_removed", "pushed",
)  # fmt: skip
REVERT_STEPS = ("original_restored", "ours_removed", "reverted")
FILE_GONE = "FILE_DOES_NOT_EXIST"
NOT_CONNECTED = (
    "this shop is not connected to Shopify any more; open the app from Shopify admin, "
    "then push again"
)


class PushFailed(Exception):
    """A permanent failure; the message is for the merchant."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _no_hook(_: str) -> None:
    return None


async def run_push(ctx: WorkerContext, job_id: str) -> None:
    """Queue handler: do whatever push work is due for one claimed job."""
    await advance_push(ctx, job_id)


async def advance_push(ctx: WorkerContext, job_id: str, *, hook: StepHook | None = None) -> None:
    step = hook or _no_hook
    async with unit_of_work(ctx.sessions, read_only=True) as session:
        job = await session.get(Job, job_id)
    if job is None or job.lease_owner != ctx.owner:
        return
    if PushStatus(job.push_status) not in ACTIVE:
        async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner) as (_, row):
            row.push_next_at = None  # nothing left to do: stop being due
        return
    try:
        if job.push_status == P.REVERTING:
            await _revert(ctx, job, step)
        else:
            await _push(ctx, job, step)
    except PushFailed as exc:
        await _fail(ctx, job_id, exc.message)
    except ShopNotConnected:
        await _fail(ctx, job_id, NOT_CONNECTED)
    except (ShopifyTransientError, httpx.TransportError) as exc:
        await _retry_later(ctx, job_id, exc)
    except ShopifyAuthError as exc:
        if exc.status == 403 and not isinstance(exc, ShopifyOAuthError):
            await _fail(ctx, job_id, "the app lacks the Shopify permission to change products")
        else:  # the token was refused, or could not be refreshed
            if exc.status == 401:
                await forget_token(ctx.sessions, job.shop)
            await _fail(ctx, job_id, NOT_CONNECTED)
    except ShopifyError as exc:
        await _fail(ctx, job_id, shopify_message(exc))


# ---- push ------------------------------------------------------------------------------


async def _push(ctx: WorkerContext, job: Job, step: StepHook) -> None:
    gql: ShopifyGraphQL | None = None
    while True:
        status = PushStatus(job.push_status)
        if status is P.QUEUED:
            problem = push_problem(job, job.push_mode or "add")
            if problem:
                raise PushFailed(problem)
            job = await _checkpoint(
                ctx, job.id, expect=P.QUEUED, to=P.UPLOADING, fields={"push_step_at": utcnow()}
            )
            await step("started")
        elif status is P.UPLOADING:
            gql = gql or await _shopify(ctx, job.shop)
            product_id = job.product_id
            assert product_id is not None
            if job.push_resource_url is None:
                data, filename, mime = await _stored_output(ctx, job)
                resource = await staged_upload(gql, _http(ctx), data, filename, mime)
                await step("uploaded")
                job = await _checkpoint(
                    ctx, job.id, expect=P.UPLOADING, fields={"push_resource_url": resource}
                )
                await step("upload_saved")
                continue
            # Attached before a crash? Then our media is on the product already: adopt it.
            media_id = await find_media_by_alt(gql, product_id, alt_marker(job.id))
            if media_id is None:
                alt = alt_with_marker(job.product_title or job.tool_name, job.id)
                media_id = await attach_media(gql, product_id, job.push_resource_url, alt)
                await step("attached")
            job = await _checkpoint(
                ctx, job.id, expect=P.UPLOADING, to=P.ATTACHED,
                fields={"shopify_media_id": media_id, "push_step_at": utcnow(), "push_tries": 0},
                data={"mediaId": media_id},
            )  # fmt: skip
            await step("attach_saved")
        elif status is P.ATTACHED:
            gql = gql or await _shopify(ctx, job.shop)
            await _finish(ctx, job, gql, step)
            return
        else:
            return


async def _finish(ctx: WorkerContext, job: Job, gql: ShopifyGraphQL, step: StepHook) -> None:
    """Wait (briefly) for READY; then, for a replace, detach the original; then done."""
    media_id, product_id = job.shopify_media_id, job.product_id
    assert media_id is not None and product_id is not None
    state = await get_media(gql, media_id)
    if state is None:
        raise PushFailed(
            job.push_error or "the image was removed in Shopify before it was ready; push again"
        )
    if not (state.ready or state.failed):
        state = await wait_media_ready(gql, media_id, timeout=READY_WAIT_SECONDS, poll_interval=0.2)
    if state.failed:
        message = f"Shopify could not process the image: {state.message}"
        await _checkpoint(ctx, job.id, expect=P.ATTACHED, fields={"push_error": message})
        await step("failure_saved")
        await _delete_quietly(gql, media_id)
        await step("failed_deleted")
        await _fail(ctx, job.id, message, fields={"shopify_media_id": None})
        return
    if not state.ready:
        started = job.push_step_at or utcnow()
        if utcnow() - started > READY_DEADLINE:
            minutes = int(READY_DEADLINE.total_seconds() // 60)
            raise PushFailed(
                f"Shopify was still processing the image after {minutes} minutes; push again "
                "later to check on it"
            )
        async with owned_job(ctx.sessions, job_id=job.id, owner=ctx.owner) as (_, row):
            if row.push_status == P.ATTACHED:
                row.push_next_at = utcnow() + READY_RECHECK
        return
    await step("ready")
    if job.push_mode == "replace" and job.image_id and job.image_id != media_id:
        # Only now that ours is READY does the original leave the product (it stays in
        # the shop's Files, so a revert can bring it back).
        await _remove_reference(gql, product_id, job.image_id)
        await step("original_removed")
    now = utcnow()
    await _checkpoint(
        ctx, job.id, expect=P.ATTACHED, to=P.PUSHED, release=True,
        fields={"pushed_to_shopify": True, "pushed_at": now, "push_next_at": None,
                "push_error": None, "push_tries": 0, "push_resource_url": None,
                "push_step_at": now},
        data={"mediaId": media_id, "mode": job.push_mode},
    )  # fmt: skip
    await step("pushed")


# ---- revert ----------------------------------------------------------------------------


async def _revert(ctx: WorkerContext, job: Job, step: StepHook) -> None:
    gql = await _shopify(ctx, job.shop)
    media_id, product_id = job.shopify_media_id, job.product_id
    assert product_id is not None
    if job.push_mode == "replace" and job.image_id and job.image_id != media_id:
        try:
            await add_media_reference(gql, product_id, job.image_id)
        except ShopifyUserError as exc:
            if FILE_GONE in exc.codes:
                raise PushFailed(
                    "the original image no longer exists in Shopify, so it cannot be put back"
                ) from exc
            raise
        await step("original_restored")
    if media_id:
        await _remove_reference(gql, product_id, media_id)
    await step("ours_removed")
    await _checkpoint(
        ctx, job.id, expect=P.REVERTING, to=P.REVERTED, release=True,
        fields={"pushed_to_shopify": False, "push_next_at": None, "push_error": None,
                "push_tries": 0},
    )  # fmt: skip
    await step("reverted")


# ---- helpers ---------------------------------------------------------------------------


def _http(ctx: WorkerContext) -> httpx.AsyncClient:
    return ctx.shopify_http or ctx.http


async def _shopify(ctx: WorkerContext, shop: str) -> ShopifyGraphQL:
    return await graphql_for_shop(ctx.sessions, ctx.settings, _http(ctx), shop=shop)


async def _stored_output(ctx: WorkerContext, job: Job) -> tuple[bytes, str, str]:
    assert job.output_key is not None
    try:
        data = await ctx.store.get(job.output_key)
    except FileNotFoundError:
        raise PushFailed(
            "our stored copy of the output image is missing; retry the job to make it again"
        ) from None
    mime = mimetypes.guess_type(job.output_key)[0] or "image/png"
    ext = job.output_key.rsplit(".", 1)[-1] if "." in job.output_key else "png"
    return data, f"pikcel-{job.tool_id}-{job.id[-12:]}.{ext}", mime


async def _remove_reference(gql: ShopifyGraphQL, product_id: str, media_id: str) -> None:
    try:
        await remove_media_from_product(gql, product_id, media_id)
    except ShopifyUserError as exc:
        if FILE_GONE not in exc.codes:  # already deleted in Shopify: nothing to remove
            raise


async def _delete_quietly(gql: ShopifyGraphQL, media_id: str) -> None:
    try:
        await delete_file(gql, media_id)
    except ShopifyUserError as exc:
        if FILE_GONE not in exc.codes:
            raise


def shopify_message(exc: ShopifyError) -> str:
    """Shopify's refusal in a merchant's words."""
    if isinstance(exc, ShopifyUserError):
        texts = [str(e.get("message", "")) for e in exc.user_errors]
        if any("does not exist" in t and "roduct" in t for t in texts) or (
            "REFERENCE_TARGET_DOES_NOT_EXIST" in exc.codes
        ):
            return "the product no longer exists in Shopify"
        return "Shopify refused the change: " + "; ".join(t for t in texts if t)
    if isinstance(exc, StagedUploadError):
        return f"Shopify refused the image upload (HTTP {exc.status})"
    return f"Shopify refused the push: {exc}"


async def _checkpoint(
    ctx: WorkerContext,
    job_id: str,
    *,
    expect: PushStatus,
    to: PushStatus | None = None,
    fields: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    release: bool = False,
) -> Job:
    """Write a step's result while the lease is ours and the push is where we left it."""
    async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner, release=release) as (
        session,
        row,
    ):
        if row.push_status != expect:
            raise LeaseLost(job_id)
        if to is not None:
            change_push_status(session, row, to, data=data)
        for name, value in (fields or {}).items():
            setattr(row, name, value)
    return row


async def _fail(
    ctx: WorkerContext, job_id: str, message: str, *, fields: dict[str, Any] | None = None
) -> None:
    async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner) as (session, row):
        fail_in(session, row, message, fields=fields)


def fail_in(
    session: AsyncSession, row: Job, message: str, *, fields: dict[str, Any] | None = None
) -> None:
    """Fail the push of a locked row: a push fails, a revert leaves the image pushed."""
    status = PushStatus(row.push_status)
    if status is P.REVERTING:  # the pushed image stays
        change_push_status(session, row, P.PUSHED, data={"error": message})
        row.push_error = f"The revert did not go through: {message}"
    elif status in ACTIVE:
        change_push_status(session, row, P.FAILED, data={"error": message})
        row.push_error = message
    else:
        return
    row.push_next_at = None
    for name, value in (fields or {}).items():
        setattr(row, name, value)
    log.warning("push of %s failed: %s", row.id, message)


async def _retry_later(ctx: WorkerContext, job_id: str, exc: Exception) -> None:
    retry_after = getattr(exc, "retry_after", None)
    reason = str(exc) or type(exc).__name__
    async with owned_job(ctx.sessions, job_id=job_id, owner=ctx.owner) as (session, row):
        if PushStatus(row.push_status) not in ACTIVE:
            return
        row.push_tries += 1
        if row.push_tries > MAX_PUSH_TRIES:
            fail_in(session, row, f"Shopify kept failing ({reason}); push again later")
            return
        row.push_next_at = utcnow() + backoff(row.push_tries, retry_after)
        record_event(
            session, row, "waiting", {"push": True, "reason": reason, "tries": row.push_tries}
        )
        log.info("push of %s will be retried: %s", job_id, reason)
