"""Jobs run end to end against the PikcelAI simulator over loopback: with webhooks,
polling only, and duplicated/reordered webhooks; retry, cancel, sync; webhook security."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pikcel_jobs.config import Settings
from pikcel_sim.pikcel.config import FaultConfig, SimConfig
from tests.support.stack import finished, running_stack


async def assert_one_remote_job_per_key(stack: Any) -> None:
    counters = await stack.sim_get("/_sim/counters")
    per_key = counters["idempotency"]
    assert per_key and all(entry["jobs"] == 1 for entry in per_key.values())


async def assert_outputs_served(client: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        if job["status"] != "completed":
            continue
        for url in (job["outputImageUrl"], job["thumbnailUrl"]):
            response = await client.get(url)
            assert response.status_code == 200 and response.headers["content-type"].startswith(
                "image/"
            )


@pytest.mark.parametrize(
    ("label", "sim"),
    [
        ("webhooks", SimConfig(seed=1, time_scale=0.01)),
        ("polling only", SimConfig(seed=2, time_scale=0.01, send_webhooks=False)),
        ("duplicated and reordered webhooks", SimConfig(
            seed=3, time_scale=0.01,
            faults=FaultConfig(webhook_duplicate_rate=0.5, webhook_reorder_rate=0.5,
                               webhook_reorder_hold_seconds=0.3, job_failure_rate=0.2),
        )),
    ],
)  # fmt: skip
async def test_jobs_reach_the_simulators_final_state(
    app_settings: Settings, shop: str, label: str, sim: SimConfig
) -> None:
    async with running_stack(app_settings, sim=sim) as stack:
        client = stack.client(shop)
        ids = await stack.create_jobs(client, 8)
        jobs = await stack.wait_for(client, ids, finished)
        for job in jobs:
            remote = await stack.sim_get(f"/_sim/jobs/{job['pikcelJobId']}")
            assert job["status"] == remote["status"], label
            assert job["creditsUsed"] == remote["credits_used"]
            if job["status"] == "completed":
                assert (
                    job["progress"] == 100
                    and job["completedAt"]
                    and job["processingTimeMs"] is not None
                )
            else:
                assert job["errorMessage"]
        await assert_outputs_served(client, jobs)
        await assert_one_remote_job_per_key(stack)
        ledger = await stack.sim_get("/_sim/ledger")
        spent = sum(job["creditsUsed"] for job in jobs)
        charged = sum(user["credits_spent"] for user in ledger.values())
        assert spent == charged  # credits counted once, whatever the webhooks did
        stats = (await client.get("/api/jobs/stats")).json()["stats"]
        assert stats["creditsUsed"] == spent and stats["total"] == 8


async def test_retry_keeps_history_and_records_the_new_remote_job(
    app_settings: Settings, shop: str
) -> None:
    sim = SimConfig(seed=4, time_scale=0.01, faults=FaultConfig(job_failure_rate=1.0))
    async with running_stack(app_settings, sim=sim) as stack:
        client = stack.client(shop)
        [job_id] = await stack.create_jobs(client, 1)
        [failed] = await stack.wait_for(client, [job_id], finished)
        assert failed["status"] == "failed" and failed["errorMessage"]
        await stack.sim().patch("/_sim/config", json={"faults": FaultConfig().model_dump()})
        await stack.set_faults()
        first, second = await _two_clicks(client, job_id)
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        [done] = await stack.wait_for(client, [job_id], finished)
        assert done["status"] == "completed" and done["attempt"] == 2
        detail = (await client.get(f"/api/jobs/{job_id}")).json()["job"]
        remote_ids = [a["pikcelJobId"] for a in detail["attempts"]]
        assert len(remote_ids) == 2 and None not in remote_ids and remote_ids[0] != remote_ids[1]
        assert detail["pikcelJobId"] == remote_ids[1]
        assert [a["status"] for a in detail["attempts"]] == ["failed", "completed"]


async def _two_clicks(
    client: httpx.AsyncClient, job_id: str
) -> tuple[httpx.Response, httpx.Response]:
    import asyncio

    a, b = await asyncio.gather(
        client.post("/api/jobs/retry", json={"jobId": job_id}),
        client.post("/api/jobs/retry", data={"jobId": job_id}),  # the form body works too
    )
    return a, b


async def test_retry_refuses_active_and_completed_jobs(app_settings: Settings, shop: str) -> None:
    async with running_stack(app_settings, sim=SimConfig(seed=5, time_scale=0.01)) as stack:
        client = stack.client(shop)
        [job_id] = await stack.create_jobs(client, 1)
        [done] = await stack.wait_for(client, [job_id], finished)
        response = await client.post("/api/jobs/retry", json={"jobId": job_id})
        assert done["status"] == "completed" and response.status_code == 409
        assert "only failed or cancelled" in response.json()["error"]["message"]
        missing = await client.post("/api/jobs/retry", json={})
        assert missing.status_code == 400 and "jobId" in missing.json()["error"]["message"]


async def test_cancel_in_each_state(app_settings: Settings, shop: str) -> None:
    sim = SimConfig(seed=6, time_scale=0.01, auto_progress=False)
    async with running_stack(app_settings, sim=sim) as stack:
        client = stack.client(shop)
        [scheduled] = await stack.create_jobs(client, 1, scheduledFor="2099-01-01T00:00:00Z")
        [running] = await stack.create_jobs(client, 1)
        [dispatched] = await stack.wait_for(
            client, [running], lambda j: j["pikcelJobId"] is not None
        )
        await stack.sim().post(f"/_sim/jobs/{dispatched['pikcelJobId']}/start")
        await stack.wait_for(client, [running], lambda j: j["status"] == "processing")

        local = await client.post("/api/jobs/cancel", json={"jobId": scheduled})
        assert local.status_code == 200 and local.json()["job"]["status"] == "cancelled"
        upstream = await client.post("/api/jobs/cancel", json={"jobId": running})
        assert upstream.status_code == 200 and upstream.json()["job"]["status"] == "cancelled"
        remote = await stack.sim_get(f"/_sim/jobs/{dispatched['pikcelJobId']}")
        assert remote["status"] == "cancelled"
        again = await client.post("/api/jobs/cancel", json={"jobId": running})
        assert again.status_code == 409 and "already finished" in again.json()["error"]["message"]


async def test_sync_asks_pikcel_now(app_settings: Settings, shop: str) -> None:
    sim = SimConfig(seed=8, time_scale=0.01, auto_progress=False, send_webhooks=False)
    async with running_stack(
        app_settings, sim=sim, poll_initial_seconds=30.0, poll_max_seconds=60.0
    ) as stack:
        client = stack.client(shop)
        [job_id] = await stack.create_jobs(client, 1)
        [job] = await stack.wait_for(client, [job_id], lambda j: j["pikcelJobId"] is not None)
        await stack.sim().post(f"/_sim/jobs/{job['pikcelJobId']}/start")
        synced = (await client.post("/api/jobs/sync", json={"jobId": job_id})).json()["job"]
        assert synced["status"] == "processing"  # without waiting for the 30 s poll


async def test_webhook_route_rejects_and_dedupes(app_settings: Settings, shop: str) -> None:
    sim = SimConfig(seed=9, time_scale=0.01, auto_progress=False)
    async with running_stack(app_settings, sim=sim) as stack:
        client = stack.client(shop)
        [job_id] = await stack.create_jobs(client, 1)
        [job] = await stack.wait_for(client, [job_id], lambda j: j["pikcelJobId"] is not None)
        body = json.dumps({"event": "job.started", "job_id": job["pikcelJobId"], "job": {
            "id": job["pikcelJobId"], "tool_id": "background-removal", "status": "processing",
            "progress": 40}, "timestamp": "2026-12-01T00:00:00Z"}).encode()  # fmt: skip
        async with httpx.AsyncClient(base_url=stack.api_url) as raw:
            unsigned = await raw.post("/webhooks/pikcel", content=body)
            forged = await raw.post(
                "/webhooks/pikcel", content=body, headers={"X-Pikcel-Signature": "00" * 32}
            )
            headers = sign(stack.settings, body, "msg_1")
            first = await raw.post("/webhooks/pikcel", content=body, headers=headers)
            again = await raw.post("/webhooks/pikcel", content=body, headers=headers)
            unknown_body = body.replace(job["pikcelJobId"].encode(), b"job_unknown")
            unknown = await raw.post("/webhooks/pikcel", content=unknown_body,
                                     headers=sign(stack.settings, unknown_body, "msg_2"))  # fmt: skip
            big = await raw.post("/webhooks/pikcel", content=b"x" * (1024 * 1024 + 1))
        assert unsigned.status_code == 401 and forged.status_code == 401
        assert first.status_code == 200 and again.json().get("duplicate") is True
        assert unknown.status_code == 404 and big.status_code == 413
        now = (await client.get(f"/api/jobs/{job_id}")).json()["job"]
        assert now["status"] == "processing" and now["progress"] == 40
        assert [e["kind"] for e in now["events"]].count("progress") == 1


def sign(settings: Settings, body: bytes, msg_id: str) -> dict[str, str]:
    import base64
    import hashlib
    import hmac
    import time

    from pikcel_jobs.pikcel.webhooks import signing_key

    key = signing_key(settings.pikcel_webhook_secret.get_secret_value())
    ts = str(int(time.time()))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
