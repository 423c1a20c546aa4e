"""JSON routes for jobs (DESIGN §5). Thin: parse, call the service, shape the answer."""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pikcel_jobs.core.errors import InvalidInput, NotFound, UpstreamError
from pikcel_jobs.jobs import actions, service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.params import filter_from_query, paging_from_query
from pikcel_jobs.jobs.schemas import (
    AttemptOut,
    EventOut,
    JobCreate,
    JobDetailOut,
    JobOut,
    RescheduleBody,
)
from pikcel_jobs.jobs.states import TERMINAL, JobStatus
from pikcel_jobs.jobs.tracking import apply_remote
from pikcel_jobs.net.fetch import UnsafeURL, check_input_urls
from pikcel_jobs.pikcel.errors import PikcelError
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.web.deps import AppRuntime, BodyJobId, Db, read_fields
from pikcel_jobs.web.ratelimit import rate_limit

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def job_json(job: Job) -> dict[str, Any]:
    return JobOut.model_validate(job).model_dump(by_alias=True, mode="json")


def ok(status_code: int = 200, **payload: Any) -> JSONResponse:
    return JSONResponse({"success": True, **payload}, status_code=status_code)


JobAction = Callable[..., Awaitable[Job]]


async def act_on_job(
    action: JobAction,
    *,
    db: Db,
    runtime: Runtime,
    shop: str,
    job_id: str,
    wakes_worker: bool = True,
) -> JSONResponse:
    """The shape of every `{jobId}` action route: one transaction around a shop-scoped
    service call, the worker told there is work, `{success, job}` back."""
    async with db() as session:
        job = await action(session, shop=shop, job_id=job_id)
    if wakes_worker:
        runtime.nudge()
    return ok(job=job_json(job))


async def refuse_unsafe_urls(urls: list[str], runtime: Runtime, field: str) -> None:
    """400 for an image address PikcelAI must not be sent to fetch (private, loopback,
    link-local or metadata addresses; plain http in production)."""
    try:
        await check_input_urls(urls, runtime.fetch_policy)
    except UnsafeURL as exc:
        raise InvalidInput(f"{field}: {exc}") from None


@router.post("", status_code=201, dependencies=[rate_limit("create")])
async def create_job(
    body: JobCreate, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Record a job; the worker dispatches it to PikcelAI."""
    if body.input_image_url is None:
        raise InvalidInput("give inputImageUrl; picking a product image needs the Shopify link")
    await refuse_unsafe_urls([str(body.input_image_url)], runtime, "inputImageUrl")
    async with db() as session:
        job = await service.create_job(
            session, shop=shop, data=body, input_image_url=str(body.input_image_url)
        )
    runtime.nudge()
    return ok(201, job=job_json(job))


@router.get("")
async def list_jobs(request: Request, shop: ShopDomain, db: Db) -> JSONResponse:
    job_filter = filter_from_query(request.query_params)
    paging = paging_from_query(request.query_params)
    async with db(read_only=True) as session:
        page = await service.list_jobs(
            session, shop=shop, job_filter=job_filter,
            cursor=paging.cursor, limit=paging.limit, offset=paging.offset,
        )  # fmt: skip
    return ok(
        jobs=[job_json(j) for j in page.jobs],
        nextCursor=page.next_cursor,
        total=page.total,
        totalExact=page.total_exact,
    )


@router.get("/stats")
async def job_stats(request: Request, shop: ShopDomain, db: Db) -> JSONResponse:
    job_filter = filter_from_query(request.query_params)
    async with db(read_only=True) as session:
        stats = await service.job_stats(session, shop=shop, job_filter=job_filter)
    return ok(stats=stats.model_dump(by_alias=True, mode="json"))


@router.post("/sync")
async def sync_job(
    job_id: BodyJobId, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Ask PikcelAI now (the worker also polls on its own)."""
    async with db(read_only=True) as session:
        job = await service.get_job(session, shop=shop, job_id=job_id)
    if job.pikcel_job_id is not None and JobStatus(job.status) not in TERMINAL:
        try:
            remote = await runtime.pikcel.get_job(job.pikcel_job_id)
        except PikcelError as exc:
            raise UpstreamError(str(exc)) from exc
        async with db() as session:
            job = await actions.locked_job(session, shop=shop, job_id=job_id)
            if job.pikcel_job_id == remote.id:
                await apply_remote(
                    session, job, remote, via="sync",
                    poll_initial=runtime.settings.poll_initial_seconds,
                    poll_max=runtime.settings.poll_max_seconds,
                )  # fmt: skip
        runtime.nudge()
    return ok(job=job_json(job))


@router.post("/retry")
async def retry_job(
    job_id: BodyJobId, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """A new remote attempt for a failed or cancelled job; history is kept."""
    return await act_on_job(actions.retry_job, db=db, runtime=runtime, shop=shop, job_id=job_id)


@router.post("/reschedule")
async def reschedule_job(
    request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """`{jobId, scheduledFor}`: move a job that has not started; no `scheduledFor` runs it now."""
    body = RescheduleBody.model_validate(await read_fields(request))
    async with db() as session:
        job = await actions.reschedule_job(
            session, shop=shop, job_id=body.job_id, scheduled_for=body.scheduled_for
        )
    runtime.nudge()
    return ok(job=job_json(job))


@router.post("/cancel")
async def cancel_job(
    job_id: BodyJobId, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Scheduled or not yet dispatched: cancelled here. Running: cancelled upstream first."""
    async with db() as session:
        job = await actions.locked_job(session, shop=shop, job_id=job_id)
        actions.ensure_cancellable(job)
        remote_id = job.pikcel_job_id
        if remote_id is None:
            await actions.cancel_locally(session, job)
    if remote_id is not None:
        try:
            remote = await runtime.pikcel.cancel_job(remote_id)
        except PikcelError as exc:
            raise UpstreamError(f"the job could not be cancelled at PikcelAI: {exc}") from exc
        async with db() as session:
            job = await actions.locked_job(session, shop=shop, job_id=job_id)
            if job.pikcel_job_id == remote_id and JobStatus(job.status) not in TERMINAL:
                await actions.apply_cancel_answer(session, job, remote, runtime.settings)
    return ok(job=job_json(job))


@router.get("/{job_id}/output", response_class=Response)
async def job_output(job_id: str, shop: ShopDomain, db: Db, runtime: AppRuntime) -> Response:
    return await stored_image(job_id, shop, db, runtime, "output_key")


@router.get("/{job_id}/thumbnail", response_class=Response)
async def job_thumbnail(job_id: str, shop: ShopDomain, db: Db, runtime: AppRuntime) -> Response:
    return await stored_image(job_id, shop, db, runtime, "thumbnail_key")


async def stored_image(job_id: str, shop: str, db: Db, runtime: AppRuntime, which: str) -> Response:
    async with db(read_only=True) as session:
        job = await service.get_job(session, shop=shop, job_id=job_id)
    key = getattr(job, which)
    if key is None:
        raise NotFound("this job has no stored image yet")
    data = await runtime.store.get(key)
    media = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=86400"})


@router.get("/{job_id}")
async def get_job(job_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        detail = await service.get_job_detail(session, shop=shop, job_id=job_id)
        out = JobDetailOut(
            **JobOut.model_validate(detail.job).model_dump(),
            attempts=[AttemptOut.model_validate(a) for a in detail.attempts],
            events=[EventOut.model_validate(e) for e in detail.events],
        )
    return ok(job=out.model_dump(by_alias=True, mode="json"))
