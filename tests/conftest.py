"""Shared fixtures: every database test runs on SQLite and on PostgreSQL in one run."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings, load_settings
from pikcel_jobs.db.engine import create_engine, create_sessionmaker
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session
from pikcel_sim.serve import serve_in_thread
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


TEST_SECRETS = {
    "session_secret": "test-session-secret",
    "shopify_api_key": "test-api-key",
    "shopify_api_secret": "test-api-secret-of-at-least-32-bytes",
    "pikcel_api_key": "test-pikcel-key",
    "pikcel_webhook_secret": "whsec_dGVzdC13ZWJob29rLXNlY3JldA==",
}


@pytest.fixture(scope="session")
def app_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        env="test", database_url=database_url, storage_dir=tmp_path_factory.mktemp("storage"),
        allow_private_urls=True, _env_file=None, **TEST_SECRETS,
    )  # fmt: skip


@pytest.fixture(scope="session")
def api_url(app_settings: Settings) -> Iterator[str]:
    """Our app served over real HTTP on loopback, one per database engine."""
    with serve_in_thread(create_app(app_settings)) as url:
        yield url


@pytest_asyncio.fixture
async def client_for(
    api_url: str, app_settings: Settings
) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """`client_for(shop)`: an HTTP client signed in as that shop (standalone session)."""
    clients: list[httpx.AsyncClient] = []

    def make(shop: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=api_url, cookies={SESSION_COOKIE: sign_session(app_settings, shop)}, timeout=30
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
