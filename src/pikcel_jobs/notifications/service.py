"""What to notify, to whom, with what: written into the outbox in the caller's transaction.
Services never commit; the request or the worker task is the unit of work."""

from __future__ import annotations

import base64
import re
import secrets
from collections import Counter
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, func, literal, select

from pikcel_jobs.analytics.rollups import JobRollup
from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.core.errors import AppError, InvalidInput
from pikcel_jobs.db.base import new_id, utcnow
from pikcel_jobs.net.fetch import FetchPolicy, UnsafeURL, check_url
from pikcel_jobs.notifications import repository
from pikcel_jobs.notifications.models import Channel, Kind, NotificationDelivery
from pikcel_jobs.notifications.schemas import NotificationSettings, NotificationSettingsUpdate
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.shops.service import ensure_shop, shop_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pikcel_jobs.jobs.models import Job

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Sends a merchant asks for (tests, replays): at most this many per shop in the window,
# so the buttons cannot be used to flood an inbox or an endpoint.
ON_DEMAND_LIMIT = 20
ON_DEMAND_WINDOW = timedelta(minutes=10)
SETTING_KEYS = (
    "notificationEmail", "notifyOnFailure", "notifyOnCompletion", "dailyDigest",
    "webhookUrl", "webhookSecret",
)  # fmt: skip


# ---- Settings ----


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def notification_settings(shop: Shop | None) -> NotificationSettings:
    values = shop_settings(shop)
    return NotificationSettings.model_validate({k: values.get(k) for k in SETTING_KEYS})


async def check_webhook_url(url: str, policy: FetchPolicy) -> str | None:
    """Why `url` cannot receive our webhooks, or None when it can."""
    if len(url) > 2000:
        return "The address is too long."
    try:
        await check_url(url, policy)
    except UnsafeURL as exc:
        return f"This address can't receive webhooks: {exc}."
    except ValueError:  # not a URL at all (bad port, broken IPv6 literal, bad host name)
        return "This is not a valid web address."
    return None


async def clean_settings(
    update: NotificationSettingsUpdate, *, current: dict[str, Any], policy: FetchPolicy
) -> tuple[dict[str, Any], dict[str, str]]:
    """The shop-settings keys to store for `update`, and errors by (camelCase) field."""
    given = update.model_fields_set
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if "notification_email" in given:
        email = (update.notification_email or "").strip()
        if email and (len(email) > 254 or not EMAIL.fullmatch(email)):
            errors["notificationEmail"] = "Enter an email address such as you@example.com."
        values["notificationEmail"] = email or None
    for field, key in (
        ("notify_on_failure", "notifyOnFailure"),
        ("notify_on_completion", "notifyOnCompletion"),
        ("daily_digest", "dailyDigest"),
    ):
        if field in given and getattr(update, field) is not None:
            values[key] = bool(getattr(update, field))
    url = current.get("webhookUrl")
    if "webhook_url" in given:
        url = (update.webhook_url or "").strip() or None
        if url and (problem := await check_webhook_url(url, policy)):
            errors["webhookUrl"] = problem
        values["webhookUrl"] = url
    if url and (update.rotate_webhook_secret or not current.get("webhookSecret")):
        values["webhookSecret"] = new_webhook_secret()
    return values, errors


async def update_settings(
    session: AsyncSession, *, shop: str, update: NotificationSettingsUpdate, policy: FetchPolicy
) -> NotificationSettings:
    row = await ensure_shop(session, shop)
    current = shop_settings(row)
    values, errors = await clean_settings(update, current=current, policy=policy)
    if errors:
        raise InvalidInput(" ".join(f"{k}: {v}" for k, v in errors.items()))
    row.settings = {**current, **values}
    return notification_settings(row)


# ---- What a message says (the payload is a snapshot taken with the change) ----


def job_payload(job: Job) -> dict[str, Any]:
    return {
        "jobId": job.id, "attempt": job.attempt, "status": str(job.status),
        "toolId": job.tool_id, "toolName": job.tool_name, "productId": job.product_id,
        "productTitle": job.product_title, "errorMessage": job.error_message,
        "creditsUsed": job.credits_used or 0, "inputImageUrl": job.input_image_url,
        "completedAt": job.completed_at.isoformat() if job.completed_at else None,
        "path": f"/app/jobs/{job.id}",
    }  # fmt: skip


def batch_payload(batch: Any) -> dict[str, Any]:
    return {
        "batchId": batch.id, "name": batch.name, "toolId": batch.tool_id,
        "status": batch.status, "totalJobs": batch.total_jobs,
        "completedJobs": batch.completed_jobs, "failedJobs": batch.failed_jobs,
        "cancelledJobs": batch.cancelled_jobs, "path": f"/app/batches/{batch.id}",
    }  # fmt: skip


