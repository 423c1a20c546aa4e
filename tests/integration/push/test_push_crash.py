"""Crash idempotence of the push handler: a crash after every step (before and after its
checkpoint), the lease left to expire, then another worker takes over. Whatever the
step, each job ends with exactly one image of its own on the product; a replace never
loses the original before ours is READY; a revert restores the original once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest_asyncio
from push_support import connect, ours, seed_completed, set_shop_settings, sim_product
from sqlalchemy import or_, update

from pikcel_jobs.config import Settings
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.push import service
from pikcel_jobs.push.tasks import PUSH_STEPS, REVERT_STEPS, advance_push
from pikcel_sim.shopify import ShopifySimConfig
from tests.support.stack import Stack, running_stack

SETTLED = ("pushed", "failed", "reverted")


class Crash(Exception):
    """The worker process dies here."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(app_settings: Settings) -> AsyncIterator[Stack]:
    shopify = ShopifySimConfig(
        seed=12, products_per_shop=30, media_processing_seconds=0.2, bucket_size=5000.0,
        restore_rate=1000.0, shops=(),
    )  # fmt: skip
    async with running_stack(app_settings, shopify=shopify, workers=0) as running:
        yield running


async def claim(stack: Stack, job_id: str, owner: str) -> bool:
    """A worker's claim of this one row: due, and no live lease."""
    now = utcnow()
    async with unit_of_work(stack.runtime.sessions) as session:
        result = await session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.push_next_at <= now,
                or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now),
            )
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=30))
            .execution_options(synchronize_session=False)
        )
    return bool(getattr(result, "rowcount", 0))


async def expire_lease(stack: Stack, job_id: str) -> None:
    async with unit_of_work(stack.runtime.sessions) as session:
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )


async def drive(stack: Stack, job_id: str, crash_at: str | None, within: float = 20.0) -> Job:
    """Run the handler as successive workers would until the push settles; the first
    worker to reach `crash_at` dies there."""
    crashed: list[str] = []

    async def hook(step: str) -> None:
        if step == crash_at and not crashed:
            crashed.append(step)
            raise Crash(step)

    deadline = time.monotonic() + within
    for n in range(10_000):
        async with unit_of_work(stack.runtime.sessions, read_only=True) as session:
            job = await session.get(Job, job_id)
        assert job is not None
        if job.push_status in SETTLED and job.push_next_at is None:
            assert crash_at is None or crashed, f"never reached step {crash_at}"
            return job
        assert time.monotonic() < deadline, f"{job_id} stuck at {job.push_status}"
        owner = f"test-worker-{n}"
        if not await claim(stack, job_id, owner):
            await asyncio.sleep(0.05)
            continue
        try:
            await advance_push(stack.runtime.worker_context(owner), job_id, hook=hook)
        except Crash:
            await expire_lease(stack, job_id)
    raise AssertionError("unreachable")


async def snapshot(stack: Stack, shop: str, products: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*[sim_product(stack, shop, p["id"]) for p in products]))


async def queue_push(stack: Stack, shop: str, job_id: str, mode: str) -> None:
    async with unit_of_work(stack.runtime.sessions) as session:
        await service.request_push(session, shop=shop, job_id=job_id, mode=mode)  # type: ignore[arg-type]


async def test_a_crash_after_any_push_step_leaves_one_image(stack: Stack, shop: str) -> None:
    products = await connect(stack, shop)
    add_steps = [s for s in PUSH_STEPS if s != "original_removed"]
    plan = [("add", s) for s in add_steps] + [("replace", s) for s in PUSH_STEPS]
    plan += [("add", None), ("replace", None)]
    before = {p["id"]: p for p in await snapshot(stack, shop, products[: len(plan)])}
    jobs = []
    for product, (mode, step) in zip(products, plan, strict=False):
        job_id = await seed_completed(stack, shop, product)
        await queue_push(stack, shop, job_id, mode)
        jobs.append((job_id, product, mode, step))
    results = await asyncio.gather(*[drive(stack, j, step) for j, _, _, step in jobs])
    afters = await snapshot(stack, shop, [p for _, p, _, _ in jobs])
    for (job_id, product, mode, step), job, after in zip(jobs, results, afters, strict=True):
        assert job.push_status == "pushed", (mode, step, job.push_error)
        mine = ours(after, job_id)
        assert len(mine) == 1 and mine[0]["status"] == "READY", (mode, step)
        assert mine[0]["id"] == job.shopify_media_id
        old = [m["id"] for m in before[product["id"]]["media"]]
        now = [m["id"] for m in after["media"]]
        expected = [*old, mine[0]["id"]]
        if mode == "replace":
            expected.remove(product["images"][0]["id"])
        assert now == expected, (mode, step)

    # Revert the replaces, crashing after each revert step: the original comes back once.
    replaces = [(j, p) for j, p, mode, _ in jobs if mode == "replace"][: len(REVERT_STEPS) + 1]
    steps: list[str | None] = [*REVERT_STEPS, None]
    for job_id, _ in replaces:
        async with unit_of_work(stack.runtime.sessions) as session:
            await service.request_revert(session, shop=shop, job_id=job_id)
    results = await asyncio.gather(
        *[drive(stack, j, step) for (j, _), step in zip(replaces, steps, strict=True)]
    )
    afters = await snapshot(stack, shop, [p for _, p in replaces])
    for (job_id, product), step, job, after in zip(replaces, steps, results, afters, strict=True):
        assert job.push_status == "reverted", (step, job.push_error)
        ids = [m["id"] for m in after["media"]]
        assert ids.count(product["images"][0]["id"]) == 1 and not ours(after, job_id), step
        assert sorted(ids) == sorted(m["id"] for m in before[product["id"]]["media"])


async def test_a_crash_while_failing_a_broken_image_still_cleans_up(
    stack: Stack, shop: str
) -> None:
    products = await connect(stack, shop)
    await set_shop_settings(stack, shop)
    admin = stack.shopify_admin()
    await admin.put("/_sim/faults", json={"media_failure_rate": 1.0, "shop": shop})
    steps = ["failure_saved", "failed_deleted", "attach_saved"]
    try:
        jobs = []
        for product, _ in zip(products, steps, strict=False):
            job_id = await seed_completed(stack, shop, product)
            await queue_push(stack, shop, job_id, "add")
            jobs.append((job_id, product))
        results = await asyncio.gather(
            *[drive(stack, j, step) for (j, _), step in zip(jobs, steps, strict=True)]
        )
    finally:
        await admin.delete("/_sim/faults")
    for (job_id, product), step, job in zip(jobs, steps, results, strict=True):
        assert job.push_status == "failed", step
        assert job.push_error and "could not process" in job.push_error, (step, job.push_error)
        assert not ours(await sim_product(stack, shop, product["id"]), job_id), step
