"""Many jobs at once for tests, through the same bulk insert the demo uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.bulk_insert import insert_jobs


async def seed_jobs(
    sessions: async_sessionmaker[AsyncSession], shop: str, n: int, *, status: str = "failed",
    tool_id: str = "background-removal", start: datetime | None = None, chunk: int = 2000,
) -> list[str]:  # fmt: skip
    start = start or datetime(2026, 11, 1, tzinfo=UTC)
    ids: list[str] = []
    for offset in range(0, n, chunk):
        rows = [
            {"shop": shop, "tool_id": tool_id, "status": status,
             "input_image_url": "https://cdn.example.com/x.png",
             "error_message": "seeded failure" if status == "failed" else None,
             "created_at": start + timedelta(seconds=i)}
            for i in range(offset, min(n, offset + chunk))
        ]  # fmt: skip
        async with unit_of_work(sessions) as session:
            ids += await insert_jobs(session, rows)
    return ids
