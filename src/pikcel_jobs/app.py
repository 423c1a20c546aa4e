"""ASGI application factory: routes, error envelope, database, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from pikcel_jobs.config import Settings, get_settings
from pikcel_jobs.db.engine import create_engine, create_sessionmaker
from pikcel_jobs.jobs.api import router as jobs_router
from pikcel_jobs.web.errors import install_error_handlers
from pikcel_jobs.web.health import router as health_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessions = create_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="pikcel-jobs",
        summary="Job tracking and status monitoring for the PikcelAI Shopify app",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(jobs_router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app")

    return app
