"""The demo shop: connected to the Shopify simulator, with a month of job history of
every state (so the dashboard and analytics have something to show) and a few live
jobs running through the PikcelAI simulator."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from datetime import timedelta

from PIL import Image, ImageOps
from sqlalchemy import func, select

from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs import service as jobs
from pikcel_jobs.jobs.bulk_insert import insert_jobs
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shopify.auth import exchange_token
from pikcel_jobs.shopify.products import Product, list_products
from pikcel_jobs.shops.crypto import TokenCipher
from pikcel_jobs.shops.service import ensure_shop, graphql_for, store_token

TOOLS = {  # id: (name, credits, typical seconds)
    "background-removal": ("Background removal", 1, 6),
    "upscale-2x": ("Upscale 2x", 2, 9),
    "white-background": ("White background", 1, 5),
    "auto-enhance": ("Auto enhance", 1, 4),
    "drop-shadow": ("Drop shadow", 1, 5),
    "convert-webp": ("Convert to WebP", 1, 2),
}
FAILURES = [
    "Could not read the input image: the file is not a supported image",
    "Not enough PikcelAI credits to run this tool",
    "PikcelAI did not finish this job within 60 minutes",
]
Progress = Callable[[str, float], None]


async def already_seeded(runtime: Runtime, shop: str) -> bool:
    async with unit_of_work(runtime.sessions, read_only=True) as session:
        count = (await session.execute(select(func.count()).where(Job.shop == shop))).scalar_one()
    return bool(count)


async def connect_shop(runtime: Runtime, shop: str, session_token: str) -> list[Product]:
    """Token exchange with the Shopify simulator, as an embedded app does on first load."""
    settings = runtime.settings
    token = await exchange_token(
        shop, session_token, api_key=settings.shopify_api_key,
        api_secret=settings.shopify_api_secret.get_secret_value(), http_client=runtime.shopify_http,
    )  # fmt: skip
    async with unit_of_work(runtime.sessions) as session:
        store_token(await ensure_shop(session, shop), token, TokenCipher.from_settings(settings))
    gql = graphql_for(token, settings, runtime.shopify_http)
    products, cursor = await list_products(gql, first=50)
    while cursor and len(products) < 100:
        more, cursor = await list_products(gql, after=cursor, first=50)
        products += more
    return [p for p in products if p.images]


def demo_output(data: bytes, tool_id: str) -> bytes:
    with Image.open(io.BytesIO(data)) as source:
        image: Image.Image = source.convert("RGB")
    if tool_id == "upscale-2x":
        image = image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)
    elif tool_id in ("white-background", "drop-shadow"):
        image = ImageOps.pad(image, (max(image.size),) * 2, color=(255, 255, 255))
    else:
        image = ImageOps.autocontrast(image, cutoff=1)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def seed_history(
    runtime: Runtime, shop: str, products: list[Product], *, count: int, progress: Progress
) -> None:
    """`count` finished jobs over the last 30 days, with stored outputs."""
    from pikcel_jobs.net.fetch import fetch_bytes
    from pikcel_jobs.storage.store import make_thumbnail

    rng = random.Random(42)
    now = utcnow()
    samples: dict[tuple[str, str], tuple[str, str]] = {}
    chosen = products[:12]
    for i, product in enumerate(chosen):
        image = product.images[0]
        data, _ = await fetch_bytes(runtime.http, image.url, runtime.fetch_policy)
        for tool_id in TOOLS:
            key = f"demo/{product.id.rsplit('/', 1)[-1]}/{tool_id}"
            output = demo_output(data, tool_id)
            await runtime.store.put(f"{key}/output.png", output)
            await runtime.store.put(f"{key}/thumbnail.png", make_thumbnail(output))
            samples[(product.id, tool_id)] = (f"{key}/output.png", f"{key}/thumbnail.png")
        progress("Making sample outputs", (i + 1) / len(chosen) * 0.5)

    rows = []
    for n in range(count):
        product = rng.choice(chosen)
        tool_id = rng.choice(list(TOOLS))
        name, credits, seconds = TOOLS[tool_id]
        created = now - timedelta(days=rng.uniform(0.2, 30), seconds=rng.randint(0, 3600))
        status = rng.choices(["completed", "failed", "cancelled"], weights=[82, 12, 6])[0]
        took = int(rng.gauss(seconds, seconds / 3) * 1000) if status != "cancelled" else None
        took = max(800, took) if took else None
        finished = created + timedelta(milliseconds=(took or 3000) + 1500)
        row = {
            "shop": shop, "tool_id": tool_id, "tool_name": name, "status": status,
            "input_image_url": product.images[0].url, "product_id": product.id,
            "product_title": product.title, "image_id": product.images[0].id,
            "priority": rng.choices(["normal", "high", "low", "urgent"], [80, 10, 7, 3])[0],
            "meta": {"campaign": rng.choice(["spring", "summer", "clearance"])},
            "pikcel_job_id": f"job_demo{n:06d}", "created_at": created, "updated_at": finished,
            "started_at": created + timedelta(seconds=1), "completed_at": finished,
            "processing_time_ms": took,
        }  # fmt: skip
        if status == "completed":
            output_key, thumb_key = samples[(product.id, tool_id)]
            row.update(
                credits_used=credits, progress=100, output_key=output_key, thumbnail_key=thumb_key
            )
        elif status == "failed":
            row["error_message"] = rng.choice(FAILURES)
        rows.append(row)
    async with unit_of_work(runtime.sessions) as session:
        ids = await insert_jobs(session, rows)
    # Our URLs need the ids, known only now.
    async with unit_of_work(runtime.sessions) as session:
        for job_id, row in zip(ids, rows, strict=True):
            if row["status"] == "completed":
                job = await session.get(Job, job_id)
                assert job is not None
                job.output_image_url = f"{runtime.settings.app_url}/api/jobs/{job_id}/output"
                job.thumbnail_url = f"{runtime.settings.app_url}/api/jobs/{job_id}/thumbnail"
    progress("Writing a month of history", 1.0)


async def start_live_jobs(
    runtime: Runtime, shop: str, products: list[Product], count: int = 6
) -> None:
    """A few jobs that really run now, through the PikcelAI simulator."""
    async with unit_of_work(runtime.sessions) as session:
        for product, tool_id in zip(products[:count], TOOLS, strict=False):
            image = product.images[0]
            data = JobCreate(
                tool_id=tool_id, input_image_url=image.url, product_id=product.id,
                product_title=product.title, image_id=image.id,
            )  # fmt: skip
            await jobs.create_job(
                session,
                shop=shop,
                data=data,
                input_image_url=image.url,
                tool_name=TOOLS[tool_id][0],
            )
    runtime.nudge()
