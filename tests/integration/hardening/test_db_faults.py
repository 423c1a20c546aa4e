"""Database faults, on a database of the test's own: while PostgreSQL refuses our
connections (backends terminated from an admin connection, new connections refused,
as during a restart) and while SQLite is locked by another writer, requests fail
cleanly with 503, the error envelope (HTML on pages) and `Retry-After`; afterwards the
service recovers by itself, live updates included. The shared server is never
restarted."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session
from pikcel_sim.serve import serve_in_thread
from tests.support.databases import PG_ADMIN_URL, postgres_database, sqlite_database

SHOP = "db-faults.myshopify.com"
JOB = {"toolId": "background-removal", "inputImageUrl": "https://cdn.example.com/x.png"}


@pytest.fixture
def own_app(app_settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    kind = "sqlite" if app_settings.is_sqlite else "postgresql"
    make = sqlite_database(tmp_path) if kind == "sqlite" else postgres_database("pikcel_dbfault")
    with make as url:
        upgrade(url)
        settings = app_settings.model_copy(update={"database_url": url})
        with serve_in_thread(create_app(settings)) as api:
            yield api, settings


def client(api: str, settings: Settings) -> httpx.AsyncClient:
    cookie = sign_session(settings, SHOP)
    return httpx.AsyncClient(base_url=api, cookies={SESSION_COOKIE: cookie}, timeout=60)


def assert_unavailable(answer: httpx.Response, what: str) -> None:
    assert answer.status_code == 503, (what, answer.status_code, answer.text[:300])
    if answer.headers.get("content-type", "").startswith("application/json"):
        error = answer.json()["error"]
        assert error["code"] == "UNAVAILABLE" and error["message"], (what, error)
        assert answer.headers.get("retry-after", "").isdigit(), (what, dict(answer.headers))
    else:
        assert "database" in answer.text.lower(), what


async def sse_sees_a_new_job(c: httpx.AsyncClient) -> None:
    """A live stream opened now delivers the event of a job created now."""
    seen = bytearray()

    async def listen() -> None:
        async with c.stream("GET", "/api/events") as stream:
            async for chunk in stream.aiter_bytes():
                seen.extend(chunk)
                if b"live-after-outage" in seen:
                    return

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    created = await c.post("/api/jobs", json={**JOB, "toolId": "live-after-outage"})
    assert created.status_code == 201, created.text
    await asyncio.wait_for(task, 15)


def pg_database_name(settings: Settings) -> str:
    return settings.database_url.rsplit("/", 1)[-1]


async def test_postgres_connections_dropping(own_app: tuple[str, Settings]) -> None:
    api, settings = own_app
    if settings.is_sqlite:
        pytest.skip("PostgreSQL only")
    name = pg_database_name(settings)
    async with client(api, settings) as c:
        assert (await c.post("/api/jobs", json=JOB)).status_code == 201
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            # "Restart": refuse new connections, and drop every one we hold.
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            try:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (name,),
                )  # fmt: skip
                for what, call in (
                    ("list", c.get("/api/jobs")), ("create", c.post("/api/jobs", json=JOB)),
                    ("stats", c.get("/api/jobs/stats")), ("page", c.get("/app/jobs")),
                ):  # fmt: skip
                    assert_unavailable(await call, what)
                # The readiness probe says so too (its own body: a probe, not the API).
                assert (await c.get("/readyz")).status_code == 503
            finally:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

            # Connections dropped again and again while requests run: each request
            # either works or is a clean 503, never anything else.
            stop = threading.Event()

            def killer() -> None:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as k:
                    while not stop.is_set():
                        k.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,),
                        )  # fmt: skip
                        time.sleep(0.05)

            thread = threading.Thread(target=killer, daemon=True)
            thread.start()
            codes: list[int] = []
            try:
                for _ in range(30):
                    answer = await c.post("/api/jobs", json=JOB)
                    if answer.status_code != 201:
                        assert_unavailable(answer, "create under terminations")
                    codes.append(answer.status_code)
            finally:
                stop.set()
                thread.join(5)
        # Recovered by itself: reads, writes and live updates.
        deadline = time.monotonic() + 20
        while (await c.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "not ready again"
            await asyncio.sleep(0.2)
        assert (await c.get("/api/jobs")).status_code == 200
        assert (await c.post("/api/jobs", json=JOB)).status_code == 201
        await sse_sees_a_new_job(c)
    print(f"postgres terminations: {codes.count(201)} created, {codes.count(503)} x 503")


async def test_sqlite_locked_by_another_writer(own_app: tuple[str, Settings]) -> None:
    api, settings = own_app
    if not settings.is_sqlite:
        pytest.skip("SQLite only")
    path = settings.database_url.split(":///", 1)[1]
    async with client(api, settings) as c:
        assert (await c.post("/api/jobs", json=JOB)).status_code == 201
        locker = sqlite3.connect(path, timeout=1, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # holds the write lock until released
        try:
            write = asyncio.create_task(c.post("/api/jobs", json=JOB))
            # Reads go on meanwhile (WAL).
            assert (await c.get("/api/jobs")).status_code == 200
            started = time.monotonic()
            answer = await write
            waited = time.monotonic() - started
            assert_unavailable(answer, "create while locked")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert (await c.post("/api/jobs", json=JOB)).status_code == 201
        assert (await c.get("/readyz")).status_code == 200
        await sse_sees_a_new_job(c)
    print(f"sqlite: a write waited {waited:.1f} s for the lock, then 503")
