"""Every request fault of the simulator against the client's retry layer and limiter.

The simulator's counters are the witness: what it received, per endpoint and per
idempotency key, and the most requests it saw in any one-second window.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pikcel_support import Origin, SimHandle, fast_client, red_square_on_blue, wait_until

from pikcel_jobs.pikcel import (
    PikcelBadResponse,
    PikcelClient,
    PikcelNetworkError,
    PikcelRateLimited,
    PikcelServerError,
    RateLimiter,
)

DISPATCH = "POST /api/jobs/dispatch"
GET_JOB = "GET /api/jobs/{id}"


def image_url(origin: Origin, name: str) -> str:
    return origin.add_image(name, red_square_on_blue())


# -- 5xx ------------------------------------------------------------------------------------

async def test_5xx_after_commit_on_dispatch_does_not_duplicate(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    sim.faults(force_errors=1, commit_before_error=1.0, error_statuses=[500],
               endpoints=[DISPATCH])
    job = await client.dispatch("convert-webp", image_url(origin, "f1.png"),
                                idempotency_key="job-row-1")
    counters = sim.counters()
    assert counters["faults"] == {"error_after_commit": 1}
    assert counters["statuses"] == {"500": 1, "201": 1}
    assert counters["idempotency"]["job-row-1"] == {"requests": 2, "jobs": 1}
    page = await client.list_jobs()
    assert page.total == 1 and page.data[0].id == job.id


async def test_a_retry_without_a_key_would_duplicate(sim: SimHandle, origin: Origin) -> None:
    """The fault is real: the server committed before failing, so a keyless retry doubles."""
    sim.faults(force_errors=1, commit_before_error=1.0, error_statuses=[500])
    body = {"tool_id": "convert-webp", "input_image_url": image_url(origin, "f2.png")}
    with sim.api() as raw:
        assert raw.post("/api/jobs/dispatch", json=body).status_code == 500
        assert raw.post("/api/jobs/dispatch", json=body).status_code == 201
    assert sim.counters()["jobs_created"] == 2


async def test_random_5xx_never_create_a_second_job_per_key(
    sim: SimHandle, origin: Origin,
) -> None:
    sim.faults(error_rate=0.4, commit_before_error=0.5, error_statuses=[500, 502, 503])
    url = image_url(origin, "f3.png")
    async with fast_client(sim.url, max_attempts=12) as client:
        results = await asyncio.gather(
            *(client.dispatch("convert-webp", url, idempotency_key=f"key-{n}")
              for n in range(30)),
            return_exceptions=True,
        )
    counters = sim.counters()
    assert counters["faults"].get("error_after_commit", 0) > 0  # the hard case did happen
    assert counters["faults"].get("error", 0) > 0
    jobs = [r for r in results if not isinstance(r, BaseException)]
    assert len(jobs) == 30, [r for r in results if isinstance(r, BaseException)]
    for n in range(30):
        seen = counters["idempotency"][f"key-{n}"]
        assert seen["jobs"] == 1, (n, seen)
    assert counters["jobs_created"] == 30 == len({j.id for j in jobs})
    assert sum(v["requests"] for v in counters["idempotency"].values()) > 30  # retries


async def test_500_retried_for_get_but_not_for_upload_while_503_is(
    client: PikcelClient, sim: SimHandle,
) -> None:
    sim.faults(force_errors=1, error_statuses=[500], endpoints=["GET /api/profiles/me"])
    assert (await client.get_profile()).credits_balance == 1000
    assert sim.counters()["requests"]["GET /api/profiles/me"] == 2

    sim.faults(force_errors=1, error_statuses=[500], endpoints=["POST /api/upload"])
    with pytest.raises(PikcelServerError) as info:
        await client.upload(b"\x89PNG fake", "a.png", "image/png")
    assert info.value.status == 500 and info.value.retryable
    assert "temporary" in str(info.value)
    assert sim.counters()["requests"]["POST /api/upload"] == 1

    sim.faults(force_errors=1, error_statuses=[503])
    upload = await client.upload(b"\x89PNG fake", "a.png", "image/png")
    assert upload.size == 9
    assert sim.counters()["requests"]["POST /api/upload"] == 3


async def test_5xx_beyond_the_attempts_surfaces_retryable(sim: SimHandle) -> None:
    sim.faults(error_rate=1.0, error_statuses=[502])
    async with fast_client(sim.url, max_attempts=3) as client:
        with pytest.raises(PikcelServerError) as info:
            await client.get_job("job_x")
    assert info.value.status == 502 and info.value.retryable
    assert client.attempts == 3 and client.retries == 2
    assert sim.counters()["requests"][GET_JOB] == 3


# -- timeouts -------------------------------------------------------------------------------

async def test_timeout_after_commit_then_retry_returns_the_same_job(
    sim: SimHandle, origin: Origin,
) -> None:
    sim.faults(force_timeouts=1, timeout_seconds=5, commit_before_error=1.0,
               endpoints=[DISPATCH])
    async with fast_client(sim.url, timeout=0.3) as client:
        started = time.monotonic()
        job = await client.dispatch("convert-webp", image_url(origin, "f4.png"),
                                    idempotency_key="slow-1")
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    counters = sim.counters()
    assert counters["faults"] == {"timeout_after_commit": 1}
    assert counters["idempotency"]["slow-1"] == {"requests": 2, "jobs": 1}
    assert sim.peek(job.id)["status"] in ("pending", "processing", "completed")


async def test_timeouts_exhausting_attempts_raise_a_retryable_network_error(
    sim: SimHandle,
) -> None:
    sim.faults(force_timeouts=2, timeout_seconds=5)
    async with fast_client(sim.url, timeout=0.2, max_attempts=2) as client:
        with pytest.raises(PikcelNetworkError) as info:
            await client.get_profile()
    exc = info.value
    assert exc.timeout and exc.retryable and exc.code == "TIMEOUT"
    assert "did not answer in time" in str(exc)
    await wait_until(lambda: sim.counters()["statuses"].get("499") == 2, 5,
                     "the simulator to see the client give up twice")


async def test_unreachable_server_is_a_network_error() -> None:
    async with PikcelClient("http://127.0.0.1:9", "k", max_attempts=2, backoff_base=0.01,
                            timeout=1) as client:
        with pytest.raises(PikcelNetworkError) as info:
            await client.get_profile()
    assert info.value.retryable and not info.value.timeout
    assert client.attempts == 2
    assert "could not be reached" in str(info.value)


# -- 429 ------------------------------------------------------------------------------------

async def test_429_burst_carries_retry_after_and_the_client_honours_it(
    client: PikcelClient, sim: SimHandle,
) -> None:
    sim.faults(force_throttles=1, retry_after=1)
    with sim.api() as raw:
        throttled = raw.get("/api/profiles/me")
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
        assert throttled.json()["error"]["code"] == "RATE_LIMITED"
    started = time.monotonic()
    profile = await client.get_profile()  # still inside the burst: waits, then succeeds
    elapsed = time.monotonic() - started
    assert profile.id
    assert 0.75 <= elapsed < 2.0, elapsed
    counters = sim.counters()
    assert counters["statuses"]["429"] == 2 and counters["statuses"]["200"] == 1
    assert counters["requests"]["GET /api/profiles/me"] == 3  # no hammering while throttled


async def test_429_longer_than_the_budget_raises_rate_limited_at_once(sim: SimHandle) -> None:
    sim.faults(force_throttles=1, retry_after=3)
    async with fast_client(sim.url, max_retry_seconds=1.0) as client:
        started = time.monotonic()
        with pytest.raises(PikcelRateLimited) as info:
            await client.list_jobs()
        assert time.monotonic() - started < 0.5
    exc = info.value
    assert exc.retry_after == 3 and exc.retryable and exc.status == 429
    assert "rate limited" in str(exc) and "3 s" in str(exc)


# -- malformed bodies -------------------------------------------------------------------------

async def test_malformed_json_is_a_bad_response_retried_like_a_5xx(
    sim: SimHandle, origin: Origin,
) -> None:
    sim.faults(force_malformed=1)
    async with fast_client(sim.url, max_attempts=1) as once:
        with pytest.raises(PikcelBadResponse) as info:
            await once.get_profile()
    assert info.value.code == "BAD_RESPONSE" and info.value.retryable
    assert info.value.status == 200 and "not valid JSON" in info.value.message

    sim.faults(force_malformed=1, endpoints=[DISPATCH])
    async with fast_client(sim.url) as client:
        job = await client.dispatch("convert-webp", image_url(origin, "f5.png"),
                                    idempotency_key="garbled")
        assert (await client.get_job(job.id)).id == job.id
    counters = sim.counters()
    assert counters["idempotency"]["garbled"] == {"requests": 2, "jobs": 1}
    assert counters["faults"] == {"malformed": 2}


# -- latency, endpoint scoping --------------------------------------------------------------

async def test_latency_and_jitter(client: PikcelClient, sim: SimHandle) -> None:
    sim.faults(latency_ms=150, jitter_ms=50)
    started = time.monotonic()
    await client.get_profile()
    assert 0.15 <= time.monotonic() - started < 1.0


async def test_faults_can_target_one_endpoint(client: PikcelClient, sim: SimHandle,
                                              origin: Origin) -> None:
    sim.faults(error_rate=1.0, error_statuses=[503], endpoints=[DISPATCH],
               commit_before_error=0.0)
    assert (await client.get_profile()).id  # untouched
    async with fast_client(sim.url, max_attempts=2) as short:
        with pytest.raises(PikcelServerError):
            await short.dispatch("convert-webp", image_url(origin, "f6.png"))
    assert sim.counters()["jobs_created"] == 0


# -- the rate cap -----------------------------------------------------------------------------

async def test_shared_limiter_caps_requests_per_second_across_clients(
    sim: SimHandle, origin: Origin,
) -> None:
    job = await _one_job(sim, origin)
    cap, concurrency = 20, 4
    # Without a limiter, 60 concurrent calls put more than `cap` into one second.
    async with fast_client(sim.url) as bare:
        await asyncio.gather(*(bare.get_job(job) for _ in range(60)))
    assert sim.counters()["max_rps"] > cap
    sim.reset_counters()

    limiter = RateLimiter(cap, concurrency=concurrency)
    sim.faults(latency_ms=10, error_rate=0.2, error_statuses=[503])  # retries take tokens too
    async with fast_client(sim.url, limiter=limiter, max_attempts=10) as one, \
            fast_client(sim.url, limiter=limiter, max_attempts=10) as two:
        started = time.monotonic()
        await asyncio.gather(*(c.get_job(job) for c in [one, two] * 20))
        elapsed = time.monotonic() - started
        attempts = one.attempts + two.attempts
    counters = sim.counters()
    assert counters["requests"][GET_JOB] == attempts > 40  # every retry went through it
    assert counters["max_rps"] <= cap, counters["max_rps"]
    assert counters["max_rps"] >= cap * 0.75  # and it really ran near the cap
    assert counters["max_in_flight"] <= concurrency
    assert elapsed >= (attempts - 1) / cap


async def _one_job(sim: SimHandle, origin: Origin) -> str:
    with sim.api() as raw:
        response = raw.post("/api/jobs/dispatch", json={
            "tool_id": "convert-webp", "input_image_url": image_url(origin, "rate.png")})
    return str(response.json()["data"]["id"])


# -- job failures, admin, determinism -----------------------------------------------------

async def test_job_failure_rate_fails_jobs_without_charging(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    sim.faults(job_failure_rate=1.0)
    job = await client.dispatch("upscale-2x", image_url(origin, "f7.png"))
    done = await sim.wait_job(job.id)
    assert done["status"] == "failed" and "injected" in done["error_message"]
    assert done["credits_used"] == 0 and done["output_image_url"] is None
    assert (await client.get_profile()).credits_balance == 1000
    assert sim.ledger()["shop-a"]["jobs_failed"] == 1


async def test_fault_admin_get_put_patch_and_reset(sim: SimHandle) -> None:
    assert sim.admin.get("/_sim/faults").json()["error_rate"] == 0
    put = sim.admin.put("/_sim/faults", json={"latency_ms": 5}).json()
    assert put["latency_ms"] == 5 and put["error_rate"] == 0
    patched = sim.faults(error_rate=0.25)
    assert patched["latency_ms"] == 5 and patched["error_rate"] == 0.25
    bad = sim.admin.patch("/_sim/faults", json={"error_rate": 2})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    unknown = sim.admin.patch("/_sim/faults", json={"nonsense": 1})
    assert unknown.status_code == 422
    sim.reset()
    assert sim.admin.get("/_sim/faults").json()["latency_ms"] == 0
    fixed = sim.admin.post("/_sim/reset", json={"config": {"webhook_concurrency": 9}})
    assert fixed.status_code == 422


async def test_seeded_runs_repeat_exactly(sim: SimHandle, origin: Origin) -> None:
    url = image_url(origin, "f8.png")

    def run(seed: int) -> tuple[list[int], list[str]]:
        sim.reset(seed=seed)
        sim.faults(error_rate=0.5, error_statuses=[500, 502, 503], commit_before_error=0.5)
        with sim.api() as raw:
            statuses = [raw.post("/api/jobs/dispatch",
                                 json={"tool_id": "convert-webp", "input_image_url": url}
                                 ).status_code for _ in range(20)]
        sim.faults(error_rate=0)
        with sim.api() as raw:
            ids = [job["id"] for job in raw.get("/api/jobs", params={"limit": 100}).json()["data"]]
        return statuses, ids

    first, again, other = run(11), run(11), run(12)
    assert first == again
    assert first != other
    assert len(set(first[0])) > 1


async def test_counters_track_statuses_and_in_flight(client: PikcelClient,
                                                     sim: SimHandle) -> None:
    await client.get_profile()
    counters = sim.counters()
    assert counters["requests_total"] == 1 and counters["in_flight"] == 0
    assert counters["max_rps"] == 1 and counters["seed"] == 7
    sim.admin.get("/files/nothing")  # not an /api request: not counted
    assert sim.counters()["requests_total"] == 1
