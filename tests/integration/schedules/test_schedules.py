"""Scheduled jobs dispatch at their time across a worker restart, can be moved or run
now; recurring schedules run a template on the products a Shopify search finds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.schedules.models import Schedule
from pikcel_jobs.worker.process import start_worker
from pikcel_sim.pikcel.config import SimConfig
from tests.support.stack import finished, running_stack


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def test_scheduled_job_runs_on_time_across_a_worker_restart(
    app_settings: Settings, shop: str
) -> None:
    async with running_stack(app_settings, sim=SimConfig(seed=61, time_scale=0.01)) as stack:
        client = stack.client(shop)
        at = datetime.now(UTC) + timedelta(seconds=3)
        [job_id] = await stack.create_jobs(client, 1, scheduledFor=iso(at))
        job = (await client.get(f"/api/jobs/{job_id}")).json()["job"]
        assert job["status"] == "scheduled"
        # The only worker stops; the time comes and goes; a new worker starts.
        old = stack.workers[0]
        old.stop()
        await asyncio.sleep(3.5)
        assert (await client.get(f"/api/jobs/{job_id}")).json()["job"]["status"] == "scheduled"
        fresh = start_worker(stack.runtime)
        task = asyncio.create_task(fresh.run(grace_seconds=5))
        try:
            [done] = await stack.wait_for(client, [job_id], finished)
            assert done["status"] == "completed"
            detail = (await client.get(f"/api/jobs/{job_id}")).json()["job"]
            dispatched = next(e for e in detail["events"] if e["kind"] == "dispatched")
            assert datetime.fromisoformat(dispatched["createdAt"]) >= at
        finally:
            fresh.stop()
            await task


async def test_reschedule_and_run_now(app_settings: Settings, shop: str) -> None:
    async with running_stack(app_settings, sim=SimConfig(seed=62, time_scale=0.01)) as stack:
        client = stack.client(shop)
        far = datetime.now(UTC) + timedelta(days=7)
        [job_id] = await stack.create_jobs(client, 1, scheduledFor=iso(far))
        later = far + timedelta(days=1)
        moved = await client.post(
            "/api/jobs/reschedule", json={"jobId": job_id, "scheduledFor": iso(later)}
        )
        assert moved.status_code == 200 and moved.json()["job"]["scheduledFor"].startswith(
            later.date().isoformat()
        )
        now = await client.post("/api/jobs/reschedule", json={"jobId": job_id})
        assert now.status_code == 200
        [done] = await stack.wait_for(client, [job_id], finished)
        assert done["status"] == "completed"
        again = await client.post(
            "/api/jobs/reschedule", json={"jobId": job_id, "scheduledFor": iso(later)}
        )
        assert again.status_code == 409 and "rescheduled" in again.json()["error"]["message"]


async def test_recurring_schedule_runs_a_template_on_shopify_products(
    app_settings: Settings, shop: str
) -> None:
    async with running_stack(
        app_settings, sim=SimConfig(seed=63, time_scale=0.01), shopify=True
    ) as stack:
        client = stack.embedded_client(shop)
        assert (await client.get("/api/products")).status_code == 200  # connects the shop
        template = await client.post(
            "/api/templates", json={"name": "Nightly", "toolId": "auto-enhance"}
        )
        assert template.status_code == 201, template.text
        template_id = template.json()["template"]["id"]
        bad = await client.post(
            "/api/schedules", json={"name": "x", "cron": "every night", "templateId": template_id}
        )
        assert bad.status_code == 400 and "cron" in bad.json()["error"]["message"]
        created = await client.post("/api/schedules", json={
            "name": "New products", "cron": "0 2 * * *", "templateId": template_id, "maxProducts": 3,
            "productQuery": "created_at:<={today}",
        })  # fmt: skip
        assert created.status_code == 201, created.text
        schedule = created.json()["schedule"]
        assert schedule["nextRunAt"].endswith(("T02:00:00Z", "T02:00:00+00:00"))
        # Make it due now instead of at 02:00.
        async with unit_of_work(stack.runtime.sessions) as session:
            await session.execute(update(Schedule).where(Schedule.id == schedule["id"])
                                  .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1)))  # fmt: skip
        for _ in range(100):
            listed = (await client.get("/api/schedules")).json()["schedules"][0]
            if listed["lastRunAt"]:
                break
            await asyncio.sleep(0.1)
        assert listed["lastError"] is None and listed["lastBatchId"], listed
        assert datetime.fromisoformat(listed["nextRunAt"]) > datetime.now(UTC)
        batch = (await client.get(f"/api/batches/{listed['lastBatchId']}")).json()["batch"]
        assert batch["totalJobs"] == 3 and batch["toolId"] == "auto-enhance"
        other = stack.client("someone-else.myshopify.com")
        assert (
            await other.patch(f"/api/schedules/{schedule['id']}", json={"enabled": False})
        ).status_code == 404
        off = await client.patch(f"/api/schedules/{schedule['id']}", json={"enabled": False})
        assert off.json()["schedule"]["nextRunAt"] is None
