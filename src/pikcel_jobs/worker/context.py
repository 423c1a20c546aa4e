"""What a worker task needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
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

    @property
    def webhook_url(self) -> str:
        return f"{self.settings.app_url}/webhooks/pikcel"
