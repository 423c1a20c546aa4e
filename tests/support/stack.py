"""A whole running system for integration tests: the PikcelAI simulator and our web app
on loopback HTTP, and a worker in the test's event loop, all on one test database; with
`shopify=True` (or a `ShopifySimConfig`) also the Shopify simulator, which our app and
worker then reach through SHOPIFY_CONNECT_URL."""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image, ImageDraw
from sqlalchemy import update

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.schedules.models import Schedule
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session
from pikcel_jobs.worker.process import start_worker
from pikcel_jobs.worker.runner import Worker
from pikcel_sim.pikcel.app import create_app as create_pikcel_sim
from pikcel_sim.pikcel.config import FaultConfig, SimConfig
from pikcel_sim.serve import ThreadedServer, free_port
from pikcel_sim.shopify import ShopifySimConfig, mint_session_token
from pikcel_sim.shopify import create_app as create_shopify_sim


def product_photo(size: int = 96) -> bytes:
    """A red square on a flat blue background: easy for the simulator's tools."""
    image = Image.new("RGB", (size, size), (30, 80, 200))
    ImageDraw.Draw(image).rectangle(
        (size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(220, 30, 30)
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class Stack:
    settings: Settings
    api_url: str
    sim_url: str
    runtime: Runtime
    workers: list[Worker]
    image_url: str = ""
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    shopify_url: str = ""  # the Shopify simulator, when started
    _shopify_admin: httpx.AsyncClient | None = None

    def session_token(self, shop: str, **claims: Any) -> str:
        """A Shopify session token for `shop`, as Shopify admin hands the app."""
        return mint_session_token(
            shop, self.settings.shopify_api_key,
            self.settings.shopify_api_secret.get_secret_value(), **claims,
        )  # fmt: skip

    def embedded_client(self, shop: str) -> httpx.AsyncClient:
        """A client like an embedded page: a fresh session token on every request."""
        client = httpx.AsyncClient(
            base_url=self.api_url, auth=SessionTokenAuth(self, shop), timeout=30
        )
        self.clients.append(client)
        return client

    def shopify_admin(self) -> httpx.AsyncClient:
        """The Shopify simulator's `/_sim` admin endpoints (one client, kept open)."""
        if self._shopify_admin is None:
            self._shopify_admin = httpx.AsyncClient(base_url=self.shopify_url, timeout=30)
            self.clients.append(self._shopify_admin)
        return self._shopify_admin

    def client(self, shop: str) -> httpx.AsyncClient:
        cookie = sign_session(self.settings, shop)
        client = httpx.AsyncClient(
            base_url=self.api_url, cookies={SESSION_COOKIE: cookie}, timeout=30
        )
        self.clients.append(client)
        return client

    def sim(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.sim_url, timeout=30)
        self.clients.append(client)
        return client

    async def sim_get(self, path: str) -> Any:
        return (await self.sim().get(path)).json()

    async def set_faults(self, **faults: Any) -> None:
        response = await self.sim().put("/_sim/faults", json=FaultConfig(**faults).model_dump())
        response.raise_for_status()

    async def create_jobs(self, client: httpx.AsyncClient, n: int, **body: Any) -> list[str]:
        ids = []
        for _ in range(n):
            payload = {"toolId": "background-removal", "inputImageUrl": self.image_url, **body}
            response = await client.post("/api/jobs", json=payload)
            assert response.status_code == 201, response.text
            ids.append(response.json()["job"]["id"])
        return ids

    async def wait_for(
        self, client: httpx.AsyncClient, job_ids: list[str],
        done: Callable[[dict[str, Any]], bool], within: float = 30.0,
    ) -> list[dict[str, Any]]:  # fmt: skip
        deadline = time.monotonic() + within
        while True:
            jobs = [(await client.get(f"/api/jobs/{jid}")).json()["job"] for jid in job_ids]
            if all(done(job) for job in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not done in {within}s: {[(j['id'], j['status']) for j in jobs if not done(j)]}"
                )
            await asyncio.sleep(0.1)


class SessionTokenAuth(httpx.Auth):
    def __init__(self, stack: Stack, shop: str) -> None:
        self.stack = stack
        self.shop = shop

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.stack.session_token(self.shop)}"
        yield request


def finished(job: dict[str, Any]) -> bool:
    """Terminal, and for completed jobs our own copy of the output is in place."""
    if job["status"] == "completed":
        return bool(job["outputImageUrl"]) and "/api/jobs/" in job["outputImageUrl"]
    return job["status"] in ("failed", "cancelled")


async def quiesce(runtime: Runtime) -> None:
    """The session's database is shared: earlier tests leave due work behind (jobs no
    worker ever ran, pointing at simulators that are gone). A new stack's workers must
    not spend their time on it, so nothing older is due any more."""
    async with unit_of_work(runtime.sessions) as session:
        await session.execute(
            update(Job).where(Job.next_attempt_at.is_not(None)).values(next_attempt_at=None)
        )
        await session.execute(
            update(Job).where(Job.push_next_at.is_not(None)).values(push_next_at=None)
        )
        await session.execute(
            update(Schedule).where(Schedule.next_run_at.is_not(None)).values(next_run_at=None)
        )


@asynccontextmanager
async def running_stack(
    base: Settings,
    *,
    sim: SimConfig | None = None,
    workers: int = 1,
    shopify: bool | ShopifySimConfig = False,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    sim_config = sim or SimConfig(seed=7, time_scale=0.01)
    sim_config.webhook_secret = base.pikcel_webhook_secret.get_secret_value()
    sim_config.id_namespace = secrets.token_hex(4)  # the session database outlives each simulator
    sim_server = ThreadedServer(create_pikcel_sim(sim_config)).start()
    shopify_server = None
    if shopify:
        shopify_config = (
            shopify
            if isinstance(shopify, ShopifySimConfig)
            else ShopifySimConfig(
                seed=7, products_per_shop=12, media_processing_seconds=0.3,
                bucket_size=5000.0, restore_rate=1000.0, shops=(),
            )
        )  # fmt: skip
        shopify_config.api_key = base.shopify_api_key
        shopify_config.api_secret = base.shopify_api_secret.get_secret_value()
        shopify_server = ThreadedServer(create_shopify_sim(shopify_config)).start()
        overrides.setdefault("shopify_connect_url", shopify_server.url)
    port = free_port()
    settings = base.model_copy(
        update={
            "pikcel_api_url": sim_server.url, "app_url": f"http://127.0.0.1:{port}",
            "poll_initial_seconds": 0.2, "poll_max_seconds": 1.0, "worker_idle_sleep_seconds": 0.05,
            "upstream_rps": 200.0, "upstream_concurrency": 20, "lease_seconds": 10.0,
            **overrides,
        }
    )  # fmt: skip
    app_server = ThreadedServer(create_app(settings), port=port).start()
    runtime = Runtime.create(settings)
    await quiesce(runtime)
    pool = [start_worker(runtime) for _ in range(workers)]
    tasks = [asyncio.create_task(w.run(grace_seconds=5)) for w in pool]
    stack = Stack(settings, app_server.url, sim_server.url, runtime, pool)
    stack.shopify_url = shopify_server.url if shopify_server else ""
    try:
        upload = await runtime.pikcel.upload(
            product_photo(), "mug.png", "image/png", folder="tests"
        )
        stack.image_url = upload.url
        yield stack
    finally:
        for worker in pool:
            worker.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in stack.clients:
            await client.aclose()
        await runtime.close()
        app_server.stop()
        sim_server.stop()
        if shopify_server is not None:
            shopify_server.stop()
