"""JSON routes for notifications: the delivery log, replay, test sends and settings."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.jobs.api import ok
from pikcel_jobs.jobs.schemas import Cursor
from pikcel_jobs.notifications import repository, service
from pikcel_jobs.notifications.models import Channel, DeliveryStatus, NotificationDelivery
from pikcel_jobs.notifications.schemas import (
    AttemptOut,
    DeliveryOut,
    NotificationSettingsUpdate,
    SendTestRequest,
)
from pikcel_jobs.notifications.tasks import deliver_now
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.web.deps import AppRuntime, Db

router = APIRouter(prefix="/api/notifications", tags=["notifications"])
LIST_KEYS = {"cursor", "limit", "status", "channel"}


def delivery_json(row: NotificationDelivery, log: list[Any] | None = None) -> dict[str, Any]:
    out = DeliveryOut.model_validate(row)
    out.log = [AttemptOut.model_validate(a) for a in log or []]
    return out.model_dump(by_alias=True, mode="json")


async def with_logs(session: Any, rows: list[NotificationDelivery]) -> list[dict[str, Any]]:
    logs = await repository.attempts_of(session, [r.id for r in rows])
    return [delivery_json(r, logs.get(r.id)) for r in rows]


def _choice(params: Any, name: str, allowed: set[str]) -> str | None:
    value = params.get(name) or None
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of: {', '.join(sorted(allowed))}")
    return value


@router.get("/deliveries")
async def list_deliveries(request: Request, shop: ShopDomain, db: Db) -> JSONResponse:
    """The shop's deliveries, newest first, with every attempt (`log`); keyset pages."""
    params = request.query_params
    unknown = set(params) - LIST_KEYS
    if unknown:
        raise InvalidInput(f"unknown query parameter: {', '.join(sorted(unknown))}")
    raw_limit = params.get("limit") or "25"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise InvalidInput("limit must be a whole number between 1 and 100")
    token = params.get("cursor") or None
    if token is not None and len(token) > 500:
        raise InvalidInput("the cursor is not valid; start again from the first page")
    cursor = Cursor.decode(token) if token else None
    if cursor is not None and cursor.created_at.tzinfo is None:
        cursor.created_at = cursor.created_at.replace(tzinfo=UTC)
    status = _choice(params, "status", {s.value for s in DeliveryStatus})
    channel = _choice(params, "channel", {c.value for c in Channel})
    async with db(read_only=True) as session:
        rows, next_cursor = await repository.page(
            session, shop=shop, cursor=cursor, limit=int(raw_limit), status=status,
            channel=channel,
        )  # fmt: skip
        deliveries = await with_logs(session, rows)
    return ok(deliveries=deliveries, nextCursor=next_cursor.encode() if next_cursor else None)


@router.get("/deliveries/{delivery_id}")
async def get_delivery(delivery_id: str, shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        row = await repository.get_for_shop(session, shop=shop, delivery_id=delivery_id)
        [delivery] = await with_logs(session, [row])
    return ok(delivery=delivery)


@router.post("/deliveries/{delivery_id}/replay", status_code=201)
async def replay_delivery(
    delivery_id: str, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Queue a copy of a delivery (to the channel's current target); the worker sends it."""
    async with db() as session:
        copy = await service.replay(session, shop=shop, delivery_id=delivery_id)
    runtime.nudge()
    return ok(201, delivery=delivery_json(copy))


@router.post("/test")
async def send_test(
    shop: ShopDomain, db: Db, runtime: AppRuntime, body: SendTestRequest | None = None
) -> JSONResponse:
    """Send a test message now to the configured email and/or webhook; answers with
    each delivery after its first attempt (failures are retried like any other)."""
    body = body or SendTestRequest()
    async with db() as session:
        created = await service.create_tests(
            session, shop=shop, channel=body.channel, hold_seconds=runtime.settings.lease_seconds
        )
    ids = [d.id for d in created]
    await deliver_now(runtime.worker_context(f"web:{shop}"[:100]), ids)
    async with db(read_only=True) as session:
        rows = [await repository.get_for_shop(session, shop=shop, delivery_id=i) for i in ids]
        deliveries = await with_logs(session, rows)
    return ok(deliveries=deliveries)


@router.get("/settings")
async def get_settings(shop: ShopDomain, db: Db) -> JSONResponse:
    async with db(read_only=True) as session:
        row = await session.get(Shop, shop)
    return ok(settings=service.notification_settings(row).model_dump(by_alias=True))


@router.put("/settings")
async def put_settings(
    body: NotificationSettingsUpdate, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> JSONResponse:
    """Change the notification settings (only the fields given); a webhook URL gets a
    `whsec_` signing secret, new with `rotateWebhookSecret: true`."""
    async with db() as session:
        saved = await service.update_settings(
            session, shop=shop, update=body, policy=runtime.fetch_policy
        )
    return ok(settings=saved.model_dump(by_alias=True))
