"""The export's one query: the next batch of the filtered jobs, newest first, keyset on
(created_at, id) so each batch is an index range scan however deep the export goes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.repository import filtered
from pikcel_jobs.jobs.schemas import JobFilter

# Only what the file shows: no ORM objects, no columns the merchant does not see.
EXPORT_COLUMNS = (
    Job.id,
    Job.created_at,
    Job.completed_at,
    Job.status,
    Job.priority,
    Job.tool_id,
    Job.tool_name,
    Job.product_id,
    Job.product_title,
    Job.credits_used,
    Job.processing_time_ms,
    Job.error_message,
    Job.output_image_url,
    Job.pikcel_job_id,
    Job.attempt,
    Job.batch_id,
    # The stored JSON text as it is: no parse-and-dump per row.
    cast(Job.meta, Text).label("metadata"),
)


async def next_batch(
    session: AsyncSession,
    *,
    shop: str,
    job_filter: JobFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Any]:
    stmt = (
        filtered(shop, job_filter)
        .with_only_columns(*EXPORT_COLUMNS)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < after)
    # Core execution: plain rows, without the ORM's per-row loading machinery.
    connection = await session.connection()
    return (await connection.execute(stmt)).all()
