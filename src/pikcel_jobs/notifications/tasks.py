"""Delivering the outbox: the worker's `notifications` queue and the digest planner.

A worker leases due deliveries (`FOR UPDATE SKIP LOCKED` / `BEGIN IMMEDIATE`, as for
jobs), sends each one outside any transaction, then records the attempt and the outcome
with a compare-and-set on its lease. A crash before the record leaves the lease to
expire and the delivery is sent again (at least once; receivers dedupe on `webhook-id`,
which is the delivery id, and emails carry it as `X-Pikcel-Delivery`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosmtplib
import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.config import Settings
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.net.fetch import FetchPolicy, UnsafeURL, check_url
from pikcel_jobs.notifications import repository, service
from pikcel_jobs.notifications.messages import compose_email, webhook_body
from pikcel_jobs.notifications.models import (
    FINAL,
    Channel,
    DeliveryStatus,
    NotificationAttempt,
    NotificationDelivery,
)
from pikcel_jobs.pikcel.webhooks import WebhookVerificationError, signing_key
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.shops.service import shop_settings
from pikcel_jobs.worker.claim import LeaseLost
from pikcel_jobs.worker.context import WorkerContext

log = logging.getLogger("pikcel_jobs.notifications")
WEBHOOK_TIMEOUT = 10.0
USER_AGENT = "pikcel-jobs-notifications/1"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False  # retrying cannot help: give up now


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (Standard Webhooks)."""
    mac = hmac.new(signing_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def backoff(attempts: int, settings: Settings) -> timedelta:
    """After the n-th failed attempt: base, 2×base, 4×base … capped."""
    seconds = settings.notification_backoff_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.notification_backoff_max_seconds))


