"""What a worker task needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
from pikcel_jobs.db.group_commit import GroupCommit
from pikcel_jobs.net.fetch import FetchPolicy
from pikcel_jobs.pikcel.client import PikcelClient
from pikcel_jobs.storage.store import ImageStore


@dataclass
class WorkerContext:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    pikcel: PikcelClient
    store: ImageStore
    http: httpx.AsyncClient
    owner: str
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    # Reaches Shopify (or the simulator, with SHOPIFY_CONNECT_URL); None: plain httpx.
    shopify_http: httpx.AsyncClient | None = None
    # Writers shared by this process's handlers (db.group_commit), by name.
    group_commits: dict[str, GroupCommit[Any, Any]] = field(default_factory=dict)
    # Rows as the claim leased them, for their handler (worker/claim.py: claim_due).
    claimed: dict[str, Any] = field(default_factory=dict)

    @property
    def webhook_url(self) -> str:
        return f"{self.settings.app_url}/webhooks/pikcel"
