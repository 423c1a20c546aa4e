"""Async engine and session factory for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout waits out short locks.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock when the transaction starts, not at their first write, so two
    # writers never fail on a lock upgrade (the claim loop relies on this). Read-only
    # units of work ask for a deferred BEGIN and run beside the writer (WAL).
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.pop("pool_pre_ping", None)  # a file's connections are never dropped
        engine = create_async_engine(url, connect_args={"timeout": 15}, **kwargs)
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            # Let SQLAlchemy, not the driver, emit BEGIN.
            dbapi_conn.isolation_level = None
            _sqlite_pragmas(dbapi_conn, record)

        event.listen(sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    # JIT compilation costs more than it saves on these short queries (30-115 ms measured).
    kwargs.setdefault("connect_args", {"options": "-c jit=off"})
    return create_async_engine(url, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession], *, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error. Services never commit."""
    async with sessions() as session:
        if read_only:
            session.info["read_only"] = True  # its commit wakes nobody (runtime.py)
            await session.connection(execution_options={"sqlite_begin": "DEFERRED"})
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
