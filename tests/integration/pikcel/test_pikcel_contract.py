"""The client against the simulator over real HTTP: every endpoint and every error shape."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pikcel_support import KEY_A, KEY_B, Origin, SimHandle, fast_client, png, red_square_on_blue
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import Mount

from pikcel_jobs.pikcel import (
    BulkJob,
    Job,
    PikcelAuthError,
    PikcelClient,
    PikcelInsufficientCredits,
    PikcelNotFound,
    PikcelValidationError,
)
from pikcel_sim.pikcel import SimConfig, create_app
from pikcel_sim.serve import serve_in_thread

TOOL_IDS = {"background-removal", "upscale-2x", "white-background", "auto-enhance",
            "drop-shadow", "convert-webp"}


def assert_error_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert set(body) == {"success", "error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


# -- tools ------------------------------------------------------------------------------------

async def test_list_tools_has_the_stable_catalogue(client: PikcelClient, sim: SimHandle) -> None:
    tools = await client.list_tools()
    assert {t.id for t in tools} == TOOL_IDS
    removal = next(t for t in tools if t.id == "background-removal")
    assert removal.credits_required >= 1 and removal.is_active
    assert removal.name and removal.description and removal.category
    assert removal.created_at is not None and removal.default_parameters is not None
    with sim.api() as raw:
        body = raw.get("/api/ai-models").json()
    assert body["success"] is True and body["count"] == len(body["data"]) == 6
    assert set(body["data"][0]) >= {"id", "name", "description", "category", "credits_required",
                                    "base_price", "is_active", "default_parameters",
                                    "created_at", "updated_at"}


async def test_list_tools_is_cached_and_concurrent_callers_share_one_request(
    sim: SimHandle,
) -> None:
    sim.faults(latency_ms=100)  # keep the first request in flight while the others arrive
    async with fast_client(sim.url) as one, fast_client(sim.url) as two:
        one.invalidate_tools()  # the cache is process-wide: forget earlier tests' lists
        results = await asyncio.gather(*(c.list_tools() for c in [one, two] * 10))
        assert all({t.id for t in r} == TOOL_IDS for r in results)
        assert sim.counters()["requests"]["GET /api/ai-models"] == 1
        await one.list_tools()  # from the cache
        assert sim.counters()["requests"]["GET /api/ai-models"] == 1
        await one.list_tools(refresh=True)
        assert sim.counters()["requests"]["GET /api/ai-models"] == 2
        assert (await two.get_tool("upscale-2x")) is not None
        assert (await two.get_tool("nope")) is None
        assert sim.counters()["requests"]["GET /api/ai-models"] == 2


async def test_inactive_tool_is_listed_inactive_and_refused(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    sim.configure(inactive_tools=["drop-shadow"])
    tools = await client.list_tools(refresh=True)
    assert next(t for t in tools if t.id == "drop-shadow").is_active is False
    with pytest.raises(PikcelValidationError) as info:
        await client.dispatch("drop-shadow", origin.add_image("x.png", red_square_on_blue()))
    assert info.value.code == "TOOL_NOT_FOUND" and info.value.status == 400
    assert not info.value.retryable


# -- dispatch, get, list, cancel ---------------------------------------------------------------

async def test_dispatch_runs_to_completion_and_charges_once(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    url = origin.add_image("product-1.png", red_square_on_blue())
    job = await client.dispatch(
        "background-removal", url, parameters={"tolerance": 30}, priority="high",
        metadata={"product_id": "gid://shopify/Product/1"}, idempotency_key="job-1",
    )
    assert isinstance(job, Job)
    assert job.id.startswith("job_") and len(job.id) == 4 + 24
    assert job.status == "pending" and job.priority == "high"
    assert job.input_image_url == url and job.tool_id == "background-removal"
    assert job.parameters is not None and job.parameters["tolerance"] == 30
    assert job.metadata == {"product_id": "gid://shopify/Product/1"}
    assert job.credits_used == 0 and job.output_image_url is None
    await sim.wait_job(job.id, "completed")
    done = await client.get_job(job.id)
    assert done.status == "completed" and done.progress == 100 and done.is_terminal
    assert done.credits_used == 1 and done.processing_time_ms is not None
    assert done.started_at is not None and done.completed_at is not None
    assert done.created_at is not None and done.started_at >= done.created_at
    assert done.output_image_url and done.output_image_url.startswith(sim.url + "/files/")
    assert done.thumbnail_url
    async with httpx.AsyncClient() as http:
        output = await http.get(done.output_image_url)
    assert output.status_code == 200 and output.headers["content-type"] == "image/png"
    profile = await client.get_profile()
    assert profile.credits_balance == 999 and profile.total_jobs_processed == 1
    await asyncio.sleep(0.05)
    assert (await client.get_profile()).credits_balance == 999  # charged once only
    assert sim.ledger()["shop-a"]["credits_spent"] == 1


async def test_get_job_of_another_user_or_unknown_is_404(
    client: PikcelClient, client_b: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    job = await client.dispatch("convert-webp", origin.add_image("p2.png", red_square_on_blue()))
    with pytest.raises(PikcelNotFound) as info:
        await client_b.get_job(job.id)
    assert info.value.status == 404 and info.value.code == "JOB_NOT_FOUND"
    assert not info.value.retryable
    with pytest.raises(PikcelNotFound):
        await client.get_job("job_000000000000000000000000")
    with sim.api() as raw:
        assert_error_envelope(raw.get("/api/jobs/job_nope"), 404, "JOB_NOT_FOUND")
    assert sim.counters()["requests"]["GET /api/jobs/{id}"] == 3  # 404s are not retried


async def test_list_jobs_filters_pages_and_is_scoped_per_user(
    client: PikcelClient, client_b: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    sim.configure(auto_progress=False)
    url = origin.add_image("p3.png", red_square_on_blue())
    jobs = [await client.dispatch(tool, url)
            for tool in ["upscale-2x", "convert-webp", "convert-webp", "auto-enhance"]]
    sim.force(jobs[1].id, "complete")
    sim.force(jobs[3].id, "fail", error_message="nope")
    await client_b.dispatch("convert-webp", url)

    page = await client.list_jobs()
    assert page.total == 4 and page.count == 4 and not page.has_more
    assert [j.id for j in page.data] == [j.id for j in reversed(jobs)]  # newest first
    first = await client.list_jobs(limit=3)
    assert first.count == 3 and first.total == 4 and first.has_more
    rest = await client.list_jobs(limit=3, offset=3)
    assert rest.count == 1 and not rest.has_more and rest.data[0].id == jobs[0].id
    assert {j.id for j in (await client.list_jobs(tool_id="convert-webp")).data} == {
        jobs[1].id, jobs[2].id}
    assert [j.id for j in (await client.list_jobs(status="completed")).data] == [jobs[1].id]
    both = await client.list_jobs(status=["completed", "failed"])
    assert {j.id for j in both.data} == {jobs[1].id, jobs[3].id}
    now = datetime.now(UTC)
    assert (await client.list_jobs(from_date=now - timedelta(minutes=1))).total == 4
    assert (await client.list_jobs(from_date=now + timedelta(minutes=1))).total == 0
    assert (await client.list_jobs(to_date=now - timedelta(minutes=1))).total == 0
    assert (await client.list_jobs(to_date=now.date())).total == 4
    assert (await client_b.list_jobs()).total == 1

    with sim.api() as raw:
        body = raw.get("/api/jobs", params={"limit": 2}).json()
        assert set(body) == {"success", "data", "count", "total", "has_more"}
        assert_error_envelope(raw.get("/api/jobs", params={"status": "done"}), 422,
                              "VALIDATION_ERROR")
        assert_error_envelope(raw.get("/api/jobs", params={"limit": 0}), 422,
                              "VALIDATION_ERROR")
        assert_error_envelope(raw.get("/api/jobs", params={"from_date": "yesterday"}), 422,
                              "VALIDATION_ERROR")


async def test_cancel_pending_then_terminal_job_unchanged(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    sim.configure(auto_progress=False)
    url = origin.add_image("p4.png", red_square_on_blue())
    pending = await client.dispatch("upscale-2x", url)
    cancelled = await client.cancel_job(pending.id)
    assert cancelled.status == "cancelled" and cancelled.credits_used == 0
    again = await client.cancel_job(pending.id)
    assert again.status == "cancelled"

    finished = await client.dispatch("convert-webp", url)
    sim.force(finished.id, "complete")
    unchanged = await client.cancel_job(finished.id)
    assert unchanged.status == "completed" and unchanged.output_image_url

    processing = await client.dispatch("auto-enhance", url)
    sim.force(processing.id, "start")
    assert (await client.cancel_job(processing.id)).status == "cancelled"
    ledger = sim.ledger()["shop-a"]
    assert ledger["credits_spent"] == 1 and ledger["jobs_cancelled"] == 2
    assert ledger["credits_reserved"] == 0


async def test_cancelled_job_is_never_completed_by_the_scheduler(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    sim.configure(time_scale=0.02)
    job = await client.dispatch("auto-enhance", origin.add_image("p5.png", red_square_on_blue()))
    await client.cancel_job(job.id)
    await asyncio.sleep(0.2)
    assert (await client.get_job(job.id)).status == "cancelled"
    assert sim.ledger()["shop-a"]["credits_spent"] == 0


# -- profile, credits ----------------------------------------------------------------------

async def test_profile_shape(client: PikcelClient, sim: SimHandle) -> None:
    profile = await client.get_profile()
    assert profile.id.startswith("usr_") and profile.email == "shop-a@pikcel.test"
    assert profile.credits_balance == 1000
    assert profile.subscription is not None and profile.subscription.status == "active"
    assert profile.subscription.credits_included == 1000
    assert profile.subscription.renewal_date is not None
    with sim.api() as raw:
        data = raw.get("/api/profiles/me").json()["data"]
    assert set(data) == {"id", "email", "full_name", "credits_balance", "subscription",
                         "total_jobs_processed", "created_at", "updated_at"}
    assert set(data["subscription"]) == {"plan", "status", "credits_included", "renewal_date"}


async def test_insufficient_credits_is_402_and_failures_are_free(
    sim: SimHandle, origin: Origin,
) -> None:
    sim.reset(credits={"shop-a": 2}, auto_progress=False)
    url = origin.add_image("p6.png", red_square_on_blue())
    async with fast_client(sim.url) as client:
        first = await client.dispatch("upscale-2x", url)  # holds its 2 credits
        with pytest.raises(PikcelInsufficientCredits) as info:
            await client.dispatch("upscale-2x", url)
        exc = info.value
        assert exc.status == 402 and exc.code == "INSUFFICIENT_CREDITS" and not exc.retryable
        assert "credits" in str(exc).lower() and exc.details["required"] == 2
        sim.force(first.id, "fail")  # a failure is not charged and frees the credits
        assert (await client.get_profile()).credits_balance == 2
        job = await client.dispatch("upscale-2x", url)
        sim.force(job.id, "complete")
        assert (await client.get_profile()).credits_balance == 0
        with pytest.raises(PikcelInsufficientCredits):
            await client.dispatch("convert-webp", url)
    assert sim.counters()["statuses"]["402"] == 2
    assert sim.ledger()["shop-a"]["credits_spent"] == 2


async def test_two_keys_two_balances_and_open_mode(sim: SimHandle, origin: Origin) -> None:
    sim.reset(api_keys={}, default_credits=5)
    url = origin.add_image("p7.png", red_square_on_blue())
    async with fast_client(sim.url, "any-key-1") as one, fast_client(sim.url, "key-2") as two:
        job = await one.dispatch("upscale-2x", url)
        await sim.wait_job(job.id, "completed")
        assert (await one.get_profile()).credits_balance == 3
        assert (await two.get_profile()).credits_balance == 5
        assert (await one.get_profile()).id != (await two.get_profile()).id
        assert (await two.list_jobs()).total == 0
    with sim.api(key=None) as raw:
        assert_error_envelope(raw.get("/api/profiles/me"), 401, "UNAUTHORIZED")


# -- auth and validation errors ---------------------------------------------------------------

async def test_wrong_or_missing_key_is_401(sim: SimHandle) -> None:
    async with fast_client(sim.url, "sk_wrong") as client:
        with pytest.raises(PikcelAuthError) as info:
            await client.get_profile()
    assert info.value.status == 401 and not info.value.retryable
    assert "API key" in str(info.value)
    with sim.api(key=None) as raw:
        assert_error_envelope(raw.get("/api/ai-models"), 401, "UNAUTHORIZED")
        assert_error_envelope(raw.get("/api/jobs", headers={"Authorization": "Basic x"}), 401,
                              "UNAUTHORIZED")
    with sim.api(key="sk_wrong") as raw:
        assert_error_envelope(raw.get("/api/jobs"), 401, "INVALID_API_KEY")
    assert sim.counters()["requests"]["GET /api/profiles/me"] == 1  # never retried


async def test_validation_errors_use_the_envelope(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    url = origin.add_image("p8.png", red_square_on_blue())
    with pytest.raises(PikcelValidationError) as info:
        await client.dispatch("no-such-tool", url)
    assert info.value.code == "TOOL_NOT_FOUND" and info.value.status == 400
    with pytest.raises(PikcelValidationError) as info:
        await client.dispatch("upscale-2x", url, parameters={"scale": 9})
    assert info.value.code == "INVALID_PARAMETERS" and "scale" in info.value.message
    with pytest.raises(PikcelValidationError) as info:
        await client.dispatch("upscale-2x", url, priority="asap")
    assert info.value.status == 422 and info.value.code == "VALIDATION_ERROR"
    assert "priority" in info.value.message
    with pytest.raises(PikcelValidationError) as info:
        await client.dispatch("upscale-2x", "file:///etc/passwd")
    assert "input_image_url" in info.value.message
    with pytest.raises(PikcelValidationError) as info:
        await client.dispatch("upscale-2x", url, template_id="tpl_nope")
    assert info.value.code == "TEMPLATE_NOT_FOUND"
    with sim.api() as raw:
        err = assert_error_envelope(raw.post("/api/jobs/dispatch", json={}), 422,
                                    "VALIDATION_ERROR")
        assert "tool_id" in err["message"] and isinstance(err["details"], list)
        assert_error_envelope(
            raw.post("/api/jobs/dispatch", content=b'{"tool_id": ',
                     headers={"Content-Type": "application/json"}),
            400, "INVALID_JSON")
        assert_error_envelope(raw.get("/api/nothing-here"), 404, "NOT_FOUND")
        assert_error_envelope(raw.delete("/api/ai-models"), 405, "METHOD_NOT_ALLOWED")
    assert sim.counters()["jobs_created"] == 0


# -- idempotency ------------------------------------------------------------------------------

async def test_same_idempotency_key_returns_the_same_job(
    client: PikcelClient, client_b: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    url = origin.add_image("p9.png", red_square_on_blue())
    first = await client.dispatch("convert-webp", url, idempotency_key="order-42")
    second = await client.dispatch("convert-webp", url, idempotency_key="order-42")
    assert first.id == second.id
    other_user = await client_b.dispatch("convert-webp", url, idempotency_key="order-42")
    assert other_user.id != first.id  # keys are per user
    with sim.api() as raw:
        body = {"tool_id": "convert-webp", "input_image_url": url}
        replay = raw.post("/api/jobs/dispatch", json=body, headers={"Idempotency-Key": "order-42"})
        assert replay.status_code == 201 and replay.json()["data"]["id"] == first.id
        assert replay.headers["idempotent-replayed"] == "true"
        changed = raw.post("/api/jobs/dispatch", json={**body, "tool_id": "upscale-2x"},
                           headers={"Idempotency-Key": "order-42"})
        assert_error_envelope(changed, 422, "IDEMPOTENCY_KEY_REUSED")
    counters = sim.counters()
    assert counters["idempotency"]["order-42"] == {"requests": 5, "jobs": 2}
    assert counters["jobs_created"] == 2


async def test_dispatch_without_a_key_still_sends_one(client: PikcelClient, sim: SimHandle,
                                                      origin: Origin) -> None:
    url = origin.add_image("p10.png", red_square_on_blue())
    await client.dispatch("convert-webp", url)
    await client.dispatch("convert-webp", url)
    keys = sim.counters()["idempotency"]
    assert len(keys) == 2 and all(v == {"requests": 1, "jobs": 1} for v in keys.values())


# -- upload, templates, bulk ----------------------------------------------------------------

async def test_upload_then_process_the_uploaded_file(client: PikcelClient, sim: SimHandle) -> None:
    data = png(red_square_on_blue((40, 30)))
    upload = await client.upload(data, "shoe photo.png", "image/png", folder="products")
    assert upload.size == len(data) and upload.mime_type == "image/png"
    assert upload.path and "products" in upload.path and upload.uploaded_at is not None
    assert upload.url.startswith(sim.url + "/files/")
    async with httpx.AsyncClient() as http:
        assert (await http.get(upload.url)).content == data
    job = await client.dispatch("upscale-2x", upload.url)
    done = await sim.wait_job(job.id, "completed")
    async with httpx.AsyncClient() as http:
        out = Image.open(io.BytesIO((await http.get(done["output_image_url"])).content))
    assert out.size == (80, 60)
    with pytest.raises(PikcelValidationError) as info:
        await client.upload(b"%PDF-1.4", "doc.pdf", "application/pdf")
    assert info.value.code == "INVALID_FILE_TYPE"
    with sim.api() as raw:
        assert_error_envelope(raw.post("/api/upload", data={"folder": "x"}), 422,
                              "VALIDATION_ERROR")


async def test_templates_filter_search_and_page(client: PikcelClient) -> None:
    everything = await client.list_templates()
    assert len(everything) >= 5 and all(t.id.startswith("tpl_") for t in everything)
    assert {t.tool_id for t in everything} <= TOOL_IDS
    editing = await client.list_templates(category="editing")
    assert editing and all(t.category == "editing" for t in editing)
    found = await client.list_templates(search="MARKETPLACE")
    assert [t.id for t in found] == ["tpl_marketplace_white"]
    assert len(await client.list_templates(limit=2)) == 2
    assert [t.id for t in await client.list_templates(limit=1, offset=1)] == [everything[1].id]


async def test_template_parameters_apply(client: PikcelClient, sim: SimHandle,
                                         origin: Origin) -> None:
    url = origin.add_image("p11.png", red_square_on_blue())
    job = await client.dispatch("white-background", url, template_id="tpl_marketplace_white",
                                parameters={"size": 300})
    assert job.parameters is not None
    assert job.parameters["padding"] == 5 and job.parameters["size"] == 300
    done = await sim.wait_job(job.id, "completed")
    async with httpx.AsyncClient() as http:
        out = Image.open(io.BytesIO((await http.get(done["output_image_url"])).content))
    assert out.size == (300, 300)


async def test_bulk_dispatch(client: PikcelClient, sim: SimHandle, origin: Origin) -> None:
    urls = [origin.add_image(f"bulk-{n}.png", red_square_on_blue()) for n in range(3)]
    bulk = await client.bulk_dispatch(
        "convert-webp", [urls[0], {"url": urls[1], "metadata": {"n": 1}}, urls[2]],
        priority="low", idempotency_key="bulk-1",
    )
    assert isinstance(bulk, BulkJob) and bulk.id.startswith("bulk_")
    assert bulk.total_images == 3 and len(bulk.jobs) == 3
    assert bulk.completed == 0 and bulk.failed == 0 and bulk.status == "pending"
    assert bulk.jobs[1].metadata == {"n": 1}
    assert bulk.created_at is not None and bulk.updated_at is not None
    again = await client.bulk_dispatch("convert-webp", urls, idempotency_key="bulk-1")
    assert again.id == bulk.id and sim.counters()["jobs_created"] == 3
    for job in bulk.jobs:
        await sim.wait_job(job.id, "completed")
    assert (await client.get_profile()).credits_balance == 997
    with sim.api() as raw:
        assert_error_envelope(
            raw.post("/api/enterprise/bulk/dispatch",
                     json={"tool_id": "convert-webp", "input_images": []}),
            422, "VALIDATION_ERROR")


async def test_bulk_dispatch_needs_credits_for_every_image(sim: SimHandle,
                                                          origin: Origin) -> None:
    sim.reset(credits={"shop-a": 2})
    url = origin.add_image("bulk-c.png", red_square_on_blue())
    async with fast_client(sim.url) as client:
        with pytest.raises(PikcelInsufficientCredits):
            await client.bulk_dispatch("convert-webp", [url, url, url])
        assert sim.counters()["jobs_created"] == 0


async def test_files_404_is_an_envelope(sim: SimHandle) -> None:
    with sim.api() as raw:
        assert_error_envelope(raw.get("/files/outputs/job_x.png"), 404, "FILE_NOT_FOUND")


async def test_both_keys_exist(sim: SimHandle) -> None:
    assert set(sim.ledger()) == {"shop-a", "shop-b"}
    assert KEY_A != KEY_B


async def test_mounted_under_a_prefix_in_another_app(origin: Origin) -> None:
    """The demo can mount the simulator in its own process; the lifespan then never runs."""
    parent = Starlette(routes=[Mount("/pikcel", app=create_app(SimConfig(
        seed=1, time_scale=0.004, api_keys={KEY_A: "shop-a"})))])
    with serve_in_thread(parent) as url:
        async with fast_client(f"{url}/pikcel") as client:
            assert len(await client.list_tools()) == 6
            job = await client.dispatch("upscale-2x", origin.add_image(
                "mounted.png", red_square_on_blue()))
            for _ in range(300):
                done = await client.get_job(job.id)
                if done.is_terminal:
                    break
                await asyncio.sleep(0.01)
            assert done.status == "completed"
            assert done.output_image_url and done.output_image_url.startswith(
                f"{url}/pikcel/files/outputs/")
            async with httpx.AsyncClient() as http:
                assert (await http.get(done.output_image_url)).status_code == 200
                counters = (await http.get(f"{url}/pikcel/_sim/counters")).json()
            assert counters["requests"]["POST /api/jobs/dispatch"] == 1