async def _add(
    session: AsyncSession, *, shop: str, channel: Channel, kind: Kind, key: str, target: str,
    payload: dict[str, Any], due_at: datetime | None = None,
) -> str | None:  # fmt: skip
    return await repository.enqueue(
        session, shop=shop, channel=channel.value, kind=kind.value,
        dedupe_key=f"{channel.value}:{kind.value}:{key}", target=target, payload=payload,
        due_at=due_at,
    )  # fmt: skip


async def notify_job(session: AsyncSession, job: Job, kind: Kind) -> None:
    """A job outside any batch completed or failed: email (as the shop chose) and webhook."""
    settings = shop_settings(await session.get(Shop, job.shop))
    wants_email = settings["notifyOnFailure"] if kind is Kind.JOB_FAILED else (
        settings["notifyOnCompletion"]
    )  # fmt: skip
    key = f"{job.id}:{job.attempt}"
    payload = job_payload(job)
    if settings["notificationEmail"] and wants_email:
        await _add(session, shop=job.shop, channel=Channel.EMAIL, kind=kind, key=key,
                   target=settings["notificationEmail"], payload=payload)  # fmt: skip
    if settings["webhookUrl"]:
        await _add(session, shop=job.shop, channel=Channel.WEBHOOK, kind=kind, key=key,
                   target=settings["webhookUrl"], payload=payload)  # fmt: skip


async def notify_batch_if_finished(session: AsyncSession, batch_id: str) -> None:
    """One message when a batch's last job finishes. The key holds the final counts, so
    a batch that is retried and finishes differently is announced again, once."""
    t = JobBatch.__table__.c
    batch = (await session.execute(select(JobBatch.__table__).where(t.id == batch_id))).first()
    if batch is None or batch.status not in ("completed", "partial", "failed"):
        return
    settings = shop_settings(await session.get(Shop, batch.shop))
    key = f"{batch.id}:{batch.completed_jobs}-{batch.failed_jobs}-{batch.cancelled_jobs}"
    payload = batch_payload(batch)
    problems = batch.failed_jobs + batch.cancelled_jobs > 0
    wants_email = settings["notifyOnCompletion"] or (settings["notifyOnFailure"] and problems)
    if settings["notificationEmail"] and wants_email:
        await _add(session, shop=batch.shop, channel=Channel.EMAIL, kind=Kind.BATCH_COMPLETED,
                   key=key, target=settings["notificationEmail"], payload=payload)  # fmt: skip
    if settings["webhookUrl"]:
        await _add(session, shop=batch.shop, channel=Channel.WEBHOOK, kind=Kind.BATCH_COMPLETED,
                   key=key, target=settings["webhookUrl"], payload=payload)  # fmt: skip


# ---- Daily digest ----


def digest_day(now: datetime, hour: int) -> date | None:
    """The day whose digest is due at `now` (yesterday, from `hour` UTC on), else None."""
    return now.date() - timedelta(days=1) if now.hour >= hour else None


async def plan_digests(
    session: AsyncSession, *, now: datetime, hour: int, skip: set[str] | None = None
) -> int:
    """Write the digest of yesterday for every shop that wants one and has none yet.
    Any number of workers may run this at once: the dedupe key keeps one per shop and day.
    Shops with no job yesterday get no email; they are added to `skip` (if given)."""
    day = digest_day(now, hour)
    if day is None:
        return 0
    prefix = f"{Channel.EMAIL.value}:{Kind.DIGEST.value}:"
    key = literal(prefix, String) + Shop.domain + literal(f":{day.isoformat()}", String)
    sent = select(NotificationDelivery.id).where(NotificationDelivery.dedupe_key == key)
    stmt = select(Shop.domain, Shop.settings).where(
        Shop.uninstalled_at.is_(None),
        Shop.settings["dailyDigest"].as_boolean().is_(True),
        ~sent.exists(),
    )
    wanted = {
        domain: values["notificationEmail"]
        for domain, raw in (await session.execute(stmt)).all()
        if (values := {**(raw or {})}).get("notificationEmail") and domain not in (skip or ())
    }
    added = 0
    domains = sorted(wanted)
    for start in range(0, len(domains), 500):
        chunk = domains[start : start + 500]
        totals = await digest_totals(session, shops=chunk, day=day)
        for domain in chunk:
            counts = totals.get(domain)
            if not counts or counts["created"] == 0:
                if skip is not None:
                    skip.add(domain)
                continue
            payload = {"date": day.isoformat(), **counts, "path": "/app/analytics"}
            if await _add(session, shop=domain, channel=Channel.EMAIL, kind=Kind.DIGEST,
                          key=f"{domain}:{day.isoformat()}", target=wanted[domain],
                          payload=payload):  # fmt: skip
                added += 1
    return added


