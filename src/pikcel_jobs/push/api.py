"""Routes of the push to Shopify (DESIGN §5): push-to-shopify, approve, reject, revert,
and the products of the shop for the job-creation picker. Thin: parse, call the
service, shape the answer; the worker does the Shopify calls of a push."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from pikcel_jobs.core.errors import InvalidInput, UpstreamError
from pikcel_jobs.jobs.actions import locked_job
from pikcel_jobs.jobs.api import act_on_job, job_json, ok
from pikcel_jobs.push import service
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shopify.errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyOAuthError,
    ShopifyTransientError,
)
from pikcel_jobs.shopify.products import Product, list_products
from pikcel_jobs.shops.auth import ShopDomain, session_token_of
from pikcel_jobs.shops.connect import (
    NOT_CONNECTED,
    connect_with_session_token,
    forget_token,
    graphql_for_shop,
    is_token_refused,
)
from pikcel_jobs.shops.service import ShopNotConnected
from pikcel_jobs.web.deps import AppRuntime, BodyJobId, Db, read_fields

router = APIRouter(tags=["push"])
T = TypeVar("T")
PRODUCTS_PAGE = 24


async def push_options(request: Request) -> dict[str, Any]:
    data = await read_fields(request)
    mode = data.get("mode") or "add"
    if mode not in ("add", "replace"):
        raise InvalidInput("mode must be add or replace")
    image_id = data.get("imageId")
    if image_id is not None and (not isinstance(image_id, str) or not 0 < len(image_id) <= 100):
        raise InvalidInput("imageId must be a product image id")
    return {"mode": mode, "image_id": image_id}


PushOptions = Annotated[dict[str, Any], Depends(push_options)]


@router.post("/api/jobs/push-to-shopify")
async def push_to_shopify(
    job_id: BodyJobId, options: PushOptions, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Queue the push of a completed job's image onto its product (`mode`: add, or
    replace the image the job started from). Answers at once; the worker pushes. With
    review before publishing on, the job waits for approval first."""
    async with db() as session:
        if options["image_id"]:
            job = await locked_job(session, shop=shop, job_id=job_id)
            if job.image_id is None:
                job.image_id = options["image_id"]
            elif job.image_id != options["image_id"]:
                raise InvalidInput("imageId is not the image this job started from")
        job = await service.request_push(session, shop=shop, job_id=job_id, mode=options["mode"])
    runtime.nudge()
    return ok(job=job_json(job))


@router.post("/api/jobs/approve")
async def approve_push(
    job_id: BodyJobId, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """A job waiting for review: push it."""
    return await act_on_job(service.approve, db=db, runtime=runtime, shop=shop, job_id=job_id)


@router.post("/api/jobs/reject")
async def reject_push(
    job_id: BodyJobId, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """A job waiting for review: do not push it; the product is left untouched."""
    return await act_on_job(
        service.reject, db=db, runtime=runtime, shop=shop, job_id=job_id, wakes_worker=False
    )


@router.post("/api/jobs/revert")
async def revert_push(
    job_id: BodyJobId, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Undo a push: a replaced original goes back on the product, ours comes off."""
    return await act_on_job(
        service.request_revert, db=db, runtime=runtime, shop=shop, job_id=job_id
    )


async def _products_page(
    runtime: Runtime, shop: str, query: str, cursor: str
) -> tuple[list[Product], str | None]:
    gql = await graphql_for_shop(
        runtime.sessions, runtime.settings, runtime.shopify_http, shop=shop
    )
    return await list_products(gql, query or None, after=cursor or None, first=PRODUCTS_PAGE)


async def _reconnected(
    request: Request, runtime: Runtime, shop: str, call: Callable[[], Awaitable[T]]
) -> T:
    """`call()`; when Shopify refuses the stored token (or it cannot be refreshed) and
    the request carries a session token, connect again with it and call once more."""
    try:
        return await call()
    except (ShopNotConnected, ShopifyAuthError) as exc:
        refused = isinstance(exc, ShopNotConnected | ShopifyOAuthError) or is_token_refused(exc)
        if not refused:
            raise
        session_token = session_token_of(request)
        if session_token is None:
            if is_token_refused(exc):
                await forget_token(runtime.sessions, shop)
            raise ShopNotConnected(NOT_CONNECTED) from exc
    await connect_with_session_token(
        runtime.sessions, runtime.settings, runtime.shopify_http, shop=shop,
        session_token=session_token,
    )  # fmt: skip
    return await call()


@router.get("/api/products")
async def products(
    request: Request,
    shop: ShopDomain,
    runtime: AppRuntime,
    query: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str, Query(max_length=500)] = "",
) -> JSONResponse:
    """The shop's products with their images, sorted by title; `query` is Shopify's
    product search, `nextCursor` the next page."""
    try:
        page, next_cursor = await _reconnected(
            request, runtime, shop, lambda: _products_page(runtime, shop, query, cursor)
        )
    except ShopNotConnected:
        raise
    except ShopifyAuthError as exc:
        raise ShopNotConnected(NOT_CONNECTED) from exc
    except ShopifyTransientError as exc:
        raise UpstreamError(
            "Shopify is busy or could not be reached just now; try again in a moment"
        ) from exc
    except ShopifyGraphQLError as exc:
        if cursor:
            raise InvalidInput("that page of products is no longer available; start over") from exc
        raise UpstreamError(f"Shopify could not list your products: {exc}") from exc
    except ShopifyError as exc:
        raise UpstreamError(f"Shopify could not list your products: {exc}") from exc
    return ok(products=[p.model_dump(by_alias=True) for p in page], nextCursor=next_cursor)
