"""DESIGN §2's global cap on PikcelAI requests, across worker processes: three
`pikcel-jobs worker` processes on PostgreSQL poll far more jobs than the cap allows, and
the simulator never counts more than UPSTREAM_RPS requests in any one-second window, from
the first worker's start through the others joining (worker/membership.py)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.worker.models import WorkerProcess
from pikcel_sim.pikcel.app import create_app as create_pikcel_sim
from pikcel_sim.pikcel.config import SimConfig
from pikcel_sim.serve import ThreadedServer
from tests.support.processes import Proc, process_env
from tests.support.stack import product_photo, quiesce

CAP = 24
WORKERS = 3
JOBS = 120


async def wait_live(runtime: Runtime, pids: list[int], within: float = 60) -> None:
    """Until every worker has its row (each has started and joined)."""
    deadline = time.monotonic() + within
    while True:
        async with unit_of_work(runtime.sessions, read_only=True) as session:
            live = await session.scalar(
                select(func.count()).where(WorkerProcess.pid.in_(pids))
            )
        if live == len(pids):
            return
        assert time.monotonic() < deadline, f"{live} of {len(pids)} workers joined"
        await asyncio.sleep(0.2)


async def test_workers_together_stay_under_the_cap(
    app_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("many worker processes: the PostgreSQL shape")
    sim = ThreadedServer(create_pikcel_sim(SimConfig(
        seed=77, auto_progress=False, send_webhooks=False, default_credits=1_000_000,
        id_namespace=secrets.token_hex(4),
    ))).start()  # fmt: skip
    settings = app_settings.model_copy(update={
        "pikcel_api_url": sim.url, "poll_initial_seconds": 0.2, "poll_max_seconds": 0.4,
        "worker_idle_sleep_seconds": 0.1, "upstream_rps": float(CAP), "upstream_concurrency": 4,
    })  # fmt: skip
    shop = f"cap-{secrets.token_hex(4)}.myshopify.com"
    runtime = Runtime.create(settings)
    procs: list[Proc] = []
    try:
        await quiesce(runtime)
        image = (await runtime.pikcel.upload(product_photo(), "in.png", "image/png")).url
        async with unit_of_work(runtime.sessions) as session:
            for _ in range(JOBS):
                data = JobCreate(tool_id="auto-enhance", input_image_url=image)
                await service.create_job(session, shop=shop, data=data, input_image_url=image)
        async with httpx.AsyncClient(base_url=sim.url) as admin:
            (await admin.post("/_sim/counters/reset")).raise_for_status()
            env = process_env(settings, LOG_LEVEL="INFO")
            for n in range(WORKERS):  # one after another: each joins those running
                procs.append(Proc(["worker"], env, tmp_path / f"worker-{n}.log").start())
                await asyncio.sleep(1.0)
            pids = [proc.popen.pid for proc in procs if proc.popen is not None]
            await wait_live(runtime, pids)
            before = (await admin.get("/_sim/counters")).json()["requests_total"]
            started = time.monotonic()
            await asyncio.sleep(5)
            counters = (await admin.get("/_sim/counters")).json()
            rate = (counters["requests_total"] - before) / (time.monotonic() - started)
        # From the first worker's start on, joins included: never over the cap.
        assert counters["max_rps"] <= CAP, counters
        # With all three running, their shares are used, not wasted.
        assert rate >= 0.5 * CAP, (rate, counters)
        codes = [proc.stop() for proc in procs]
        assert codes == [0] * WORKERS, procs[0].log.read_text()[-2000:]
        async with unit_of_work(runtime.sessions, read_only=True) as session:
            left = await session.scalar(
                select(func.count()).where(WorkerProcess.pid.in_(pids))
            )
        assert left == 0  # a worker that stops takes its row (and its share) away
    finally:
        for proc in procs:
            proc.kill()
        async with unit_of_work(runtime.sessions) as session:
            await session.execute(
                update(Job).where(Job.shop == shop).values(next_attempt_at=None)
            )
        await runtime.close()
        sim.stop()
