"""Bulk retry / cancel / sync on 10,000 jobs, set-based, racing clicks, and bulk cancel
of jobs running upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import JobAttempt
from pikcel_sim.pikcel.config import SimConfig
from tests.support.seeding import seed_jobs
from tests.support.stack import running_stack

N = 10_000


async def finish(
    client: httpx.AsyncClient, operation: dict[str, Any], within: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while operation["status"] == "running":
        assert time.monotonic() < deadline, operation
        await asyncio.sleep(0.2)
        operation = (await client.get(f"/api/jobs/bulk/{operation['id']}")).json()["operation"]
    return operation


async def test_bulk_retry_then_cancel_on_10000_jobs(
    sessions: async_sessionmaker[AsyncSession],
    client_for: Callable[[str], httpx.AsyncClient],
    shop: str,
) -> None:
    await seed_jobs(sessions, shop, N, status="failed")
    client = client_for(shop)
    body = {"action": "retry", "filter": {"status": ["failed"]}}
    first, second = await asyncio.gather(
        client.post("/api/jobs/bulk", json=body), client.post("/api/jobs/bulk", json=body)
    )
    ops = [await finish(client, r.json()["operation"]) for r in (first, second)]
    assert sum(op["succeeded"] for op in ops) == N  # two clicks, one retry per job
    stats = (await client.get("/api/jobs/stats")).json()["stats"]
    assert (stats["pending"], stats["failed"], stats["total"]) == (N, 0, N)
    async with unit_of_work(sessions, read_only=True) as session:
        attempts = (await session.execute(
            select(JobAttempt.number, func.count()).join_from(JobAttempt, JobAttempt.job)
            .where(JobAttempt.job.has(shop=shop)).group_by(JobAttempt.number)
        )).all()  # fmt: skip
    assert dict(attempts) == {1: N, 2: N}

    cancel = await client.post(
        "/api/jobs/bulk", json={"action": "cancel", "filter": {"status": ["pending"]}}
    )
    op = await finish(client, cancel.json()["operation"])
    assert op["total"] == N and op["succeeded"] == N
    stats = (await client.get("/api/jobs/stats")).json()["stats"]
    assert (stats["cancelled"], stats["pending"]) == (N, 0)
    nothing = (await client.post("/api/jobs/bulk", json={"action": "sync", "filter": {}})).json()[
        "operation"
    ]
    assert nothing["status"] == "completed" and nothing["total"] == 0


async def test_bulk_validation_and_scoping(
    sessions: async_sessionmaker[AsyncSession],
    client_for: Callable[[str], httpx.AsyncClient],
    shop: str,
    other_shop: str,
) -> None:
    ids = await seed_jobs(sessions, shop, 3, status="failed")
    for body, needle in [
        ({"action": "explode", "jobIds": ids}, "action"),
        ({"action": "retry"}, "jobIds or filter"),
        ({"action": "retry", "jobIds": ids, "filter": {}}, "jobIds or filter"),
        ({"action": "retry", "filter": {"status": ["nope"]}}, "filter"),
    ]:
        response = await client_for(shop).post("/api/jobs/bulk", json=body)
        assert response.status_code == 400 and needle in response.json()["error"]["message"], body
    foreign = await client_for(other_shop).post(
        "/api/jobs/bulk", json={"action": "retry", "jobIds": ids}
    )
    op = foreign.json()["operation"]
    assert op["total"] == 0 and op["succeeded"] == 0  # another shop's ids match nothing
    mine = (
        await client_for(shop).post("/api/jobs/bulk", json={"action": "retry", "jobIds": ids})
    ).json()["operation"]
    assert (await client_for(other_shop).get(f"/api/jobs/bulk/{mine['id']}")).status_code == 404


async def test_bulk_cancel_reaches_jobs_running_upstream(app_settings: Settings, shop: str) -> None:
    async with running_stack(
        app_settings, sim=SimConfig(seed=31, time_scale=0.01, auto_progress=False)
    ) as stack:
        client = stack.client(shop)
        ids = await stack.create_jobs(client, 5)
        jobs = await stack.wait_for(client, ids, lambda j: j["pikcelJobId"] is not None)
        response = await client.post("/api/jobs/bulk", json={"action": "cancel", "jobIds": ids})
        op = await finish(client, response.json()["operation"])
        assert op["succeeded"] == 5
        await stack.wait_for(client, ids, lambda j: j["status"] == "cancelled")
        for job in jobs:
            assert (await stack.sim_get(f"/_sim/jobs/{job['pikcelJobId']}"))[
                "status"
            ] == "cancelled"
