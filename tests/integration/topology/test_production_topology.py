"""The production shape on PostgreSQL: two web processes and two worker processes.
1,000 jobs run through; every SSE client, on either web process, sees every event of
its shop and none of another's (live updates cross processes through NOTIFY)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session
from pikcel_sim.pikcel.app import create_app as create_pikcel_sim
from pikcel_sim.pikcel.config import SimConfig
from pikcel_sim.serve import ThreadedServer, free_port
from tests.support.processes import Proc, process_env, wait_http
from tests.support.stack import product_photo, quiesce

JOBS = int(os.environ.get("PIKCEL_TOPOLOGY_JOBS", "1000"))
SHOPS = ["north.myshopify.com", "south.myshopify.com", "east.myshopify.com"]


async def listen(
    url: str, cookie: str, seen: list[dict[str, object]], ready: asyncio.Event
) -> None:
    async with (
        httpx.AsyncClient(base_url=url, timeout=None, cookies={SESSION_COOKIE: cookie}) as client,
        client.stream("GET", "/api/events") as response,
    ):
        assert response.status_code == 200
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))


async def test_two_web_two_workers_every_client_sees_its_shop(
    app_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the production topology runs on PostgreSQL")
    sim = ThreadedServer(create_pikcel_sim(SimConfig(
        seed=51, time_scale=0.02, image_workers=8, default_credits=1_000_000, id_namespace=secrets.token_hex(4),
        webhook_secret=app_settings.pikcel_webhook_secret.get_secret_value(),
    ))).start()  # fmt: skip
    ports = [free_port(), free_port()]
    settings = app_settings.model_copy(update={
        "pikcel_api_url": sim.url, "app_url": f"http://127.0.0.1:{ports[0]}",
        "poll_initial_seconds": 0.5, "poll_max_seconds": 2.0, "worker_idle_sleep_seconds": 0.1,
        "upstream_rps": 200.0, "upstream_concurrency": 16,
    })  # fmt: skip
    env = process_env(settings)
    procs = [
        Proc(["serve", "--port", str(p)], env, tmp_path / f"web-{p}.log").start() for p in ports
    ]
    runtime = Runtime.create(settings)
    await quiesce(runtime)
    listeners: list[asyncio.Task[None]] = []
    try:
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/healthz", within=120)
        # One client per shop on each web process.
        seen: dict[tuple[str, int], list[dict[str, object]]] = {}
        for shop in SHOPS:
            for port in ports:
                ready = asyncio.Event()
                seen[(shop, port)] = []
                cookie = sign_session(settings, shop)
                listeners.append(asyncio.create_task(
                    listen(f"http://127.0.0.1:{port}", cookie, seen[(shop, port)], ready)))  # fmt: skip
                await asyncio.wait_for(ready.wait(), 30)
        procs += [Proc(["worker"], env, tmp_path / f"worker-{i}.log").start() for i in range(2)]

        image = (await runtime.pikcel.upload(product_photo(), "in.png", "image/png")).url
        for start in range(0, JOBS, 250):
            async with unit_of_work(runtime.sessions) as session:
                for i in range(start, min(JOBS, start + 250)):
                    data = JobCreate(tool_id="auto-enhance", input_image_url=image)
                    await service.create_job(
                        session, shop=SHOPS[i % len(SHOPS)], data=data, input_image_url=image
                    )

        deadline = time.monotonic() + 300
        while True:
            async with unit_of_work(runtime.sessions, read_only=True) as session:
                busy = (await session.execute(select(Job.id).where(
                    Job.shop.in_(SHOPS), Job.next_attempt_at.is_not(None)).limit(1))).first()  # fmt: skip
            if busy is None:
                break
            assert time.monotonic() < deadline, "jobs did not finish"
            await asyncio.sleep(1)
        await asyncio.sleep(3)  # the last events reach the hubs

        async with unit_of_work(runtime.sessions, read_only=True) as session:
            events = (
                await session.execute(
                    select(JobEvent.id, JobEvent.shop).where(JobEvent.shop.in_(SHOPS))
                )
            ).all()
        for (shop, port), got in seen.items():
            expected = {e.id for e in events if e.shop == shop}
            ids = [int(str(m["id"])) for m in got]
            assert len(ids) == len(set(ids)), f"{shop} on {port} got an event twice"
            assert set(ids) == expected, f"{shop} on {port}: {len(expected - set(ids))} missing"
            assert all((m.get("job") or {}).get("shop") in (shop, None) for m in got)
        assert len(events) >= JOBS * 4  # created, dispatched, status changes, output
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for proc in procs:
            proc.stop()
        await runtime.close()
        sim.stop()
