"""A real worker process (`pikcel-jobs worker`) SIGKILLed in the middle of pushes, then
started again: once its leases expire the new one finishes every push, and each product
ends with exactly one image per job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from push_support import connect, ours, seed_completed, sim_product
from sqlalchemy import select

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.jobs.models import Job
from pikcel_sim.shopify import ShopifySimConfig
from tests.support.databases import database
from tests.support.stack import Stack, running_stack

WORKER = Path(sys.executable).parent / "pikcel-jobs"
LEASE_SECONDS = 1.5
JOBS = 6


def start_worker(stack: Stack, cwd: Path) -> subprocess.Popen[bytes]:
    settings = stack.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PIKCEL_", "SHOPIFY_"))},
        "ENV": "test",
        "DATABASE_URL": settings.database_url,
        "STORAGE_DIR": str(settings.storage_dir),
        "APP_URL": settings.app_url,
        "PIKCEL_API_URL": stack.sim_url,
        "PIKCEL_API_KEY": settings.pikcel_api_key.get_secret_value(),
        "PIKCEL_WEBHOOK_SECRET": settings.pikcel_webhook_secret.get_secret_value(),
        "SHOPIFY_API_KEY": settings.shopify_api_key,
        "SHOPIFY_API_SECRET": settings.shopify_api_secret.get_secret_value(),
        "SHOPIFY_CONNECT_URL": stack.shopify_url,
        "SESSION_SECRET": settings.session_secret.get_secret_value(),
        "TOKEN_ENCRYPTION_KEY": settings.token_encryption_key.get_secret_value(),
        "ALLOW_PRIVATE_URLS": "true",
        "LEASE_SECONDS": str(LEASE_SECONDS),
        "WORKER_IDLE_SLEEP_SECONDS": "0.05",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [str(WORKER), "worker"], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


async def push_statuses(stack: Stack, ids: list[str]) -> dict[str, str]:
    async with unit_of_work(stack.runtime.sessions, read_only=True) as session:
        rows = await session.execute(select(Job.id, Job.push_status).where(Job.id.in_(ids)))
        return {job_id: status for job_id, status in rows.all()}


async def wait_until(stack: Stack, ids: list[str], done: set[str], within: float) -> dict[str, str]:
    deadline = time.monotonic() + within
    while True:
        statuses = await push_statuses(stack, ids)
        if any(s in done for s in statuses.values()) and (
            done != {"pushed"} or all(s == "pushed" for s in statuses.values())
        ):
            return statuses
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.02)


@pytest.fixture
def own_database(app_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A database of its own: the worker process claims every due row it sees, and the
    session's shared database holds other modules' leftovers."""
    kind = "sqlite" if app_settings.is_sqlite else "postgresql"
    with database(kind, tmp_path) as url:
        upgrade(url)
        yield app_settings.model_copy(update={"database_url": url})


async def test_sigkill_mid_push_then_restart_leaves_one_image_per_job(
    own_database: Settings, shop: str, tmp_path: Path
) -> None:
    shopify = ShopifySimConfig(
        seed=13, products_per_shop=12, media_processing_seconds=1.0, bucket_size=5000.0,
        restore_rate=1000.0, shops=(),
    )  # fmt: skip
    async with running_stack(own_database, shopify=shopify, workers=0) as stack:
        products = (await connect(stack, shop))[:JOBS]
        client = stack.client(shop)
        ids = []
        for i, product in enumerate(products):
            job_id = await seed_completed(stack, shop, product)
            mode = "replace" if i % 2 else "add"
            answer = await client.post(
                "/api/jobs/push-to-shopify", json={"jobId": job_id, "mode": mode}
            )
            assert answer.status_code == 200, answer.text
            ids.append(job_id)

        first = start_worker(stack, tmp_path)
        try:
            seen = await wait_until(stack, ids, {"attached"}, within=60)
        except AssertionError as exc:
            first.kill()
            raise AssertionError(f"{exc}: {first.communicate()[1].decode()[-3000:]}") from None
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert set(seen.values()) != {"pushed"}  # killed in the middle of the pushes

        second = start_worker(stack, tmp_path)
        try:
            statuses = await wait_until(stack, ids, {"pushed"}, within=60)
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                _, err = second.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                second.kill()
                _, err = second.communicate()
        assert set(statuses.values()) == {"pushed"}, err.decode()[-2000:]
        for i, (job_id, product) in enumerate(zip(ids, products, strict=True)):
            after = await sim_product(stack, shop, product["id"])
            assert len(ours(after, job_id)) == 1, (job_id, after["media"])
            if i % 2:  # replaced: the original left only once ours was there
                assert product["images"][0]["id"] not in [m["id"] for m in after["media"]]
