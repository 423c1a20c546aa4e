"""Shared fixtures: every database test runs on SQLite and on PostgreSQL in one run."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pikcel_jobs.db.engine import create_engine, create_sessionmaker
from pikcel_jobs.db.migrate import upgrade
from tests.support.databases import database

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=DATABASES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database per engine, shared by the session (tests use their own shops)."""
    with database(request.param, tmp_path_factory.mktemp("db")) as url:
        upgrade(url)
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
def shop() -> str:
    """A fresh shop per test: tenant scoping keeps tests apart without truncating."""
    return f"test-{secrets.token_hex(5)}.myshopify.com"


@pytest.fixture
def other_shop() -> str:
    return f"other-{secrets.token_hex(5)}.myshopify.com"
