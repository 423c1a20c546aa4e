"""Inserting many finished or waiting jobs at once (demo history, tests, benchmarks),
with their first attempt and the rollups kept in step: a few statements per chunk."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.analytics import rollups
from pikcel_jobs.db.base import new_id
from pikcel_jobs.jobs.models import Job, JobAttempt

DEFAULTS: dict[str, Any] = {
    "priority": "normal", "parameters": {}, "meta": {}, "credits_used": 0, "progress": 0,
    "pushed_to_shopify": False, "attempt": 1, "dispatch_errors": 0,
    "poll_interval_seconds": 0.0, "version": 0, "push_status": "none",
}  # fmt: skip


async def insert_jobs(session: AsyncSession, jobs: list[dict[str, Any]]) -> list[str]:
    """`jobs`: dicts of Job attributes; each needs shop, tool_id, status, input_image_url
    and created_at. Returns the new ids."""
    rows, attempts = [], []
    # (shop, day, tool, status) -> [jobs, credits, time sum, timed jobs]
    sums: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for given in jobs:
        row = {**DEFAULTS, "id": new_id(), **given}
        row.setdefault("updated_at", row["created_at"])
        row.setdefault("idempotency_key", f"{row['id']}:1")
        rows.append(row)
        attempts.append({
            "id": new_id(), "job_id": row["id"], "number": 1,
            "idempotency_key": row["idempotency_key"], "pikcel_job_id": row.get("pikcel_job_id"),
            "status": row["status"], "error_message": row.get("error_message"),
            "credits_used": row["credits_used"], "created_at": row["created_at"],
            "dispatched_at": row.get("started_at"), "finished_at": row.get("completed_at"),
        })  # fmt: skip
        total = sums[(row["shop"], row["created_at"].date(), row["tool_id"], row["status"])]
        total[0] += 1
        total[1] += row["credits_used"]
        if row.get("processing_time_ms") is not None:
            total[2] += row["processing_time_ms"]
            total[3] += 1
    await session.execute(insert(Job), rows)
    await session.execute(insert(JobAttempt), attempts)
    await rollups.add_rows(
        session,
        [
            {"shop": shop, "day": day, "tool_id": tool, "status": status, "jobs": n,
             "credits": credits, "time_ms_sum": ms, "time_ms_count": timed}
            for (shop, day, tool, status), (n, credits, ms, timed) in sums.items()
        ],
    )  # fmt: skip
    return [row["id"] for row in rows]
