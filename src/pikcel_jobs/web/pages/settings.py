"""`/app/settings`: the shop's preferences, kept in `Shop.settings`."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.notifications import repository as notifications
from pikcel_jobs.notifications.schemas import NotificationSettingsUpdate
from pikcel_jobs.notifications.service import clean_settings
from pikcel_jobs.shops.auth import ShopDomain
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.shops.service import ensure_shop, shop_settings
from pikcel_jobs.web import csrf
from pikcel_jobs.web.deps import AppRuntime, Db
from pikcel_jobs.web.pages.common import PageRoute, redirect, render, tools_or_none

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PRIORITIES = ("low", "normal", "high", "urgent")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RECENT_DELIVERIES = 20


async def render_settings(
    request: Request, runtime: AppRuntime, *, shop: str, values: dict[str, Any],
    errors: dict[str, str] | None = None, status_code: int = 200,
) -> HTMLResponse:  # fmt: skip
    async with unit_of_work(runtime.sessions, read_only=True) as session:  # delivery log
        deliveries, _ = await notifications.page(
            session, shop=shop, cursor=None, limit=RECENT_DELIVERIES
        )
    return render(
        request, "settings.html",
        {"values": values, "errors": errors or {}, "tools": await tools_or_none(runtime),
         "priorities": PRIORITIES, "deliveries": deliveries},
        shop=shop, active="settings", status_code=status_code,
    )  # fmt: skip


@router.get("/app/settings", response_class=HTMLResponse)
async def settings_form(
    request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> HTMLResponse:
    async with db(read_only=True) as session:
        row = await session.get(Shop, shop)
    return await render_settings(request, runtime, shop=shop, values=shop_settings(row))


@router.post("/app/settings", response_class=HTMLResponse)
async def save_settings(
    request: Request, shop: ShopDomain, db: Db, runtime: AppRuntime
) -> Response:
    await csrf.check_csrf(request, shop)
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    email = text("notificationEmail")
    values: dict[str, Any] = {
        "notificationEmail": email or None,
        "notifyOnFailure": form.get("notifyOnFailure") == "on",
        "notifyOnCompletion": form.get("notifyOnCompletion") == "on",
        "reviewBeforePublish": form.get("reviewBeforePublish") == "on",
        "autoPush": form.get("autoPush") == "on",
        "defaultToolId": text("defaultToolId") or None,
        "defaultPriority": text("defaultPriority") or "normal",
    }
    errors = {}
    if email and (len(email) > 254 or not EMAIL.match(email)):
        errors["notificationEmail"] = "Enter an email address such as you@example.com."
    if values["defaultPriority"] not in PRIORITIES:
        errors["defaultPriority"] = "Choose a priority from the list."
    if len(values["defaultToolId"] or "") > 100:
        errors["defaultToolId"] = "Choose a tool from the list."
    async with db(read_only=True) as session:
        current = shop_settings(await session.get(Shop, shop))
    notify = NotificationSettingsUpdate.model_construct(
        daily_digest=form.get("dailyDigest") == "on", webhook_url=text("webhookUrl"),
        rotate_webhook_secret=form.get("rotateWebhookSecret") == "on",
    )  # fmt: skip
    notify_values, notify_errors = await clean_settings(
        notify, current=current, policy=runtime.fetch_policy
    )
    values.update(notify_values)
    errors.update(notify_errors)
    if errors:
        values["webhookSecret"] = current.get("webhookSecret")
        return await render_settings(
            request, runtime, shop=shop, values=values, errors=errors, status_code=400
        )
    async with db() as session:
        row = await ensure_shop(session, shop)
        row.settings = {**shop_settings(row), **values}
    return redirect(request, "/app/settings", flash="Settings saved.")
