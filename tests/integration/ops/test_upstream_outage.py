"""While PikcelAI fails, jobs wait (they do not fail), /api/status and the pages say so;
when it recovers, the jobs finish and the banner goes."""

from __future__ import annotations

import asyncio

from pikcel_jobs.config import Settings
from pikcel_jobs.ops import upstream
from pikcel_sim.pikcel.config import SimConfig
from tests.support.stack import finished, running_stack


async def test_outage_banner_and_waiting_jobs(app_settings: Settings, shop: str) -> None:
    async with running_stack(app_settings, sim=SimConfig(seed=81, time_scale=0.01)) as stack:
        await stack.set_faults(error_rate=1.0, error_statuses=[503])  # PikcelAI goes down
        upstream.CACHE_SECONDS = 0.0  # read the outbox on every call in this test
        client = stack.client(shop)
        ids = await stack.create_jobs(client, 3)
        for _ in range(100):
            status = (await client.get("/api/status")).json()["status"]
            if not status["pikcel"]["ok"]:
                break
            await asyncio.sleep(0.1)
        assert status["pikcel"]["ok"] is False and status["shopify"]["ok"] is True
        page = await client.get("/app/jobs")
        assert "PikcelAI is having trouble right now" in page.text
        jobs = [(await client.get(f"/api/jobs/{i}")).json()["job"] for i in ids]
        assert all(job["status"] == "pending" for job in jobs)  # waiting, not failed

        await stack.set_faults()  # PikcelAI recovers
        await stack.wait_for(client, ids, finished, within=60)
        status = (await client.get("/api/status")).json()["status"]
        assert status["pikcel"]["ok"] is True
        assert "PikcelAI is having trouble" not in (await client.get("/app/jobs")).text
        upstream.CACHE_SECONDS = 10.0
