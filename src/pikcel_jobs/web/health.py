"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from pikcel_jobs.db.migrate import head_revision

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
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
