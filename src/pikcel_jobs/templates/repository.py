"""Queries on job templates; every function takes the shop."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.templates.models import JobTemplate

MAX_TEMPLATES = 500


async def get(session: AsyncSession, *, shop: str, template_id: str) -> JobTemplate | None:
    stmt = select(JobTemplate).where(JobTemplate.shop == shop, JobTemplate.id == template_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_by_name(
    session: AsyncSession, *, shop: str, name: str, exclude_id: str | None = None
) -> JobTemplate | None:
    """Case-insensitive: 'White studio' and 'white studio' are the same name to a person."""
    stmt = select(JobTemplate).where(
        JobTemplate.shop == shop, func.lower(JobTemplate.name) == name.lower()
    )
    if exclude_id is not None:
        stmt = stmt.where(JobTemplate.id != exclude_id)
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def list_for_shop(
    session: AsyncSession, *, shop: str, limit: int = MAX_TEMPLATES
) -> Sequence[JobTemplate]:
    stmt = (
        select(JobTemplate)
        .where(JobTemplate.shop == shop)
        .order_by(func.lower(JobTemplate.name), JobTemplate.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def count_for_shop(session: AsyncSession, *, shop: str) -> int:
    stmt = select(func.count()).select_from(JobTemplate).where(JobTemplate.shop == shop)
    return int((await session.execute(stmt)).scalar_one())
