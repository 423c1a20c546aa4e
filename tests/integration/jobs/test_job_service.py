"""The job service on SQLite and PostgreSQL: create, transitions, scoping, filters,
keyset pagination and statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.core.errors import InvalidInput, NotFound
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import JobCreate, JobFilter
from pikcel_jobs.jobs.states import IllegalTransition, JobStatus, change_status

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def make_job(sessions: Sessions, shop: str, *, at: datetime = T0, **fields: object) -> Job:
    data = {"toolId": "background-removal", "inputImageUrl": "https://cdn.example.com/a.png"}
    data.update(fields)
    async with unit_of_work(sessions) as session:
        job = await service.create_job(
            session, shop=shop, data=JobCreate.model_validate(data),
            input_image_url=str(data["inputImageUrl"]), tool_name="Background removal", now=at,
        )  # fmt: skip
    return job


async def set_status(
    sessions: Sessions, shop: str, job_id: str, *path: JobStatus, **fields: object
) -> None:
    async with unit_of_work(sessions) as session:
        job = await service.get_job(session, shop=shop, job_id=job_id)
        for target in path:
            await change_status(session, job, target, fields=fields if target == path[-1] else None)


async def test_create_records_job_attempt_and_event(sessions: Sessions, shop: str) -> None:
    job = await make_job(sessions, shop, metadata={"sku": "A1"}, priority="high")
    async with unit_of_work(sessions, read_only=True) as session:
        detail = await service.get_job_detail(session, shop=shop, job_id=job.id)
    assert detail.job.status == JobStatus.PENDING
    assert detail.job.meta == {"sku": "A1"} and detail.job.priority == "high"
    assert detail.job.next_attempt_at == T0  # due for dispatch at once
    assert [a.number for a in detail.attempts] == [1]
    assert detail.attempts[0].idempotency_key == detail.job.idempotency_key
    assert [e.kind for e in detail.events] == ["created"]


async def test_scheduled_job_waits(sessions: Sessions, shop: str) -> None:
    later = T0 + timedelta(hours=3)
    job = await make_job(sessions, shop, scheduledFor=later.isoformat())
    assert job.status == JobStatus.SCHEDULED and job.next_attempt_at == later


async def test_another_shops_job_is_not_found(
    sessions: Sessions, shop: str, other_shop: str
) -> None:
    job = await make_job(sessions, shop)
    async with unit_of_work(sessions) as session:
        with pytest.raises(NotFound):
            await service.get_job(session, shop=other_shop, job_id=job.id)
        page = await service.list_jobs(session, shop=other_shop, job_filter=JobFilter())
        stats = await service.job_stats(session, shop=other_shop, job_filter=JobFilter())
    assert page.jobs == [] and page.total == 0 and stats.total == 0


async def test_illegal_transition_changes_nothing(sessions: Sessions, shop: str) -> None:
    job = await make_job(sessions, shop)
    await set_status(sessions, shop, job.id, JobStatus.PROCESSING, JobStatus.COMPLETED)
    with pytest.raises(IllegalTransition):
        await set_status(sessions, shop, job.id, JobStatus.PROCESSING)
    async with unit_of_work(sessions, read_only=True) as session:
        detail = await service.get_job_detail(session, shop=shop, job_id=job.id)
        stats = await service.job_stats(session, shop=shop, job_filter=JobFilter())
    assert detail.job.status == JobStatus.COMPLETED
    assert [e.data.get("to") for e in detail.events] == ["pending", "processing", "completed"]
    assert stats.completed == 1 and stats.processing == 0 and stats.total == 1


async def test_event_ids_increase(sessions: Sessions, shop: str) -> None:
    job = await make_job(sessions, shop)
    await set_status(sessions, shop, job.id, JobStatus.PROCESSING, JobStatus.FAILED)
    async with unit_of_work(sessions, read_only=True) as session:
        rows = (
            await session.execute(
                select(JobEvent.id, JobEvent.status)
                .where(JobEvent.job_id == job.id)
                .order_by(JobEvent.id)
            )
        ).all()
    # Read in id order, the events replay the transitions in the order they happened:
    # the hub and SSE resume rely on that.
    assert [status for _, status in rows] == ["pending", "processing", "failed"]
    assert len({event_id for event_id, _ in rows}) == 3


@pytest.fixture
async def catalogue(sessions: Sessions, shop: str) -> dict[str, Job]:
    """Six jobs with distinct tools, products, metadata, dates and states."""
    jobs = {
        "a": await make_job(sessions, shop, at=T0, productId="gid://shopify/Product/1",
                            productTitle="Red Mug", metadata={"campaign": "spring"}),
        "b": await make_job(sessions, shop, at=T0 + timedelta(days=1), toolId="upscale-2x",
                            productId="gid://shopify/Product/2", productTitle="Blue Vase"),
        "c": await make_job(sessions, shop, at=T0 + timedelta(days=2),
                            productId="gid://shopify/Product/1", metadata={"campaign": "summer"}),
        "d": await make_job(sessions, shop, at=T0 + timedelta(days=3), toolId="upscale-2x"),
        "e": await make_job(sessions, shop, at=T0 + timedelta(days=4), productTitle="Green Lamp"),
        "f": await make_job(sessions, shop, at=T0 + timedelta(days=5), toolId="auto-enhance"),
    }  # fmt: skip
    await set_status(sessions, shop, jobs["a"].id, JobStatus.PROCESSING, JobStatus.COMPLETED,
                     credits_used=2, processing_time_ms=1000)  # fmt: skip
    await set_status(sessions, shop, jobs["b"].id, JobStatus.PROCESSING, JobStatus.COMPLETED,
                     credits_used=3, processing_time_ms=3000)  # fmt: skip
    await set_status(sessions, shop, jobs["c"].id, JobStatus.FAILED, error_message="bad image")
    await set_status(sessions, shop, jobs["d"].id, JobStatus.CANCELLED)
    await set_status(sessions, shop, jobs["e"].id, JobStatus.PROCESSING)
    return jobs


async def ids_for(sessions: Sessions, shop: str, **filters: object) -> set[str]:
    async with unit_of_work(sessions, read_only=True) as session:
        page = await service.list_jobs(
            session, shop=shop, job_filter=JobFilter.model_validate(filters), limit=100
        )
    assert page.total == len(page.jobs)
    return {job.id for job in page.jobs}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, "abcdef"),
        ({"status": ["completed"]}, "ab"),
        ({"status": ["failed", "cancelled"]}, "cd"),
        ({"toolId": "upscale-2x"}, "bd"),
        ({"productId": "gid://shopify/Product/1"}, "ac"),
        (
            {
                "from": (T0 + timedelta(days=1)).isoformat(),
                "to": (T0 + timedelta(days=3)).isoformat(),
            },
            "bcd",
        ),
        ({"from": "2026-11-03T00:00:00Z"}, "cdef"),
        ({"to": "2026-11-03T00:00:00Z"}, "ab"),
        ({"meta": {"campaign": "spring"}}, "a"),
        ({"q": "vase"}, "b"),
        ({"q": "LAMP"}, "e"),
        ({"q": "enhance"}, "f"),
        ({"q": "100%_"}, ""),
        ({"status": ["completed"], "toolId": "background-removal"}, "a"),
    ],
)
async def test_filters(sessions: Sessions, shop: str, catalogue: dict[str, Job],
                       filters: dict[str, object], expected: str) -> None:  # fmt: skip
    assert await ids_for(sessions, shop, **filters) == {catalogue[k].id for k in expected}


async def test_filter_by_batch_and_exact_id(
    sessions: Sessions, shop: str, catalogue: dict[str, Job]
) -> None:
    assert await ids_for(sessions, shop, q=catalogue["c"].id) == {catalogue["c"].id}


async def test_stats_in_one_pass(sessions: Sessions, shop: str, catalogue: dict[str, Job]) -> None:
    async with unit_of_work(sessions, read_only=True) as session:
        stats = await service.job_stats(session, shop=shop, job_filter=JobFilter())
        by_tool = await service.job_stats(
            session, shop=shop, job_filter=JobFilter(tool_id="upscale-2x")
        )
        by_product = await service.job_stats(
            session, shop=shop, job_filter=JobFilter(product_id="gid://shopify/Product/1")
        )
    assert (stats.total, stats.pending, stats.processing, stats.completed, stats.failed, stats.cancelled) == (
        6, 1, 1, 2, 1, 1,
    )  # fmt: skip
    assert stats.credits_used == 5
    assert stats.average_processing_time_ms == 2000.0
    assert stats.success_rate == pytest.approx(2 / 3, abs=1e-4)
    assert (by_tool.total, by_tool.completed, by_tool.cancelled, by_tool.credits_used) == (
        2,
        1,
        1,
        3,
    )
    assert (by_product.total, by_product.completed, by_product.failed) == (2, 1, 1)
    assert by_product.success_rate == 0.5


async def test_rollups_agree_with_rows(
    sessions: Sessions, shop: str, catalogue: dict[str, Job]
) -> None:
    """The rollup-served totals equal a direct count over the rows."""
    async with unit_of_work(sessions, read_only=True) as session:
        stats = await service.job_stats(session, shop=shop, job_filter=JobFilter())
        rows = dict(
            (
                await session.execute(
                    select(Job.status, func.count()).where(Job.shop == shop).group_by(Job.status)
                )
            ).all()
        )
    assert {k: v for k, v in stats.by_status.items() if v} == rows


async def test_keyset_pages_are_stable_while_rows_arrive(sessions: Sessions, shop: str) -> None:
    for i in range(25):
        await make_job(sessions, shop, at=T0 + timedelta(minutes=i // 2))  # ties on created_at
    seen: list[str] = []
    cursor = None
    while True:
        async with unit_of_work(sessions, read_only=True) as session:
            page = await service.list_jobs(
                session, shop=shop, job_filter=JobFilter(), cursor=cursor, limit=7
            )
        seen.extend(job.id for job in page.jobs)
        # Newer jobs arriving between pages must not shift or repeat what follows.
        await make_job(sessions, shop, at=T0 + timedelta(days=30))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 25 and len(set(seen)) == 25
    async with unit_of_work(sessions, read_only=True) as session:
        rows = (await session.execute(
            select(Job.id).where(Job.shop == shop, Job.created_at < T0 + timedelta(days=1))
            .order_by(Job.created_at.desc(), Job.id.desc())
        )).scalars().all()  # fmt: skip
    assert seen == list(rows)


async def test_page_size_is_capped_and_offset_is_a_fallback(sessions: Sessions, shop: str) -> None:
    for i in range(5):
        await make_job(sessions, shop, at=T0 + timedelta(seconds=i))
    async with unit_of_work(sessions, read_only=True) as session:
        capped = await service.list_jobs(session, shop=shop, job_filter=JobFilter(), limit=10_000)
        offset = await service.list_jobs(
            session, shop=shop, job_filter=JobFilter(), limit=2, offset=3
        )
        with pytest.raises(InvalidInput):
            await service.list_jobs(
                session, shop=shop, job_filter=JobFilter(), cursor="not-a-cursor!"
            )
    assert len(capped.jobs) == 5
    assert [j.created_at for j in offset.jobs] == [T0 + timedelta(seconds=1), T0]


async def test_counts_the_rollups_cannot_answer_are_capped(
    sessions: Sessions, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pikcel_jobs.jobs import repository

    for _ in range(5):
        await make_job(sessions, shop, productTitle="Linen shirt")
    monkeypatch.setattr(repository, "COUNT_CAP", 3)
    async with unit_of_work(sessions, read_only=True) as session:
        searched = await service.list_jobs(session, shop=shop, job_filter=JobFilter(q="linen"), limit=2)
        exact = await service.list_jobs(session, shop=shop, job_filter=JobFilter(), limit=2)
    assert (searched.total, searched.total_exact) == (3, False) and len(searched.jobs) == 2
    assert (exact.total, exact.total_exact) == (5, True)
