"""The long-lived parts one process holds: database engine, PikcelAI client, image
store, outbound HTTP client. Web app, worker and demo build it the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import create_engine, create_sessionmaker
from pikcel_jobs.net.fetch import FetchPolicy
from pikcel_jobs.pikcel.client import PikcelClient
from pikcel_jobs.pikcel.limiter import RateLimiter
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
    # Called when new due work exists, so an in-process worker claims it at once.
    nudges: list[Callable[[], None]] = field(default_factory=list)
    commit_listeners: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.database_url)
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
        )

        @sa_event.listens_for(runtime.sessions.class_.sync_session_class, "after_commit")
        def _committed(_session: object) -> None:
            # Wake in-process listeners (event hub, worker); other processes are woken
            # by PostgreSQL NOTIFY or find the change on their next short poll.
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
        )  # fmt: skip

    def nudge(self) -> None:
        for nudge in self.nudges:
            nudge()

    async def close(self) -> None:
        await self.pikcel.aclose()
        await self.http.aclose()
        await self.engine.dispose()
