"""`POST /webhooks/pikcel`: verify, then hand the delivery to the process's applier
(`pikcel_apply`: dedupe by delivery id, apply through the state machine, many per
commit) and answer once it is committed. Heavy work (copying the output) is left to the
worker."""

from __future__ import annotations

import hashlib
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from pikcel_jobs.config import Settings
from pikcel_jobs.core.metrics import WEBHOOK_SECONDS, WEBHOOKS
from pikcel_jobs.pikcel.webhooks import (
    WebhookPayloadError,
    WebhookVerificationError,
    parse_webhook,
    verify_webhook,
)
from pikcel_jobs.web.errors import error_response
from pikcel_jobs.webhooks.pikcel_apply import Delivery, Outcome, WebhookApplier

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("pikcel_jobs.webhooks")
MAX_BODY_BYTES = 1024 * 1024


async def read_limited(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


@router.post("/webhooks/pikcel", status_code=200)
async def pikcel_webhook(request: Request) -> JSONResponse:
    start = time.perf_counter()
    response = await handle_pikcel_webhook(request)
    outcome = getattr(request.state, "webhook_outcome", str(response.status_code))
    WEBHOOKS.labels("pikcel", outcome).inc()
    WEBHOOK_SECONDS.labels("pikcel").observe(time.perf_counter() - start)
    return response


async def handle_pikcel_webhook(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    body = await read_limited(request)
    if body is None:
        return error_response(413, "PAYLOAD_TOO_LARGE", "webhook bodies are limited to 1 MB")
    try:
        verify_webhook(request.headers, body, settings.pikcel_webhook_secret.get_secret_value())
    except WebhookVerificationError as exc:
        log.warning("pikcel webhook refused: %s", exc)
        return error_response(401, "INVALID_SIGNATURE", str(exc))
    try:
        event = parse_webhook(body)
    except WebhookPayloadError as exc:
        log.warning("pikcel webhook unreadable: %s", exc)
        return error_response(400, "INVALID_PAYLOAD", str(exc))
    applier: WebhookApplier = request.app.state.webhook_applier
    delivery = Delivery(event, delivery_ids(request.headers.get("webhook-id"), body))
    try:
        outcome = await applier.submit(delivery)
    except IntegrityError:  # the same delivery, recorded meanwhile by another process
        outcome = Outcome.DUPLICATE
    if outcome is Outcome.UNKNOWN_JOB:
        return error_response(404, "UNKNOWN_JOB", f"no job with PikcelAI id {event.job_id}")
    if outcome is Outcome.DUPLICATE:
        # A delivery already handled: acknowledged, nothing applied (counted as such).
        request.state.webhook_outcome = "duplicate"
        return JSONResponse({"success": True, "duplicate": True})
    return JSONResponse({"success": True})


def delivery_ids(webhook_id: str | None, body: bytes) -> list[str]:
    """The ids a delivery is known by: its `webhook-id` (as stored: at most 200
    characters) and the hash of its body, so the same signed body replayed under the
    legacy signature alone (which has no timestamp) is a duplicate too."""
    ids = ["sha256:" + hashlib.sha256(body).hexdigest()]
    if webhook_id:
        ids.insert(0, webhook_id[:200])
    return ids
