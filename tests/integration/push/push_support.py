"""Helpers of the push tests: connect a shop through the products route, seed completed
jobs with a stored output, read what the Shopify simulator really holds."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from pikcel_jobs.db.base import new_id, utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.states import record_new_job
from pikcel_jobs.shopify.media import alt_marker
from pikcel_jobs.shops.service import ensure_shop
from tests.support.stack import Stack


def png(colour: tuple[int, int, int] = (220, 40, 40), size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


async def connect(stack: Stack, shop: str) -> list[dict[str, Any]]:
    """Open the app as Shopify admin would (session token): the shop gets connected by
    token exchange; returns the first page of its products."""
    answer = await stack.embedded_client(shop).get("/api/products")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["products"])


async def set_shop_settings(stack: Stack, shop: str, **values: Any) -> None:
    async with unit_of_work(stack.runtime.sessions) as session:
        row = await ensure_shop(session, shop)
        row.settings = {**(row.settings or {}), **values}


async def seed_completed(
    stack: Stack,
    shop: str,
    product: dict[str, Any] | None,
    *,
    with_image: bool = True,
    status: str = "completed",
    colour: tuple[int, int, int] = (220, 40, 40),
) -> str:
    """A finished job of `product` (its first image as the source), output stored."""
    job_id = new_id()
    key = f"{shop}/{job_id}/1/output.png"
    await stack.runtime.store.put(key, png(colour))
    now = utcnow()
    image = product["images"][0] if product and product["images"] else None
    async with unit_of_work(stack.runtime.sessions) as session:
        job = Job(
            id=job_id, shop=shop, tool_id="background-removal", tool_name="Background removal",
            status=status, input_image_url=image["url"] if image else "https://x.test/a.png",
            product_id=product["id"] if product else None,
            product_title=product["title"] if product else None,
            image_id=image["id"] if image and with_image else None,
            output_key=key if status == "completed" else None, completed_at=now,
            created_at=now, updated_at=now, meta={}, parameters={},
        )  # fmt: skip
        session.add(job)
        await record_new_job(session, job)
    return job_id


async def sim_product(stack: Stack, shop: str, product_id: str) -> dict[str, Any]:
    number = product_id.rsplit("/", 1)[-1]
    answer = await stack.shopify_admin().get(f"/_sim/shops/{shop}/products/{number}")
    answer.raise_for_status()
    return dict(answer.json())


def ours(product: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    """The product's media carrying the job's alt marker."""
    marker = alt_marker(job_id)
    return [m for m in product["media"] if marker in (m.get("alt") or "")]


async def wait_job(
    client: httpx.AsyncClient,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    within: float = 20.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        job = (await client.get(f"/api/jobs/{job_id}")).json()["job"]
        if done(job):
            return dict(job)
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not done in {within}s: {job['pushStatus']}")
        await asyncio.sleep(0.05)


def push_is(*statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda job: job["pushStatus"] in statuses
