"""Group commit on both databases: concurrent callers share transactions, each gets its
own answer, and one bad item never fails or loses the others."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.db.group_commit import GroupCommit
from pikcel_jobs.webhooks.models import WebhookReceipt

Sessions = async_sessionmaker[AsyncSession]
SOURCE = "group-commit-test"


class Recorder:
    """Writes one receipt per item; items named `refuse-*` are answered with an error
    and left untouched, as the contract asks."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def __call__(self, session: AsyncSession, items: list[str]) -> list[str | Exception]:
        self.batches.append(len(items))
        results: list[str | Exception] = []
        for item in items:
            if item.startswith("refuse-"):
                results.append(ValueError(f"{item} refused"))
                continue
            session.add(WebhookReceipt(source=SOURCE, delivery_id=item))
            results.append(item.upper())
        await session.flush()
        return results


async def stored(sessions: Sessions, ids: list[str]) -> set[str]:
    async with unit_of_work(sessions, read_only=True) as session:
        stmt = select(WebhookReceipt.delivery_id).where(
            WebhookReceipt.source == SOURCE, WebhookReceipt.delivery_id.in_(ids)
        )
        return set((await session.execute(stmt)).scalars())


def names(n: int) -> list[str]:
    tag = secrets.token_hex(4)
    return [f"gc-{tag}-{i}" for i in range(n)]


async def submit_all(
    sessions: Sessions, apply: Recorder, items: list[str]
) -> list[str | BaseException]:
    """Every item submitted at once by its own caller; each caller's answer."""
    writer = GroupCommit(sessions, apply, name="test")
    try:
        return await asyncio.gather(*(writer.submit(i) for i in items), return_exceptions=True)
    finally:
        await writer.stop()


async def test_concurrent_callers_share_transactions(sessions: Sessions) -> None:
    apply = Recorder()
    items = names(60)
    results = await submit_all(sessions, apply, items)
    assert results == [i.upper() for i in items]
    assert await stored(sessions, items) == set(items)
    assert sum(apply.batches) == 60
    # Items queued while a transaction is open share the next one: a few commits, not 60.
    assert len(apply.batches) < 10 and max(apply.batches) > 1


async def test_an_item_the_database_refuses_fails_alone(sessions: Sessions) -> None:
    items = names(12)
    async with unit_of_work(sessions) as session:  # already recorded: a unique violation
        session.add(WebhookReceipt(source=SOURCE, delivery_id=items[5]))
    results = await submit_all(sessions, Recorder(), items)
    assert isinstance(results[5], IntegrityError)
    assert [r for n, r in enumerate(results) if n != 5] == [
        i.upper() for n, i in enumerate(items) if n != 5
    ]
    assert await stored(sessions, items) == set(items)  # the other eleven were committed


async def test_an_error_result_fails_only_its_caller(sessions: Sessions) -> None:
    good = names(8)
    items = [*good[:4], "refuse-" + good[0], *good[4:]]
    apply = Recorder()
    results = await submit_all(sessions, apply, items)
    assert isinstance(results[4], ValueError) and "refused" in str(results[4])
    assert [r for r in results if not isinstance(r, Exception)] == [i.upper() for i in good]
    assert await stored(sessions, good) == set(good)
    assert len(apply.batches) < len(items)  # the refusal did not break the batch up


async def test_a_caller_that_goes_away_does_not_cancel_the_write(sessions: Sessions) -> None:
    items = names(20)
    writer = GroupCommit(sessions, Recorder(), name="test")
    try:
        tasks = [asyncio.create_task(writer.submit(i)) for i in items]
        await asyncio.sleep(0)
        tasks[7].cancel()  # a client hanging up mid-request
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await writer.stop()
    assert isinstance(results[7], asyncio.CancelledError)
    assert await stored(sessions, items) == set(items)


async def test_stop_answers_whoever_still_waits(sessions: Sessions) -> None:
    writer = GroupCommit(sessions, Recorder(), name="test")
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(3)]
    for item, future in zip(names(3), futures, strict=True):  # queued, never taken
        writer.queue.put_nowait((item, future))
    await writer.stop()
    assert all(isinstance(f.exception(), RuntimeError) for f in futures)


async def test_a_lingering_writer_takes_what_comes_meanwhile_in_one_batch(
    sessions: Sessions,
) -> None:
    """Polls linger: items that come within the linger share the first one's
    transaction, even when they arrive one by one."""
    apply = Recorder()
    writer = GroupCommit(sessions, apply, name="test", linger=0.2)
    items = names(5)
    try:
        tasks = []
        for item in items:
            tasks.append(asyncio.create_task(writer.submit(item)))
            await asyncio.sleep(0.01)
        assert await asyncio.gather(*tasks) == [i.upper() for i in items]
    finally:
        await writer.stop()
    assert apply.batches == [5]
    assert await stored(sessions, items) == set(items)


async def test_stopping_while_a_batch_lingers_answers_it_unwritten(sessions: Sessions) -> None:
    writer = GroupCommit(sessions, Recorder(), name="test", linger=5.0)
    items = names(2)
    tasks = [asyncio.create_task(writer.submit(i)) for i in items]
    await asyncio.sleep(0.05)  # taken from the queue, lingering
    await asyncio.wait_for(writer.stop(), 1)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await stored(sessions, items) == set()
