"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from pikcel_jobs.analytics.rollups import JobRollup
from pikcel_jobs.core.metrics import JOBS_BY_STATUS, QUEUE_DUE, QUEUE_LAG, SSE_CONNECTIONS
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.db.migrate import head_revision
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.states import JobStatus
from pikcel_jobs.ops.upstream import upstream_health
from pikcel_jobs.shops.auth import ShopDomain

router = APIRouter(tags=["health"])


async def database_status(request: Request) -> dict[str, object]:
    engine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            revision = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except Exception as exc:  # any driver failure means "not reachable"
        return {"ok": False, "engine": engine.dialect.name, "error": type(exc).__name__}
    migrated = revision == head_revision()
    return {
        "ok": migrated,
        "engine": engine.dialect.name,
        "revision": revision,
        "migrated": migrated,
    }


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    db = await database_status(request)
    return JSONResponse({"success": True, "status": "ok", "database": db})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    db = await database_status(request)
    ready = bool(db["ok"])
    return JSONResponse(
        {"success": ready, "status": "ready" if ready else "not ready", "database": db},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text; database gauges are read now (cheap: rollups and an index)."""
    # The database being away must not hide the process's own metrics.
    with contextlib.suppress(Exception):
        await read_database_gauges(request)
    SSE_CONNECTIONS.set(request.app.state.hub.connections)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def read_database_gauges(request: Request) -> None:
    now = utcnow()
    async with unit_of_work(request.app.state.sessions, read_only=True) as session:
        rows = await session.execute(
            select(JobRollup.status, func.sum(JobRollup.jobs)).group_by(JobRollup.status)
        )
        for status in JobStatus:
            JOBS_BY_STATUS.labels(status.value).set(0)
        for name, count in rows.all():
            JOBS_BY_STATUS.labels(name).set(int(count or 0))
        due = (Job.next_attempt_at <= now) & (
            Job.lease_expires_at.is_(None) | (Job.lease_expires_at < now)
        )
        count, oldest = (
            await session.execute(select(func.count(), func.min(Job.next_attempt_at)).where(due))
        ).one()
    QUEUE_DUE.set(int(count or 0))
    if oldest is not None and isinstance(oldest, datetime):
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        QUEUE_LAG.set(max(0.0, (now - oldest).total_seconds()))
    else:
        QUEUE_LAG.set(0)


@router.get("/api/status", tags=["health"])
async def upstream_status(request: Request, shop: ShopDomain) -> JSONResponse:
    """Whether PikcelAI and Shopify are answering (jobs wait while they are not)."""
    health = await upstream_health(request.app.state.sessions)
    return JSONResponse({"success": True, "status": health.as_json()})
