"""Helpers of the hardening tests: the app's routes as a flat list, another shop's
world to attack, and a snapshot of everything a shop owns."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
from pikcel_jobs.db.base import Base, utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.storage.store import LocalImageStore
from tests.support.stack import product_photo


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str  # the path template, e.g. /api/jobs/{job_id}
    in_schema: bool
    module: str

    @property
    def params(self) -> list[str]:
        return [p.split(":")[0] for p in re.findall(r"{([^}]+)}", self.path)]


def app_routes(app: FastAPI) -> list[RouteInfo]:
    """Every (method, path) the app answers, whatever the FastAPI version nests them in."""
    out: list[RouteInfo] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if contexts is not None:  # FastAPI's included-router wrapper
                walk(list(contexts()))
                continue
            path = getattr(route, "path_format", None) or getattr(route, "path", None)
            if path is None:
                continue
            endpoint = getattr(route, "endpoint", None)
            module = getattr(endpoint, "__module__", "") or ""
            methods = sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"})
            in_schema = bool(getattr(route, "include_in_schema", False))
            out.extend(RouteInfo(m, path, in_schema, module) for m in methods)

    walk(list(app.routes))
    return out


# ---- Shop B's world: one of everything the service keeps for a shop ----


@dataclass
class World:
    shop: str
    job_id: str = ""
    pikcel_job_id: str = ""
    batch_id: str = ""
    batch_job_id: str = ""
    template_id: str = ""
    template_name: str = ""
    operation_id: str = ""
    schedule_id: str = ""
    product_id: str = ""
    image_id: str = ""
    marker: str = field(default_factory=lambda: f"secret-{secrets.token_hex(6)}")
    output_key: str = ""

    def markers(self) -> dict[str, str]:
        """What must never appear in an answer to another shop."""
        values = {
            "shop": self.shop, "job": self.job_id, "pikcel job": self.pikcel_job_id,
            "batch": self.batch_id, "batch job": self.batch_job_id,
            "template": self.template_id, "template name": self.template_name,
            "bulk operation": self.operation_id, "schedule": self.schedule_id,
            "product": self.product_id.rsplit("/", 1)[-1], "marker": self.marker,
        }  # fmt: skip
        return {k: v for k, v in values.items() if v}


async def build_world(
    shop: str, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession],
    settings: Settings, image_url: str = "https://cdn.example.com/b.png",
) -> World:  # fmt: skip
    """Through the API where a route exists (so the data is what the app itself makes),
    directly in the database for what only the worker makes (a completed job with our
    stored copy of its output)."""
    world = World(shop=shop)
    world.product_id = f"gid://shopify/Product/{secrets.randbelow(10**12) + 10**11}"
    world.image_id = f"gid://shopify/MediaImage/{secrets.randbelow(10**12) + 10**11}"
    world.pikcel_job_id = f"pk-{secrets.token_hex(8)}"

    # A completed job with a stored output and thumbnail.
    async with unit_of_work(sessions) as session:
        data = JobCreate(
            tool_id="background-removal", input_image_url=image_url,
            product_id=world.product_id, product_title=f"Mug {world.marker}",
            image_id=world.image_id, metadata={"sku": world.marker},
        )  # fmt: skip
        job = await service.create_job(session, shop=shop, data=data, input_image_url=image_url)
        world.job_id = job.id
        world.output_key = f"{shop}/{job.id}/1/output.png"
        job.status = "completed"
        job.pikcel_job_id = world.pikcel_job_id
        job.output_key = world.output_key
        job.thumbnail_key = f"{shop}/{job.id}/1/thumb.png"
        job.output_image_url = f"/api/jobs/{job.id}/output"
        job.credits_used = 3
        job.progress = 100
        job.completed_at = utcnow()
        job.next_attempt_at = None
    store = LocalImageStore(settings.storage_dir)
    await store.put(world.output_key, product_photo(64))
    await store.put(f"{shop}/{job.id}/1/thumb.png", product_photo(32))

    template = await client.post("/api/templates", json={
        "name": f"Template {world.marker}", "toolId": "background-removal",
        "description": world.marker,
    })  # fmt: skip
    assert template.status_code == 201, template.text
    world.template_id = template.json()["template"]["id"]
    world.template_name = f"Template {world.marker}"

    batch = await client.post("/api/batches", json={
        "name": f"Batch {world.marker}", "toolId": "background-removal",
        "images": [{"inputImageUrl": image_url, "productId": world.product_id}],
    })  # fmt: skip
    assert batch.status_code == 201, batch.text
    world.batch_id = batch.json()["batch"]["id"]
    world.batch_job_id = batch.json()["jobs"][0]["id"]

    op = await client.post("/api/jobs/bulk", json={"action": "retry", "jobIds": [world.job_id]})
    assert op.status_code == 200, op.text
    world.operation_id = op.json()["operation"]["id"]

    schedule = await client.post("/api/schedules", json={
        "name": f"Nightly {world.marker}", "cron": "0 2 * * *", "templateId": world.template_id,
    })  # fmt: skip
    if schedule.status_code == 201:
        world.schedule_id = schedule.json()["schedule"]["id"]
    else:  # schedules are optional (a route still being built)
        assert schedule.status_code in (404, 405), schedule.text
    return world


# ---- Everything a shop owns, to prove another shop's requests changed none of it ----

VOLATILE = {"heartbeat_at", "lease_owner", "lease_expires_at"}


def _shop_tables() -> list[tuple[Table, str]]:
    tables = []
    for table in Base.metadata.sorted_tables:
        for column in ("shop", "domain"):
            if column in table.c:
                tables.append((table, column))
                break
    return tables


async def snapshot(sessions: async_sessionmaker[AsyncSession], shop: str) -> dict[str, Any]:
    """Every row of every table keyed by shop (and the shop's job attempts)."""
    out: dict[str, Any] = {}
    async with unit_of_work(sessions, read_only=True) as session:
        for table, column in _shop_tables():
            rows = (await session.execute(select(table).where(table.c[column] == shop))).all()
            out[table.name] = sorted(
                ({k: v for k, v in row._mapping.items() if k not in VOLATILE} for row in rows),
                key=repr,
            )
        job_ids = select(Job.id).where(Job.shop == shop)
        attempts = (
            await session.execute(
                select(JobAttempt.__table__).where(JobAttempt.job_id.in_(job_ids))
            )
        ).all()
        out["job_attempts"] = sorted((dict(r._mapping) for r in attempts), key=repr)
    return out


def leaks(body: str, world: World) -> list[str]:
    return [f"{what} ({value})" for what, value in world.markers().items() if value in body]
