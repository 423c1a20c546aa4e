"""SIGKILL workers again and again while 2,000 jobs run on PostgreSQL with three worker
processes: every job still ends in PikcelAI's final state, each idempotency key made
at most one remote job, and no row is left leased."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.runtime import Runtime
from pikcel_sim.pikcel.app import create_app as create_pikcel_sim
from pikcel_sim.pikcel.config import FaultConfig, SimConfig
from pikcel_sim.serve import ThreadedServer, free_port
from tests.support.processes import Proc, process_env
from tests.support.stack import product_photo, quiesce

JOBS = int(os.environ.get("PIKCEL_CRASH_JOBS", "2000"))


async def test_sigkilled_workers_lose_nothing(
    app_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the crash test runs three worker processes on PostgreSQL")
    sim_config = SimConfig(
        seed=41,
        time_scale=0.02,
        image_workers=8,
        default_credits=1_000_000,  # 2,000 jobs must not run the account dry
        id_namespace=secrets.token_hex(4),  # the session database outlives this simulator
        webhook_secret=app_settings.pikcel_webhook_secret.get_secret_value(),
        faults=FaultConfig(job_failure_rate=0.1, webhook_duplicate_rate=0.2),
    )
    sim = ThreadedServer(create_pikcel_sim(sim_config)).start()
    port = free_port()
    settings = app_settings.model_copy(update={
        "pikcel_api_url": sim.url, "app_url": f"http://127.0.0.1:{port}", "lease_seconds": 4.0,
        "poll_initial_seconds": 0.5, "poll_max_seconds": 2.0, "worker_idle_sleep_seconds": 0.1,
        "upstream_rps": 150.0, "upstream_concurrency": 16,
    })  # fmt: skip
    web = ThreadedServer(create_app(settings), port=port).start()
    runtime = Runtime.create(settings)
    await quiesce(runtime)
    shop = "crash-test.myshopify.com"
    workers: list[Proc] = []
    try:
        image = (await runtime.pikcel.upload(product_photo(), "in.png", "image/png")).url
        for start in range(0, JOBS, 500):
            async with unit_of_work(runtime.sessions) as session:
                for _ in range(start, min(JOBS, start + 500)):
                    data = JobCreate(tool_id="auto-enhance", input_image_url=image)
                    await service.create_job(session, shop=shop, data=data, input_image_url=image)
        env = process_env(settings)
        workers = [Proc(["worker"], env, tmp_path / f"worker-{i}.log").start() for i in range(3)]
        rng = random.Random(5)
        kills = 0
        deadline = time.monotonic() + 300
        while True:
            await asyncio.sleep(3.0)
            async with unit_of_work(runtime.sessions, read_only=True) as session:
                open_jobs = (await session.execute(
                    select(func.count()).where(Job.shop == shop, (Job.next_attempt_at.is_not(None)) | Job.status.in_(["pending", "processing", "scheduled"]))
                )).scalar_one()  # fmt: skip
            if open_jobs == 0:
                break
            if open_jobs == JOBS and time.monotonic() > deadline - 240:
                log = (tmp_path / "worker-0.log").read_text()[-2000:]
                raise AssertionError(f"no job moved in a minute; worker log:\n{log}")
            assert time.monotonic() < deadline, f"{open_jobs} jobs still open after {kills} kills"
            if kills < 12:
                victim = rng.randrange(len(workers))
                workers[victim].kill()
                kills += 1
                workers[victim] = Proc(["worker"], env, tmp_path / f"worker-{victim}.log").start()
        for worker in workers:
            assert worker.stop() == 0

        async with unit_of_work(runtime.sessions, read_only=True) as session:
            rows = (await session.execute(
                select(Job.pikcel_job_id, Job.status, Job.credits_used, Job.output_key, Job.lease_owner)
                .where(Job.shop == shop)
            )).all()  # fmt: skip
        remote = {}
        offset = 0
        while True:
            page = await runtime.pikcel.list_jobs(limit=100, offset=offset)
            remote.update({j.id: j for j in page.data})
            offset += 100
            if not page.has_more:
                break
        assert kills >= 5
        assert len(rows) == JOBS
        assert all(r.lease_owner is None for r in rows), "a job is left leased"
        for r in rows:
            truth = remote[r.pikcel_job_id]
            assert r.status == truth.status and r.credits_used == int(truth.credits_used)
            assert r.status != "completed" or r.output_key is not None
        counters = (await runtime.http.get(f"{sim.url}/_sim/counters")).json()
        assert len(remote) == JOBS  # no remote job we do not know about
        assert all(entry["jobs"] <= 1 for entry in counters["idempotency"].values())
    finally:
        for worker in workers:
            worker.kill()
        await runtime.close()
        web.stop()
        sim.stop()
