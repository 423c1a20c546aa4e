"""ASGI application factory: routes, error envelope, database, lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pikcel_jobs.analytics.api import router as analytics_router
from pikcel_jobs.batches.api import router as batches_router
from pikcel_jobs.bulk.api import router as bulk_router
from pikcel_jobs.config import Settings, get_settings
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.events.api import router as events_router
from pikcel_jobs.events.hub import EventHub
from pikcel_jobs.exports.api import router as exports_router
from pikcel_jobs.jobs.api import router as jobs_router
from pikcel_jobs.notifications.api import router as notifications_router
from pikcel_jobs.ops.upstream import upstream_health
from pikcel_jobs.push.api import router as push_router
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.schedules.api import router as schedules_router
from pikcel_jobs.shops.install import router as install_router
from pikcel_jobs.templates.api import router as templates_router
from pikcel_jobs.web.errors import install_error_handlers
from pikcel_jobs.web.health import router as health_router
from pikcel_jobs.web.pages import install_pages
from pikcel_jobs.webhooks.pikcel_api import router as pikcel_webhook_router
from pikcel_jobs.webhooks.pikcel_apply import WebhookApplier
from pikcel_jobs.webhooks.shopify_api import resume_redactions
from pikcel_jobs.webhooks.shopify_api import router as shopify_webhook_router


async def resume_bulk_operations(runtime: Runtime) -> None:
    """Bulk operations whose process died mid-way are picked up again."""
    from pikcel_jobs.bulk.service import run_operation, stalled_operations

    stale = utcnow() - timedelta(seconds=60)
    for op_id in await stalled_operations(runtime.sessions, older_than=stale):
        runtime.spawn(run_operation(runtime.sessions, op_id), name=f"bulk-{op_id}")


class UpstreamBanner:
    """Pages show a banner while PikcelAI or Shopify is failing (cached, cheap). Pure
    ASGI: every other request (webhooks above all) passes straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/app"):
            sessions = getattr(scope["app"].state, "sessions", None)
            if sessions is not None:
                with contextlib.suppress(Exception):
                    upstream = await upstream_health(sessions)
                    scope.setdefault("state", {})["upstream"] = upstream
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The web app. Given a `runtime`, it shares it (demo: web and worker in one process)
    and leaves closing it to the owner."""
    settings = settings or (runtime.settings if runtime else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime or Runtime.create(settings)
        app.state.runtime = own
        app.state.engine = own.engine
        app.state.sessions = own.sessions
        hub = EventHub(own.sessions, database_url=settings.database_url)
        app.state.hub = hub
        own.commit_listeners.append(hub.poke)
        await hub.start()
        app.state.webhook_applier = WebhookApplier(own.sessions, settings)
        await resume_bulk_operations(own)
        await resume_redactions(own)
        try:
            yield
        finally:
            own.commit_listeners.remove(hub.poke)
            await app.state.webhook_applier.stop()
            await hub.stop()
            if runtime is None:
                await own.close()

    app = FastAPI(
        title="pikcel-jobs",
        summary="Job tracking and status monitoring for the PikcelAI Shopify app",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Webhooks first: routes are matched in order, and they are the busiest path.
    app.include_router(pikcel_webhook_router)
    app.include_router(shopify_webhook_router)
    app.include_router(health_router)
    app.include_router(bulk_router)  # before /api/jobs/{job_id}/...
    app.include_router(exports_router)  # before /api/jobs/{job_id}
    app.include_router(push_router)  # push-to-shopify, approve, reject, revert; products
    app.include_router(jobs_router)
    app.include_router(analytics_router)
    app.include_router(templates_router)
    app.include_router(batches_router)
    app.include_router(schedules_router)
    app.include_router(notifications_router)
    app.include_router(events_router)
    app.include_router(install_router)
    install_pages(app)

    app.add_middleware(UpstreamBanner)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app")

    return app
