"""Worker handler: a due schedule finds its products in Shopify and starts one batch."""

from __future__ import annotations

import logging

from pikcel_jobs.batches.schemas import BatchCreate, BatchImage
from pikcel_jobs.batches.service import create_batch
from pikcel_jobs.core.errors import AppError
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.schedules.models import Schedule
from pikcel_jobs.schedules.service import next_run, template_of
from pikcel_jobs.shopify.errors import ShopifyError
from pikcel_jobs.shopify.products import list_products
from pikcel_jobs.shops.service import access_token_for, graphql_for
from pikcel_jobs.worker.claim import LeaseLost
from pikcel_jobs.worker.context import WorkerContext

log = logging.getLogger("pikcel_jobs.schedules")


async def run_schedule(ctx: WorkerContext, schedule_id: str) -> None:
    started = utcnow()
    http = ctx.shopify_http or ctx.http
    async with unit_of_work(ctx.sessions) as session:
        schedule = await session.get(Schedule, schedule_id)
        if schedule is None or schedule.lease_owner != ctx.owner:
            return
        shop, query, limit = schedule.shop, schedule.product_query, schedule.max_products
    error: str | None = None
    images: list[BatchImage] = []
    try:
        async with unit_of_work(ctx.sessions) as session:
            token = await access_token_for(session, domain=shop, settings=ctx.settings, http=http)
        gql = graphql_for(token, ctx.settings, http)
        search = query.replace("{today}", started.date().isoformat())
        cursor = None
        while len(images) < limit:
            products, cursor = await list_products(gql, search, cursor, first=min(50, limit))
            for product in products:
                if product.images and len(images) < limit:
                    image = product.images[0]
                    images.append(BatchImage(
                        input_image_url=image.url, product_id=product.id,
                        product_title=product.title, image_id=image.id,
                    ))  # fmt: skip
            if cursor is None:
                break
    except (ShopifyError, AppError) as exc:
        error = f"Shopify products could not be read: {exc}"
    async with unit_of_work(ctx.sessions) as session:
        row = await session.get(Schedule, schedule_id, with_for_update=True)
        if row is None or row.lease_owner != ctx.owner:
            raise LeaseLost(schedule_id)
        if images and error is None:
            template = await template_of(session, shop=shop, template_id=row.template_id)
            data = BatchCreate(
                name=f"{row.name} — {started:%Y-%m-%d %H:%M} UTC", tool_id=template.tool_id,
                images=images, parameters=template.parameters, priority=template.priority,
                template_id=template.id,
            )  # fmt: skip
            batch, _ = await create_batch(session, shop=shop, data=data)
            row.last_batch_id = batch.id
        row.last_error = error or (None if images else "no product matched the schedule's search")
        row.last_run_at = started
        row.next_run_at = next_run(row.cron, started) if row.enabled else None
        row.lease_owner = None
        row.lease_expires_at = None
    log.info("schedule %s ran: %d images, error=%s", schedule_id, len(images), error)
