"""SSRF where the service meets URLs, with production settings (`allow_private_urls`
off), on both databases: input image URLs given to `POST /api/jobs`, `POST
/api/batches` and the new-job page are refused with a clear 400 when they point at a
private, loopback, link-local or metadata address (or are plain http), before anything
is recorded; the worker's copy of an output refuses such addresses too, also when a
public address redirects there, and never sends them a request."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.jobs.tasks import copy_output
from pikcel_jobs.net.fetch import FetchPolicy
from pikcel_jobs.pikcel.client import PikcelClient
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session
from pikcel_jobs.storage.store import LocalImageStore
from pikcel_jobs.worker.context import WorkerContext
from pikcel_sim.serve import serve_in_thread
from tests.support.stack import product_photo

PUBLIC = "https://93.184.216.34/mug.png"  # an IP literal: no DNS lookup leaves the machine
REFUSED = [
    "https://127.0.0.1/mug.png", "https://localhost:8443/mug.png",
    "https://169.254.169.254/latest/meta-data/iam/", "https://[::1]/mug.png",
    "https://10.0.0.7/mug.png", "https://192.168.0.1/mug.png", "https://100.100.100.200/x.png",
    "https://[::ffff:169.254.169.254]/x.png", "https://2130706433/mug.png",
    "http://93.184.216.34/mug.png",  # plain http
]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_database(app_settings: Settings) -> None:
    if not app_settings.is_sqlite:
        pytest.skip("URL checks do not depend on the database: the SQLite run covers them")


@pytest.fixture(scope="module")
def production_settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={"allow_private_urls": False})


@pytest.fixture(scope="module")
def production_url(production_settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(production_settings)) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    production_url: str, production_settings: Settings, shop: str
) -> AsyncIterator[httpx.AsyncClient]:
    cookie = sign_session(production_settings, shop)
    async with httpx.AsyncClient(
        base_url=production_url, cookies={SESSION_COOKIE: cookie}, timeout=30
    ) as c:
        yield c


async def count_jobs(sessions: async_sessionmaker[AsyncSession], shop: str) -> int:
    async with unit_of_work(sessions, read_only=True) as session:
        return int(
            (await session.execute(select(func.count()).where(Job.shop == shop))).scalar_one()
        )


async def test_private_input_urls_are_refused_with_a_clear_400(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    for url in REFUSED:
        answer = await client.post(
            "/api/jobs", json={"toolId": "background-removal", "inputImageUrl": url}
        )
        assert answer.status_code == 400, (url, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "INVALID_INPUT" and error["message"].startswith("inputImageUrl: ")
        assert re.search(r"private address|only https|could not be found", error["message"]), error

        batch = await client.post("/api/batches", json={
            "toolId": "background-removal",
            "images": [{"inputImageUrl": PUBLIC}, {"inputImageUrl": url}],
        })  # fmt: skip
        assert batch.status_code == 400, (url, batch.text)
        assert batch.json()["error"]["message"].startswith("images: ")
    assert await count_jobs(sessions, shop) == 0, "a refused request recorded a job"
    # A public https address is fine (PikcelAI fetches it, not us).
    answer = await client.post(
        "/api/jobs", json={"toolId": "background-removal", "inputImageUrl": PUBLIC}
    )
    assert answer.status_code == 201, answer.text


async def test_new_job_page_refuses_private_urls(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    page = await client.get("/app/jobs/new")
    token = re.search(r'name="csrfToken" value="([^"]+)"', page.text) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', page.text
    )
    assert token
    for urls in ("https://169.254.169.254/latest/meta-data/", f"{PUBLIC}\nhttps://127.0.0.1/x.png"):
        answer = await client.post("/app/jobs/new", data={
            "csrfToken": token.group(1), "toolId": "background-removal", "imageUrls": urls,
        })  # fmt: skip
        assert answer.status_code == 400, answer.text[-500:]
        assert "private address" in answer.text
    assert await count_jobs(sessions, shop) == 0


async def test_output_copy_refuses_private_addresses_and_redirects_there(
    production_settings: Settings, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    requested: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        if request.url.path == "/redirect.png":
            return httpx.Response(302, headers={"location": "https://169.254.169.254/latest/"})
        return httpx.Response(200, content=product_photo(), headers={"content-type": "image/png"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    ctx = WorkerContext(
        settings=production_settings, sessions=sessions,
        pikcel=PikcelClient(production_settings.pikcel_api_url, "k"),
        store=LocalImageStore(production_settings.storage_dir), http=http, owner="ssrf-test",
        fetch_policy=FetchPolicy(allow_private=production_settings.allow_private_urls),
    )  # fmt: skip
    outputs = {
        "https://93.184.216.34/redirect.png": None,  # public, then redirected to metadata
        "https://169.254.169.254/latest/meta-data/": None,
        "https://127.0.0.1:9/out.png": None,
        "http://93.184.216.34/out.png": None,
        "https://93.184.216.34/out.png": "copied",  # the control: a public https output
    }
    for url, expected in outputs.items():
        async with unit_of_work(sessions) as session:
            data = JobCreate(tool_id="background-removal", input_image_url=PUBLIC)
            job = await service.create_job(session, shop=shop, data=data, input_image_url=PUBLIC)
            job.status, job.remote_output_url = "completed", url
            job.lease_owner = "ssrf-test"
        async with unit_of_work(sessions, read_only=True) as session:
            row = await session.get(Job, job.id)
        assert row is not None
        await copy_output(ctx, row)
        async with unit_of_work(sessions, read_only=True) as session:
            after = await session.get(Job, job.id)
        assert after is not None
        if expected == "copied":
            assert after.output_key is not None, url
        else:
            assert after.output_key is None and after.dispatch_errors == 1, url
    await http.aclose()
    assert not [u for u in requested if "169.254" in u or "127.0.0.1" in u or u.startswith("http:")]
    assert "https://93.184.216.34/redirect.png" in requested  # the public hop itself was fine
