"""Group commit: many small writes from concurrent callers in one transaction.

Callers (webhook requests, a worker's polls) each wait until their own write is
committed, so nothing acknowledged is lost. Committing each alone costs a transaction,
its round trips and (on SQLite) a hand-over of the write lock; here one task per
process takes every item that arrived while the previous transaction was being
written and applies them together. An item alone is applied at once: no added wait.

`apply(session, items)` returns one result per item, in order; an exception in that
list fails that caller only, and must stand for an item it left untouched. If the
whole batch fails (a database error, a conflict with another process), each item is
applied again in a transaction of its own, so one bad item never fails the others and
each caller gets its own answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.engine import unit_of_work

log = logging.getLogger("pikcel_jobs.db")
T = TypeVar("T")
R = TypeVar("R")
MAX_BATCH = 256  # items per transaction: bounds the IN lists and the set of locked rows


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        apply: Callable[[AsyncSession, list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        name: str,
        max_batch: int = MAX_BATCH,
        linger: float = 0.0,
    ) -> None:
        self.sessions = sessions
        self.apply = apply
        self.name = name
        self.max_batch = max_batch
        # Seconds to let more items come once one has: a transaction costs about 1.5 ms
        # of CPU whatever its size, so writers whose callers can wait (polls) linger;
        # webhooks do not.
        self.linger = linger
        self.queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue one item and wait until it is committed (or refused)."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=self.name)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((item, future))
        # Shielded: a caller that goes away (a client hanging up) does not cancel the
        # write others share; its result is simply not read.
        return await asyncio.shield(future)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        while not self.queue.empty():
            _, future = self.queue.get_nowait()
            _settle(future, RuntimeError("the service is shutting down"))

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            try:
                if self.linger:
                    await asyncio.sleep(self.linger)
                while len(batch) < self.max_batch and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                await self._commit(batch)
            except asyncio.CancelledError:  # stopped: the batch in hand was not written
                for _, future in batch:
                    _settle(future, RuntimeError("the service is shutting down"))
                raise
            except Exception as exc:  # never leave a caller waiting
                for _, future in batch:
                    _settle(future, exc)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        if len(batch) > 1:
            try:
                async with unit_of_work(self.sessions) as session:
                    results = await self.apply(session, [item for item, _ in batch])
            except Exception:
                log.info("%s: a batch of %d failed; applying each alone", self.name, len(batch))
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)
                return
        for item, future in batch:
            try:
                async with unit_of_work(self.sessions) as session:
                    (result,) = await self.apply(session, [item])
            except Exception as exc:
                result = exc
            _settle(future, result)


def _settle(future: asyncio.Future[R], result: R | Exception) -> None:
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
        # Mark it retrieved: a caller that went away must not cause a warning.
        future.exception()
    else:
        future.set_result(result)