async def digest_totals(
    session: AsyncSession, *, shops: list[str], day: date
) -> dict[str, dict[str, int]]:
    """Per shop, the jobs created on `day` by outcome and the credits they used (rollups)."""
    R = JobRollup
    stmt = (
        select(R.shop, R.status, func.sum(R.jobs), func.sum(R.credits))
        .where(and_(R.shop.in_(shops), R.day == day))
        .group_by(R.shop, R.status)
    )
    found: dict[str, Counter[str]] = {}
    for shop, status, jobs, credits in (await session.execute(stmt)).all():
        counts = found.setdefault(shop, Counter())
        counts["created"] += int(jobs or 0)
        counts["credits"] += int(credits or 0)
        if status in ("completed", "failed", "cancelled"):
            counts[status] += int(jobs or 0)
        else:
            counts["active"] += int(jobs or 0)
    names = ("created", "completed", "failed", "cancelled", "active", "credits")
    return {shop: {n: c[n] for n in names} for shop, c in found.items()}


# ---- Replay and test ----


class TooManySends(AppError):
    status_code = 429
    code = "RATE_LIMITED"


async def check_on_demand_budget(session: AsyncSession, *, shop: str, adding: int) -> None:
    D = NotificationDelivery
    recent = await session.scalar(
        select(func.count())
        .select_from(D)
        .where(
            D.shop == shop,
            D.created_at >= utcnow() - ON_DEMAND_WINDOW,
            (D.kind == Kind.TEST.value) | D.replay_of.is_not(None),
        )
    )
    if int(recent or 0) + adding > ON_DEMAND_LIMIT:
        minutes = int(ON_DEMAND_WINDOW.total_seconds() // 60)
        raise TooManySends(
            f"too many test and replayed notifications (at most {ON_DEMAND_LIMIT} in "
            f"{minutes} minutes); try again in a few minutes"
        )


def current_target(settings: dict[str, Any], channel: str) -> str | None:
    key = "notificationEmail" if channel == Channel.EMAIL else "webhookUrl"
    value = settings.get(key)
    return str(value) if value else None


async def replay(session: AsyncSession, *, shop: str, delivery_id: str) -> NotificationDelivery:
    """Queue a copy of a delivery, to the shop's current target for its channel."""
    original = await repository.get_for_shop(session, shop=shop, delivery_id=delivery_id)
    target = current_target(shop_settings(await session.get(Shop, shop)), original.channel)
    await check_on_demand_budget(session, shop=shop, adding=1)
    if target is None:
        what = "notification email" if original.channel == Channel.EMAIL else "webhook URL"
        raise InvalidInput(f"set a {what} in the settings before replaying this delivery")
    copy_id = await repository.enqueue(
        session, shop=shop, channel=original.channel, kind=original.kind,
        dedupe_key=f"replay:{original.id}:{new_id()}",
        target=target, payload=dict(original.payload or {}), replay_of=original.id,
    )  # fmt: skip
    assert copy_id is not None
    return await repository.get_for_shop(session, shop=shop, delivery_id=copy_id)


async def create_tests(
    session: AsyncSession, *, shop: str, channel: str | None, hold_seconds: float = 0
) -> list[NotificationDelivery]:
    """Test deliveries to the configured targets (both, or the one asked for). With
    `hold_seconds`, workers leave them alone that long: the caller sends them itself
    (`tasks.deliver_now`), and if it dies they are still sent."""
    settings = shop_settings(await session.get(Shop, shop))
    channels = [Channel(channel)] if channel else [Channel.EMAIL, Channel.WEBHOOK]
    targets = [(ch, t) for ch in channels if (t := current_target(settings, ch))]
    if not targets:
        if channel == Channel.WEBHOOK:
            raise InvalidInput("set a webhook URL in the settings first")
        if channel == Channel.EMAIL:
            raise InvalidInput("set a notification email in the settings first")
        raise InvalidInput("set a notification email or a webhook URL in the settings first")
    await check_on_demand_budget(session, shop=shop, adding=len(targets))
    payload = {"shop": shop, "message": "This is a test notification from PikcelAI.",
               "path": "/app/settings"}  # fmt: skip
    created = []
    for ch, target in targets:
        delivery_id = await _add(
            session, shop=shop, channel=ch, kind=Kind.TEST, key=f"{shop}:{new_id()}",
            target=target, payload=payload, due_at=utcnow() + timedelta(seconds=hold_seconds),
        )  # fmt: skip
        assert delivery_id is not None
        created.append(await repository.get_for_shop(session, shop=shop, delivery_id=delivery_id))
    return created
