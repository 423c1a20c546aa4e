"""The long-lived parts one process holds: database engine, PikcelAI client, image
store, outbound HTTP client. Web app, worker and demo build it the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

import pikcel_jobs.db.models  # noqa: F401  (every table registered, whatever the process)
from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import create_engine, create_sessionmaker
from pikcel_jobs.net.fetch import FetchPolicy
from pikcel_jobs.pikcel.client import PikcelClient
from pikcel_jobs.pikcel.limiter import RateLimiter
from pikcel_jobs.shopify.transport import make_async_client
from pikcel_jobs.storage.store import LocalImageStore
from pikcel_jobs.worker.context import WorkerContext


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    pikcel: PikcelClient
    store: LocalImageStore
    http: httpx.AsyncClient
    shopify_http: httpx.AsyncClient
    # Called when new due work exists, so an in-process worker claims it at once.
    nudges: list[Callable[[], None]] = field(default_factory=list)
    commit_listeners: list[Callable[[], None]] = field(default_factory=list)
    background: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def create(cls, settings: Settings, *, pre_ping: bool = True) -> Runtime:
        """`pre_ping`: test each pooled PostgreSQL connection before use (a round trip),
        so a request after a database restart does not fail once."""
        engine = create_engine(settings.database_url, pool_pre_ping=pre_ping)
        limiter = RateLimiter(settings.upstream_rps, concurrency=settings.upstream_concurrency)
        runtime = cls(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            pikcel=PikcelClient(
                settings.pikcel_api_url, settings.pikcel_api_key.get_secret_value(), limiter=limiter
            ),
            store=LocalImageStore(settings.storage_dir),
            http=httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=20)),
            shopify_http=make_async_client(settings.shopify_connect_url),
        )

        @sa_event.listens_for(runtime.sessions.class_.sync_session_class, "after_commit")
        def _committed(session: Session) -> None:
            # Wake in-process listeners (event hub, worker); other processes are woken
            # by PostgreSQL NOTIFY or find the change on their next short poll. Reads
            # (the hub's own included) wake nobody, or the hub would wake itself forever.
            if not session.info.get("read_only"):
                runtime.on_commit()

        return runtime

    def on_commit(self) -> None:
        for listener in self.commit_listeners:
            listener()

    @property
    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy(allow_private=self.settings.allow_private_urls)

    def worker_context(self, owner: str) -> WorkerContext:
        return WorkerContext(
            settings=self.settings, sessions=self.sessions, pikcel=self.pikcel, store=self.store,
            http=self.http, owner=owner, fetch_policy=self.fetch_policy,
            shopify_http=self.shopify_http,
        )  # fmt: skip

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run `work` in the background of this process; it ends with the runtime.
        Such work must be resumable (bulk operations are), as a process may die."""
        task = asyncio.create_task(self._guarded(work, name), name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            logging.getLogger("pikcel_jobs").exception("background work %s failed", name)

    def nudge(self) -> None:
        for nudge in self.nudges:
            nudge()

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.pikcel.aclose()
        await self.http.aclose()
        await self.shopify_http.aclose()
        await self.engine.dispose()
