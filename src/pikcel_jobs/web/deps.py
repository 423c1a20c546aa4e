"""Request-scoped access to what the app holds: settings, database, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class Database:
    """`async with db() as session:` is one transaction, committed when the block ends."""

    def __init__(self, request: Request) -> None:
        self._sessions = request.app.state.sessions

    @asynccontextmanager
    async def __call__(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        async with unit_of_work(self._sessions, read_only=read_only) as session:
            yield session


Db = Annotated[Database, Depends(Database)]
AppSettings = Annotated[Settings, Depends(get_settings)]
