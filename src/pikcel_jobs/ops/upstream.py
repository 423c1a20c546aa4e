"""Is PikcelAI or Shopify failing right now? Read from the outbox, so every process
agrees: recent `waiting` events (work backing off after upstream errors) with no
success since mean the service is degraded; jobs wait, they do not fail."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.base import utcnow
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent

WINDOW_EVENTS = 2000  # the newest events looked at (primary-key scan, cheap)
WINDOW_SECONDS = 300
CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Service:
    ok: bool
    reason: str | None = None


@dataclass(frozen=True)
class UpstreamHealth:
    pikcel: Service
    shopify: Service

    @property
    def degraded(self) -> bool:
        return not (self.pikcel.ok and self.shopify.ok)

    def as_json(self) -> dict[str, Any]:
        return {"pikcel": asdict(self.pikcel), "shopify": asdict(self.shopify)}


_cache: dict[int, tuple[float, UpstreamHealth]] = {}


async def upstream_health(sessions: async_sessionmaker[AsyncSession]) -> UpstreamHealth:
    key = id(sessions)
    cached = _cache.get(key)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    async with unit_of_work(sessions, read_only=True) as session:
        top = (await session.execute(select(func.max(JobEvent.id)))).scalar() or 0
        rows = (
            await session.execute(
                select(JobEvent.kind, JobEvent.data, JobEvent.created_at)
                .where(
                    JobEvent.id > top - WINDOW_EVENTS,
                    JobEvent.kind.in_(["waiting", "dispatched", "push"]),
                )
                .order_by(JobEvent.id.desc())
            )
        ).all()
    since = utcnow().timestamp() - WINDOW_SECONDS
    health = UpstreamHealth(
        pikcel=_judge(rows, since, failing=lambda k, d: k == "waiting" and not d.get("push"),
                      working=lambda k, d: k == "dispatched"),
        shopify=_judge(rows, since, failing=lambda k, d: k == "waiting" and bool(d.get("push")),
                       working=lambda k, d: k == "push" and d.get("to") == "pushed"),
    )  # fmt: skip
    _cache[key] = (time.monotonic(), health)
    return health


def _judge(rows: Any, since: float, *, failing: Any, working: Any) -> Service:
    """Degraded when the newest relevant event in the window is a failure."""
    for kind, data, created in rows:  # newest first
        if created.timestamp() < since:
            break
        data = data or {}
        if working(kind, data):
            return Service(True)
        if failing(kind, data):
            return Service(False, str(data.get("reason") or "requests are failing"))
    return Service(True)
