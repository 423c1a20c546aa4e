"""The batches pages over real HTTP on SQLite and PostgreSQL: list with counters and
progress bars, detail with counters, status, progress and links to the batch's jobs.
(Kept beside the templates page tests: both are page modules of this area.)"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.batches import service as batches
from pikcel_jobs.batches.schemas import BatchCreate
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.states import JobStatus, change_status

Sessions = async_sessionmaker[AsyncSession]
Client = Callable[[str], httpx.AsyncClient]


async def make_batch(
    sessions: Sessions, shop: str, *, name: str | None, images: int
) -> tuple[str, list[str]]:
    data = BatchCreate.model_validate({
        "name": name, "toolId": "background-removal",
        "images": [{"inputImageUrl": f"https://cdn.example.com/{i}.png"} for i in range(images)],
    })  # fmt: skip
    async with unit_of_work(sessions) as session:
        batch, jobs = await batches.create_batch(session, shop=shop, data=data)
    return batch.id, [j.id for j in jobs]


async def finish(sessions: Sessions, shop: str, job_ids: list[str], *path: JobStatus) -> None:
    from pikcel_jobs.jobs import service as jobs

    async with unit_of_work(sessions) as session:
        for job_id in job_ids:
            job = await jobs.get_job(session, shop=shop, job_id=job_id)
            for target in path:
                await change_status(session, job, target)


async def test_list_and_detail(
    client_for: Client, sessions: Sessions, shop: str, other_shop: str
) -> None:
    client = client_for(shop)
    empty = await client.get("/app/batches")
    assert empty.status_code == 200 and "No batches yet" in empty.text

    batch_id, job_ids = await make_batch(sessions, shop, name="Spring <catalogue>", images=8)
    await finish(sessions, shop, job_ids[:4], JobStatus.PROCESSING, JobStatus.COMPLETED)
    await finish(sessions, shop, job_ids[4:5], JobStatus.FAILED)
    await finish(sessions, shop, job_ids[5:6], JobStatus.CANCELLED)
    other_id, _ = await make_batch(sessions, other_shop, name="Not yours", images=1)

    listing = await client.get("/app/batches")
    assert listing.status_code == 200
    html = listing.text
    assert "Spring &lt;catalogue&gt;" in html and "Not yours" not in html
    row = re.search(rf'<tr data-batch-id="{batch_id}".*?</tr>', html, re.S)
    assert row, "the batch has a row"
    cells = [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r'<td class="num">(.*?)</td>', row.group(0))
    ]
    assert cells == ["8", "4", "1", "1", "2"]  # jobs, completed, failed, cancelled, in progress
    assert 'value="75"' in row.group(0) and "6 of 8 jobs finished" in row.group(0)
    assert f'href="/app/batches/{batch_id}"' in row.group(0)

    detail = await client.get(f"/app/batches/{batch_id}")
    assert detail.status_code == 200
    page = detail.text
    assert 'data-batch-status="processing"' in page
    assert 'value="75"' in page and "6 of 8 jobs finished; 2 still in progress" in page
    assert f'href="/app/jobs?batchId={batch_id}"' in page
    assert f'href="/app/jobs?batchId={batch_id}&amp;status=failed"' in page
    assert page.count("data-job-id=") == 8  # its latest jobs, in the shared job table

    assert (await client.get(f"/app/batches/{other_id}")).status_code == 404
    assert (await client.get("/app/batches/not-a-batch")).status_code == 404


async def test_finished_batch_shows_its_final_status(
    client_for: Client, sessions: Sessions, shop: str
) -> None:
    batch_id, job_ids = await make_batch(sessions, shop, name=None, images=3)
    await finish(sessions, shop, job_ids, JobStatus.PROCESSING, JobStatus.COMPLETED)
    detail = (await client_for(shop).get(f"/app/batches/{batch_id}")).text
    assert 'data-batch-status="completed"' in detail and 'value="100"' in detail
    assert f"Batch {batch_id[:8]}" in detail  # unnamed batches get a readable title
    assert "still in progress" not in detail