async def send_email(delivery: NotificationDelivery, settings: Settings) -> Outcome:
    if not settings.smtp_host:
        return Outcome(
            False, error="email is not set up on this server (SMTP_HOST)", permanent=True
        )
    message = compose_email(delivery, settings)
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=settings.smtp_password.get_secret_value() or None,
            start_tls=settings.smtp_starttls and not settings.smtp_tls, use_tls=settings.smtp_tls,
            timeout=settings.smtp_timeout_seconds,
        )  # fmt: skip
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        return Outcome(False, codes[0] if codes else None, f"the mail server refused "
                       f"{delivery.target}: {exc.recipients[0].message if exc.recipients else exc}",
                       permanent=all(c >= 500 for c in codes))  # fmt: skip
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome(False, exc.code, f"the mail server answered {exc.code}: {exc.message}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Outcome(False, error=f"the mail server could not be reached: {exc}")
    return Outcome(True, 250)


async def send_webhook(
    delivery: NotificationDelivery, *, secret: str | None, settings: Settings,
    http: httpx.AsyncClient, policy: FetchPolicy,
) -> Outcome:  # fmt: skip
    if not secret:
        return Outcome(False, error="the shop has no webhook secret; save the settings again",
                       permanent=True)  # fmt: skip
    try:
        await check_url(delivery.target, policy)
    except UnsafeURL as exc:  # a lookup failure may pass; a private address will not
        return Outcome(False, error=str(exc), permanent=not isinstance(exc.__cause__, OSError))
    except ValueError:
        return Outcome(False, error="the webhook URL is not a valid web address", permanent=True)
    body = webhook_body(delivery, settings)
    timestamp = int(time.time())
    try:
        signature = sign(secret, delivery.id, timestamp, body)
    except WebhookVerificationError as exc:
        return Outcome(False, error=exc.reason, permanent=True)
    headers = {
        "content-type": "application/json", "user-agent": USER_AGENT,
        "webhook-id": delivery.id, "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }  # fmt: skip
    try:
        response = await http.post(
            delivery.target, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT,
            follow_redirects=False,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"the request failed: {type(exc).__name__}: {exc}"[:500])
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    hint = " (redirects are not followed)" if response.is_redirect else ""
    text = response.text[:200].strip()
    return Outcome(
        False, response.status_code,
        f"the endpoint answered HTTP {response.status_code}{hint}" + (f": {text}" if text else ""),
    )  # fmt: skip


async def deliver(ctx: WorkerContext, delivery_id: str) -> None:
    """Handler of the `notifications` queue: one attempt at one leased delivery."""
    async with unit_of_work(ctx.sessions, read_only=True) as session:
        delivery = await session.get(NotificationDelivery, delivery_id)
        shop = await session.get(Shop, delivery.shop) if delivery is not None else None
    if delivery is None or delivery.lease_owner != ctx.owner:
        raise LeaseLost(delivery_id)
    started = utcnow()
    clock = time.perf_counter()
    if delivery.status in FINAL:
        outcome = None  # replayed by a race: nothing to send, just let the row go
    elif delivery.channel == Channel.EMAIL:
        outcome = await send_email(delivery, ctx.settings)
    else:
        outcome = await send_webhook(
            delivery, secret=shop_settings(shop).get("webhookSecret"), settings=ctx.settings,
            http=ctx.http, policy=ctx.fetch_policy,
        )  # fmt: skip
    elapsed = int((time.perf_counter() - clock) * 1000)
    async with repository.owned_delivery(
        ctx.sessions, delivery_id=delivery_id, owner=ctx.owner
    ) as (session, row):
        if outcome is None or row.status in FINAL:
            return
        record(session, row, outcome, started=started, elapsed_ms=elapsed, ctx=ctx)
    if outcome.ok:
        log.info("notification %s (%s %s) sent", delivery_id, delivery.channel, delivery.kind)
    else:
        log.warning("notification %s attempt failed: %s", delivery_id, outcome.error)


def record(
    session: AsyncSession, row: NotificationDelivery, outcome: Outcome, *, started: datetime,
    elapsed_ms: int, ctx: WorkerContext,
) -> None:  # fmt: skip
    """Write the attempt and move the delivery on: sent, retried later, or given up."""
    row.attempts += 1
    session.add(
        NotificationAttempt(
            delivery_id=row.id, number=row.attempts, ok=outcome.ok,
            status_code=outcome.status_code, error=outcome.error, duration_ms=elapsed_ms,
            worker=ctx.owner[:100], started_at=started,
        )
    )  # fmt: skip
    now = utcnow()
    if outcome.ok:
        row.status = DeliveryStatus.SENT
        row.sent_at = now
        row.last_error = None
        row.next_attempt_at = None
    elif outcome.permanent or row.attempts >= ctx.settings.notification_max_attempts:
        row.status = DeliveryStatus.GAVE_UP
        row.last_error = outcome.error
        row.next_attempt_at = None
    else:
        row.status = DeliveryStatus.FAILED
        row.last_error = outcome.error
        row.next_attempt_at = now + backoff(row.attempts, ctx.settings)


async def deliver_now(ctx: WorkerContext, delivery_ids: list[str]) -> None:
    """Send these deliveries at once in this process (the test route); any this process
    cannot lease are left to the workers."""
    leased = await repository.lease(
        ctx.sessions, ids=delivery_ids, owner=ctx.owner, lease_seconds=ctx.settings.lease_seconds
    )
    for delivery_id in leased:
        try:
            await deliver(ctx, delivery_id)
        except LeaseLost:
            continue


class DigestPlanner:
    """Run by each worker about once a minute: writes yesterday's digests from
    DIGEST_HOUR_UTC on. Idempotent (dedupe keys), so any number of workers may run it."""

    def __init__(self, every_seconds: float = 60.0) -> None:
        self.every_seconds = every_seconds
        self.next_run = 0.0
        self.quiet: dict[str, set[str]] = {}  # day -> shops with nothing to report

    async def __call__(self, ctx: WorkerContext, *, now: datetime | None = None) -> int:
        if now is None and time.monotonic() < self.next_run:
            return 0
        self.next_run = time.monotonic() + self.every_seconds
        now = now or utcnow()
        day = service.digest_day(now, ctx.settings.digest_hour_utc)
        if day is None:
            return 0
        skip = self.quiet.setdefault(day.isoformat(), set())
        self.quiet = {day.isoformat(): skip}
        async with unit_of_work(ctx.sessions) as session:
            return await service.plan_digests(
                session, now=now, hour=ctx.settings.digest_hour_utc, skip=skip
            )
