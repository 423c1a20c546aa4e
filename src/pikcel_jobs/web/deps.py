"""Request-scoped access to what the app holds: settings, database, runtime."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.runtime import Runtime


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class Database:
    """`async with db() as session:` is one transaction, committed when the block ends."""

    def __init__(self, request: Request) -> None:
        self._sessions = request.app.state.sessions

    @asynccontextmanager
    async def __call__(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        async with unit_of_work(self._sessions, read_only=read_only) as session:
            yield session


async def read_fields(request: Request) -> dict[str, object]:
    """A JSON or form body as a dict (the original app's routes accepted both)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidInput("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data


async def job_id_from_body(request: Request) -> str:
    data = await read_fields(request)
    job_id = data.get("jobId")
    if not isinstance(job_id, str) or not job_id.strip():
        raise InvalidInput("jobId is required")
    if len(job_id) > 64:
        raise InvalidInput("jobId is not a valid job id")
    return job_id.strip()


Db = Annotated[Database, Depends(Database)]
AppSettings = Annotated[Settings, Depends(get_settings)]
AppRuntime = Annotated[Runtime, Depends(get_runtime)]
BodyJobId = Annotated[str, Depends(job_id_from_body)]
