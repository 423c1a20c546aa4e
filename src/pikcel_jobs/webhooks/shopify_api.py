"""`POST /webhooks/shopify`: Shopify's compliance and lifecycle webhooks (DESIGN §4).

Verified against the app secret (and the previous one during a rotation; 401 when
neither signs the body), deduplicated by `X-Shopify-Webhook-Id`, answered within a
few hundred milliseconds: what must happen at once is one short transaction, the rest
(cancelling jobs, deleting a shop's data) runs in the background and resumes after a
restart."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pikcel_jobs.bulk.service import run_operation
from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shopify.errors import InvalidShopDomain
from pikcel_jobs.shopify.webhooks import ShopifyWebhookHeaders, verify_shopify_webhook
from pikcel_jobs.shops.redact import redact_shop, request_redaction, uninstall
from pikcel_jobs.web.errors import error_response
from pikcel_jobs.webhooks.models import WebhookReceipt
from pikcel_jobs.webhooks.pikcel_api import read_limited

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("pikcel_jobs.webhooks")
SOURCE = "shopify"
NO_CUSTOMER_DATA = (
    "pikcel-jobs keeps no customer data: it stores the shop's product images, image jobs "
    "and settings, never customers or orders"
)


def webhook_secrets(settings: Settings) -> list[str]:
    return [
        s
        for s in (
            settings.shopify_api_secret.get_secret_value(),
            settings.shopify_api_secret_previous.get_secret_value(),
        )
        if s
    ]


@router.post("/webhooks/shopify", status_code=200)
async def shopify_webhook(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    runtime: Runtime = request.app.state.runtime
    body = await read_limited(request)
    if body is None:
        return error_response(413, "PAYLOAD_TOO_LARGE", "webhook bodies are limited to 1 MB")
    if not verify_shopify_webhook(
        body, request.headers.get("x-shopify-hmac-sha256"), webhook_secrets(settings)
    ):
        log.warning("shopify webhook refused: bad HMAC")
        return error_response(401, "INVALID_SIGNATURE", "the webhook HMAC does not match")
    try:
        headers = ShopifyWebhookHeaders.from_headers(request.headers)
    except (ValueError, InvalidShopDomain) as exc:
        return error_response(400, "INVALID_WEBHOOK", str(exc))

    answer: dict[str, Any] = {"success": True, "topic": headers.topic}
    background = None
    try:
        async with unit_of_work(runtime.sessions) as session:
            seen = await session.execute(
                select(WebhookReceipt.id).where(
                    WebhookReceipt.source == SOURCE,
                    WebhookReceipt.delivery_id == headers.webhook_id[:200],
                )
            )
            if seen.first() is not None:
                return JSONResponse({**answer, "duplicate": True})
            shop = headers.shop_domain
            if headers.topic == "app/uninstalled":
                op = await uninstall(session, shop=shop)
                if op is not None:
                    answer["cancelling"] = op.total
                    background = ("bulk", op.id)
            elif headers.topic in ("customers/data_request", "customers/redact"):
                answer["message"] = NO_CUSTOMER_DATA
            elif headers.topic == "shop/redact":
                await request_redaction(session, shop=shop)
                answer["message"] = "the shop's data is being deleted"
                background = ("redact", shop)
            else:
                answer["ignored"] = True
            session.add(WebhookReceipt(source=SOURCE, delivery_id=headers.webhook_id[:200]))
    except IntegrityError:  # the same delivery, handled meanwhile by another request
        return JSONResponse({**answer, "duplicate": True})
    if background is not None:
        kind, key = background
        if kind == "bulk":
            runtime.spawn(run_operation(runtime.sessions, key), name=f"bulk-{key}")
        else:
            runtime.spawn(
                _redact(runtime, key),
                name=f"redact-{key}",
            )
    log.info("shopify webhook %s for %s handled", headers.topic, headers.shop_domain)
    return JSONResponse(answer)


async def _redact(runtime: Runtime, shop: str) -> None:
    await redact_shop(runtime.sessions, runtime.store, shop)


async def resume_redactions(runtime: Runtime) -> None:
    """Redactions a dead process left unfinished are taken up again."""
    from pikcel_jobs.shops.redact import pending_redactions

    for shop in await pending_redactions(runtime.sessions):
        runtime.spawn(_redact(runtime, shop), name=f"redact-{shop}")
