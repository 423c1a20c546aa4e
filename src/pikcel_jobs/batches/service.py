"""Batches: many product images sent to one tool together."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.batches.models import JobBatch
from pikcel_jobs.batches.schemas import BatchCreate
from pikcel_jobs.core.errors import NotFound
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.jobs import service as jobs
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobCreate


async def create_batch(
    session: AsyncSession, *, shop: str, data: BatchCreate, tool_name: str | None = None
) -> tuple[JobBatch, list[Job]]:
    now = utcnow()
    batch = JobBatch(
        shop=shop, name=data.name, tool_id=data.tool_id, total_jobs=len(data.images),
        status="pending", created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(batch)
    await session.flush()
    created = []
    for image in data.images:
        job_data = JobCreate(
            tool_id=data.tool_id, input_image_url=image.input_image_url,
            product_id=image.product_id, product_title=image.product_title,
            variant_id=image.variant_id, image_id=image.image_id,
            parameters=data.parameters, priority=data.priority, template_id=data.template_id,
            metadata=data.metadata, scheduled_for=data.scheduled_for, batch_id=batch.id,
        )  # fmt: skip
        created.append(
            await jobs.create_job(
                session,
                shop=shop,
                data=job_data,
                input_image_url=str(image.input_image_url),
                tool_name=tool_name,
                now=now,
            )
        )
    return batch, created


async def get_batch(session: AsyncSession, *, shop: str, batch_id: str) -> JobBatch:
    batch = (
        await session.execute(
            select(JobBatch).where(JobBatch.shop == shop, JobBatch.id == batch_id)
        )
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound("batch not found")
    return batch


async def list_batches(session: AsyncSession, *, shop: str, limit: int = 50) -> Sequence[JobBatch]:
    stmt = (
        select(JobBatch)
        .where(JobBatch.shop == shop)
        .order_by(JobBatch.created_at.desc(), JobBatch.id.desc())
        .limit(max(1, min(limit, 100)))
    )
    return (await session.execute(stmt)).scalars().all()
