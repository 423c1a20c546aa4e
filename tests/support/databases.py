"""Throw-away databases for one test run: a SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_ADMIN_URL = os.environ.get(
    "PIKCEL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _pg_base() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0]


@contextmanager
def postgres_database(prefix: str = "pikcel_test") -> Iterator[str]:
    """Create a database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_base().replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    path = directory / f"pikcel-{secrets.token_hex(4)}.db"
    yield f"sqlite+aiosqlite:///{path}"


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        with sqlite_database(directory) as url:
            yield url
