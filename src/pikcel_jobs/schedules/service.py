"""Recurring schedules: "every night, run template X on products added today"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.core.errors import NotFound
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.schedules.models import Schedule
from pikcel_jobs.schedules.schemas import ScheduleCreate, ScheduleUpdate
from pikcel_jobs.templates.models import JobTemplate


def next_run(cron: str, after: datetime) -> datetime:
    """The next time `cron` fires strictly after `after` (UTC)."""
    result: datetime = croniter(cron, after).get_next(datetime)
    return result


async def template_of(session: AsyncSession, *, shop: str, template_id: str) -> JobTemplate:
    template = (
        await session.execute(
            select(JobTemplate).where(JobTemplate.shop == shop, JobTemplate.id == template_id)
        )
    ).scalar_one_or_none()
    if template is None:
        raise NotFound("template not found")
    return template


async def create_schedule(session: AsyncSession, *, shop: str, data: ScheduleCreate) -> Schedule:
    await template_of(session, shop=shop, template_id=data.template_id)
    now = utcnow()
    schedule = Schedule(
        shop=shop, name=data.name, cron=data.cron, template_id=data.template_id,
        product_query=data.product_query, max_products=data.max_products, enabled=data.enabled,
        next_run_at=next_run(data.cron, now) if data.enabled else None,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(schedule)
    await session.flush()
    return schedule


async def get_schedule(session: AsyncSession, *, shop: str, schedule_id: str) -> Schedule:
    schedule = (
        await session.execute(
            select(Schedule)
            .where(Schedule.shop == shop, Schedule.id == schedule_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if schedule is None:
        raise NotFound("schedule not found")
    return schedule


async def update_schedule(
    session: AsyncSession, *, shop: str, schedule_id: str, data: ScheduleUpdate
) -> Schedule:
    schedule = await get_schedule(session, shop=shop, schedule_id=schedule_id)
    # An explicit null leaves a field as it is: every column of a schedule has a value.
    for name, value in data.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(schedule, name, value)
    schedule.next_run_at = next_run(schedule.cron, utcnow()) if schedule.enabled else None
    return schedule


async def delete_schedule(session: AsyncSession, *, shop: str, schedule_id: str) -> None:
    await session.delete(await get_schedule(session, shop=shop, schedule_id=schedule_id))


async def list_schedules(session: AsyncSession, *, shop: str) -> Sequence[Schedule]:
    stmt = select(Schedule).where(Schedule.shop == shop).order_by(Schedule.created_at.desc())
    return (await session.execute(stmt)).scalars().all()
