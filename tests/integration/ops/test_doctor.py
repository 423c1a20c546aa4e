"""`pikcel-jobs doctor` checks for real: a healthy stack passes every line; a wrong
PikcelAI key, an unclaimed queue and stuck jobs are each named with a hint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import update

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.ops.doctor import run_checks
from pikcel_jobs.runtime import Runtime
from pikcel_sim.pikcel.config import SimConfig
from tests.support.seeding import seed_jobs
from tests.support.stack import running_stack


async def test_doctor_on_a_healthy_stack_and_on_broken_ones(
    app_settings: Settings, shop: str
) -> None:
    async with running_stack(
        app_settings, sim=SimConfig(seed=71, time_scale=0.01), shopify=True
    ) as stack:
        client = stack.embedded_client(shop)
        assert (await client.get("/api/products")).status_code == 200  # a connected shop
        checks = {c.name: c async for c in run_checks(stack.runtime)}
        # "stuck jobs" looks at the whole database, which earlier tests share with us.
        stuck_before = 0 if checks["stuck jobs"].ok else int(checks["stuck jobs"].detail.split()[0])
        assert all(c.ok for n, c in checks.items() if n != "stuck jobs"), [c for c in checks.values() if not c.ok]
        assert {"database", "PikcelAI", "webhook secret", "webhook URL", "Shopify app",
                "shop tokens", "worker", "stuck jobs"} <= set(checks)  # fmt: skip
        assert "1 shop(s) connected" in checks["shop tokens"].detail

        wrong = Runtime.create(stack.settings.model_copy(update={"pikcel_api_key": SecretStr("")}))
        try:
            broken = {c.name: c async for c in run_checks(wrong)}
        finally:
            await wrong.close()
        assert not broken["PikcelAI"].ok and "PIKCEL_API_KEY" in broken["PikcelAI"].hint

        # Due work nobody claims, and jobs stuck in processing for hours.
        for worker in stack.workers:
            worker.stop()
        ids = await seed_jobs(stack.runtime.sessions, shop, 3, status="processing")
        long_ago = datetime.now(UTC) - timedelta(hours=5)
        async with unit_of_work(stack.runtime.sessions) as session:
            await session.execute(
                update(Job)
                .where(Job.id.in_(ids))
                .values(next_attempt_at=long_ago, updated_at=long_ago)
            )
        checks = {c.name: c async for c in run_checks(stack.runtime)}
        assert not checks["worker"].ok and "pikcel-jobs worker" in checks["worker"].hint
        assert not checks["stuck jobs"].ok
        assert checks["stuck jobs"].detail.startswith(f"{stuck_before + 3} job(s)")
