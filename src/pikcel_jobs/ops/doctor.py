"""`pikcel-jobs doctor`: what the original app's troubleshooting guide made people check
by hand, checked for real, one line each with a hint when something is wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select, text

from pikcel_jobs.config import Settings
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.db.migrate import head_revision
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.states import JobStatus
from pikcel_jobs.pikcel.errors import PikcelError
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shopify.errors import ShopifyError
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.shops.service import ShopNotConnected, access_token_for, graphql_for
from pikcel_jobs.worker.membership import live_workers

MAX_SHOPS_CHECKED = 50
WORKER_LAG_LIMIT = timedelta(minutes=2)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


async def run_checks(runtime: Runtime) -> AsyncIterator[Check]:
    settings = runtime.settings
    yield await database(runtime)
    yield await pikcel_account(runtime)
    yield webhook_secret(settings)
    yield await public_url(settings, runtime.http)
    yield shopify_app(settings)
    async for check in shop_tokens(runtime):
        yield check
    yield await worker_alive(runtime)
    yield await stuck_jobs(runtime)


async def database(runtime: Runtime) -> Check:
    try:
        async with runtime.engine.connect() as conn:
            revision = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
    except Exception as exc:
        return Check(
            "database",
            False,
            f"not reachable ({type(exc).__name__})",
            "check DATABASE_URL and that the server is running; then run 'pikcel-jobs migrate'",
        )
    head = head_revision()
    if revision != head:
        return Check(
            "database",
            False,
            f"at revision {revision}, newest is {head}",
            "run 'pikcel-jobs migrate'",
        )
    return Check("database", True, f"{runtime.engine.dialect.name}, schema at {head}")


async def pikcel_account(runtime: Runtime) -> Check:
    if not runtime.settings.pikcel_api_key.get_secret_value():
        return Check(
            "PikcelAI",
            False,
            "PIKCEL_API_KEY is not set",
            "set PIKCEL_API_KEY to your PikcelAI API key",
        )
    try:
        profile = await runtime.pikcel.get_profile()
    except PikcelError as exc:
        return Check(
            "PikcelAI",
            False,
            str(exc),
            f"check PIKCEL_API_URL ({runtime.settings.pikcel_api_url}) and PIKCEL_API_KEY",
        )
    return Check("PikcelAI", True, f"{profile.email}: {profile.credits_balance} credits left")


def webhook_secret(settings: Settings) -> Check:
    secret = settings.pikcel_webhook_secret.get_secret_value()
    if not secret:
        return Check(
            "webhook secret",
            False,
            "PIKCEL_WEBHOOK_SECRET is not set",
            "copy the signing secret of your PikcelAI webhook into PIKCEL_WEBHOOK_SECRET",
        )
    return Check(
        "webhook secret", True, "set" + (" (whsec_ format)" if secret.startswith("whsec_") else "")
    )


async def public_url(settings: Settings, http: httpx.AsyncClient) -> Check:
    url = f"{settings.app_url}/webhooks/pikcel"
    host = urlsplit(settings.app_url).hostname or ""
    try:
        response = await http.get(f"{settings.app_url}/healthz", timeout=5)
        reached = response.status_code == 200
    except httpx.HTTPError:
        reached = False
    if not reached:
        return Check(
            "webhook URL",
            False,
            f"{settings.app_url}/healthz did not answer",
            "set APP_URL to this service's public https address",
        )
    if settings.env == "production" and (
        host in ("localhost", "127.0.0.1") or not url.startswith("https://")
    ):
        return Check(
            "webhook URL",
            False,
            f"{url} is not reachable from outside",
            "PikcelAI needs a public https APP_URL to deliver webhooks (polling still works)",
        )
    return Check("webhook URL", True, url)


def shopify_app(settings: Settings) -> Check:
    missing = [
        n
        for n, v in (
            ("SHOPIFY_API_KEY", settings.shopify_api_key),
            ("SHOPIFY_API_SECRET", settings.shopify_api_secret.get_secret_value()),
        )
        if not v
    ]
    if missing:
        return Check(
            "Shopify app",
            False,
            f"{' and '.join(missing)} not set",
            "copy the client id and secret from the Shopify Partners dashboard",
        )
    return Check(
        "Shopify app",
        True,
        f"key {settings.shopify_api_key[:6]}…, API {settings.shopify_api_version}",
    )


async def shop_tokens(runtime: Runtime) -> AsyncIterator[Check]:
    async with unit_of_work(runtime.sessions, read_only=True) as session:
        shops = (
            (
                await session.execute(
                    select(Shop.domain)
                    .where(Shop.uninstalled_at.is_(None), Shop.access_token_enc.is_not(None))
                    .order_by(Shop.domain)
                    .limit(MAX_SHOPS_CHECKED)
                )
            )
            .scalars()
            .all()
        )
    if not shops:
        yield Check("shop tokens", True, "no installed shop yet")
        return
    bad = []
    for domain in shops:
        try:
            async with unit_of_work(runtime.sessions) as session:
                token = await access_token_for(
                    session, domain=domain, settings=runtime.settings, http=runtime.shopify_http
                )
            await graphql_for(token, runtime.settings, runtime.shopify_http).execute(
                "{ shop { name } }"
            )
        except (ShopifyError, ShopNotConnected, ValueError) as exc:
            bad.append(f"{domain} ({exc})")
    if bad:
        yield Check(
            "shop tokens",
            False,
            f"{len(bad)} of {len(shops)} invalid: " + "; ".join(bad[:3]),
            "those shops must open the app again in Shopify admin to reconnect",
        )
    else:
        yield Check("shop tokens", True, f"{len(shops)} shop(s) connected and answering")


async def worker_alive(runtime: Runtime) -> Check:
    now = utcnow()
    async with unit_of_work(runtime.sessions, read_only=True) as session:
        oldest = (
            await session.execute(
                select(func.min(Job.next_attempt_at)).where(
                    Job.next_attempt_at <= now, Job.lease_owner.is_(None)
                )
            )
        ).scalar()
        live = await live_workers(session)
    rps = runtime.settings.upstream_rps
    share = f"{live} worker process(es) live, sharing {rps:g} PikcelAI requests/s"
    if oldest is not None and now - oldest > WORKER_LAG_LIMIT:
        waited = int((now - oldest).total_seconds())
        return Check(
            "worker",
            False,
            f"due work has waited {waited} s unclaimed; {share}",
            "start one or more 'pikcel-jobs worker' processes (same DATABASE_URL)",
        )
    state = "due work is being claimed" if oldest else "nothing is waiting"
    return Check("worker", True, f"{state}; {share}")


async def stuck_jobs(runtime: Runtime) -> Check:
    now = utcnow()
    deadline = timedelta(seconds=runtime.settings.job_deadline_seconds)
    async with unit_of_work(runtime.sessions, read_only=True) as session:
        stuck = (
            await session.execute(
                select(func.count())
                .select_from(Job)
                .where(
                    Job.status.in_([JobStatus.PENDING, JobStatus.PROCESSING]),
                    Job.updated_at < now - deadline,
                )
            )
        ).scalar_one()
    if stuck:
        return Check(
            "stuck jobs",
            False,
            f"{stuck} job(s) pending or processing for over {deadline}",
            "check the worker logs and PikcelAI's status; 'Sync' on a job asks PikcelAI now",
        )
    return Check("stuck jobs", True, "none")
