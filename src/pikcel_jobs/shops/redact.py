"""What happens to a shop's data when it leaves: uninstall and shop/redact.

* uninstall: the shop is marked uninstalled and its tokens dropped at once; its active
  jobs are cancelled by a bulk operation (local ones at once, ones running at PikcelAI
  by the worker, upstream first), which resumes if the process dies.
* redact: every row of the shop (jobs and their attempts, events, rollups, batches,
  templates, bulk operations, any table with a `shop` column, then the shop row) is
  deleted in short batches, and its stored images removed. The request is recorded on
  the shop row first, so a redaction cut short by a restart is resumed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import pikcel_jobs.db.models  # noqa: F401  (every table in Base.metadata)
from pikcel_jobs.bulk.models import BulkOperation
from pikcel_jobs.bulk.schemas import BulkRequest
from pikcel_jobs.bulk.service import start_operation
from pikcel_jobs.db.base import Base, utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.states import ACTIVE
from pikcel_jobs.shops.connect import drop_tokens
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.shops.service import ensure_shop
from pikcel_jobs.storage.store import ImageStore

log = logging.getLogger("pikcel_jobs.shops")
BATCH = 2000
REDACT_KEY = "redactRequestedAt"


async def uninstall(session: AsyncSession, *, shop: str) -> BulkOperation | None:
    """Mark the shop uninstalled, drop its tokens and start cancelling its active jobs;
    the returned bulk operation (None: nothing to cancel) is run after the commit."""
    row = await session.get(Shop, shop, with_for_update=True)
    if row is not None:
        row.uninstalled_at = utcnow()
        drop_tokens(row)
    request = BulkRequest(action="cancel", filter={"status": sorted(s.value for s in ACTIVE)})
    op = await start_operation(session, shop=shop, request=request)
    return op if op.status == "running" else None


async def request_redaction(session: AsyncSession, *, shop: str) -> None:
    """Record that the shop's data must go (the shop row is deleted last)."""
    row = await ensure_shop(session, shop)
    row.uninstalled_at = row.uninstalled_at or utcnow()
    drop_tokens(row)
    row.settings = {**(row.settings or {}), REDACT_KEY: utcnow().isoformat()}


async def _delete_in_batches(
    sessions: async_sessionmaker[AsyncSession], table: Table, shop: str
) -> int:
    key_columns = list(table.primary_key.columns)
    if len(key_columns) != 1:  # composite key (rollups): one statement
        async with unit_of_work(sessions) as session:
            result = await session.execute(delete(table).where(table.c.shop == shop))
        return int(getattr(result, "rowcount", 0) or 0)
    key = key_columns[0]
    total = 0
    while True:
        async with unit_of_work(sessions) as session:
            ids = list(
                (await session.execute(select(key).where(table.c.shop == shop).limit(BATCH)))
                .scalars()
                .all()
            )
            if ids:
                await session.execute(delete(table).where(key.in_(ids)))
        total += len(ids)
        if len(ids) < BATCH:
            return total


async def redact_shop(
    sessions: async_sessionmaker[AsyncSession], store: ImageStore, shop: str
) -> dict[str, int]:
    """Delete every row and stored image of `shop`; safe to run again."""
    counts: dict[str, int] = {"jobs": 0}
    while True:  # jobs with their attempts, a batch per transaction
        async with unit_of_work(sessions) as session:
            ids = list(
                (await session.execute(select(Job.id).where(Job.shop == shop).limit(BATCH)))
                .scalars()
                .all()
            )
            if ids:
                await session.execute(delete(JobAttempt).where(JobAttempt.job_id.in_(ids)))
                await session.execute(delete(Job).where(Job.id.in_(ids)))
        counts["jobs"] += len(ids)
        if len(ids) < BATCH:
            break
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in ("jobs", "shops") or "shop" not in table.c:
            continue
        counts[table.name] = await _delete_in_batches(sessions, table, shop)
    await store.delete_prefix(shop)
    async with unit_of_work(sessions) as session:
        await session.execute(delete(Shop).where(Shop.domain == shop))
    log.info("shop %s redacted: %s", shop, counts)
    return counts


async def pending_redactions(
    sessions: async_sessionmaker[AsyncSession], *, older_than: datetime | None = None
) -> list[str]:
    """Shops whose redaction was requested and has not finished (the row still exists)."""
    cutoff = older_than or utcnow() - timedelta(seconds=60)
    async with unit_of_work(sessions, read_only=True) as session:
        rows = (
            await session.execute(
                select(Shop.domain, Shop.settings).where(Shop.uninstalled_at.is_not(None))
            )
        ).all()
    out = []
    for domain, settings in rows:
        requested: Any = (settings or {}).get(REDACT_KEY)
        try:
            if requested and datetime.fromisoformat(str(requested)) < cutoff:
                out.append(domain)
        except ValueError:
            out.append(domain)
    return out
