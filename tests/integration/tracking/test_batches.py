"""Batches: counters and status stay exact while several workers finish jobs at once."""

from __future__ import annotations

from pikcel_jobs.config import Settings
from pikcel_sim.pikcel.config import FaultConfig, SimConfig
from tests.support.stack import finished, running_stack


async def test_batch_counters_are_exact_under_concurrent_workers(
    app_settings: Settings, shop: str
) -> None:
    sim = SimConfig(seed=21, time_scale=0.01, faults=FaultConfig(job_failure_rate=0.3))
    async with running_stack(app_settings, sim=sim, workers=3) as stack:
        client = stack.client(shop)
        images = [
            {"inputImageUrl": stack.image_url, "productId": f"gid://shopify/Product/{i}"}
            for i in range(24)
        ]
        response = await client.post(
            "/api/batches",
            json={"toolId": "background-removal", "images": images, "name": "Spring"},
        )
        assert response.status_code == 201, response.text
        batch = response.json()["batch"]
        assert batch["totalJobs"] == 24 and batch["status"] == "pending"
        ids = [j["id"] for j in response.json()["jobs"]]
        jobs = await stack.wait_for(client, ids, finished, within=60)
        counts = {
            s: sum(j["status"] == s for j in jobs) for s in ("completed", "failed", "cancelled")
        }
        done = (await client.get(f"/api/batches/{batch['id']}")).json()["batch"]
        assert (done["completedJobs"], done["failedJobs"], done["cancelledJobs"]) == (
            counts["completed"],
            counts["failed"],
            counts["cancelled"],
        )
        expected = (
            "completed"
            if counts["failed"] == 0
            else ("failed" if counts["completed"] == 0 else "partial")
        )
        assert done["status"] == expected
        listed = (
            await client.get("/api/jobs", params={"batchId": batch["id"], "limit": 100})
        ).json()
        assert listed["total"] == 24

        # A retried failure moves the counters back, and forward again when it finishes.
        failed = [j["id"] for j in jobs if j["status"] == "failed"]
        if failed:
            await stack.set_faults()
            assert (
                await client.post("/api/jobs/retry", json={"jobId": failed[0]})
            ).status_code == 200
            during = (await client.get(f"/api/batches/{batch['id']}")).json()["batch"]
            assert during["failedJobs"] == counts["failed"] - 1 and during["status"] == "processing"
            await stack.wait_for(client, [failed[0]], finished)
            after = (await client.get(f"/api/batches/{batch['id']}")).json()["batch"]
            assert after["completedJobs"] + after["failedJobs"] == 24


async def test_batch_validation_and_scoping(
    app_settings: Settings, shop: str, other_shop: str
) -> None:
    async with running_stack(app_settings) as stack:
        client = stack.client(shop)
        empty = await client.post("/api/batches", json={"toolId": "upscale-2x", "images": []})
        assert empty.status_code == 400 and "images" in empty.json()["error"]["message"]
        ok = await client.post(
            "/api/batches",
            json={"toolId": "upscale-2x", "images": [{"inputImageUrl": stack.image_url}]},
        )
        batch_id = ok.json()["batch"]["id"]
        assert (await stack.client(other_shop).get(f"/api/batches/{batch_id}")).status_code == 404
