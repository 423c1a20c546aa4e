"""Our job routes over real HTTP: envelope, validation, scoping, filters, paging, stats."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

Client = Callable[[str], httpx.AsyncClient]
IMAGE = "https://cdn.example.com/mug.png"


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    payload = {"toolId": "background-removal", "inputImageUrl": IMAGE, **body}
    response = await client.post("/api/jobs", json=payload)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["success"] is True
    return dict(data["job"])


async def test_create_answers_201_with_camel_case_job(client_for: Client, shop: str) -> None:
    job = await create(
        client_for(shop),
        productId="gid://shopify/Product/7",
        metadata={"sku": "MUG-1"},
        priority="high",
    )
    for field in (
        "id", "shop", "pikcelJobId", "toolId", "toolName", "status", "priority", "inputImageUrl",
        "outputImageUrl", "thumbnailUrl", "parameters", "errorMessage", "creditsUsed",
        "processingTimeMs", "progress", "productId", "productTitle", "variantId", "imageId",
        "metadata", "pushedToShopify", "pushedAt", "startedAt", "completedAt", "createdAt",
        "updatedAt", "attempt", "scheduledFor", "batchId", "pushStatus",
    ):  # fmt: skip
        assert field in job, field
    assert job["shop"] == shop and job["status"] == "pending" and job["priority"] == "high"
    assert job["metadata"] == {"sku": "MUG-1"} and job["progress"] == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"inputImageUrl": IMAGE}, "toolId"),
        ({"toolId": "background-removal"}, "inputImageUrl"),
        ({"toolId": "x", "inputImageUrl": "not a url"}, "inputImageUrl"),
        ({"toolId": "x", "inputImageUrl": IMAGE, "priority": "asap"}, "priority"),
        ({"toolId": "x", "inputImageUrl": IMAGE, "colour": "red"}, "colour"),
        ({"toolId": "x", "inputImageUrl": IMAGE, "parameters": "[]"}, "parameters"),
        ({"toolId": "x", "inputImageUrl": IMAGE, "scheduledFor": "tomorrow"}, "scheduledFor"),
        ({"toolId": "x", "inputImageUrl": IMAGE, "productId": "../../etc"}, "productId"),
    ],
)
async def test_create_rejects_bad_input_with_a_clear_400(
    client_for: Client, shop: str, body: dict[str, object], needle: str
) -> None:
    response = await client_for(shop).post("/api/jobs", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["success"] is False and error["error"]["code"] == "INVALID_INPUT"
    assert needle in error["error"]["message"]


async def test_malformed_json_is_400(client_for: Client, shop: str) -> None:
    response = await client_for(shop).post(
        "/api/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["success"] is False


async def test_unauthenticated_is_401_with_retry_header(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        response = await anonymous.get("/api/jobs")
        forged = await anonymous.get("/api/jobs", headers={"cookie": "pikcel_session=forged.value"})
    assert response.status_code == 401 and forged.status_code == 401
    assert response.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert response.json()["error"]["code"] == "INVALID_SESSION"


async def test_other_shops_job_is_404(client_for: Client, shop: str, other_shop: str) -> None:
    job = await create(client_for(shop))
    response = await client_for(other_shop).get(f"/api/jobs/{job['id']}")
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "job not found"},
    }
    listing = (await client_for(other_shop).get("/api/jobs")).json()
    assert listing["jobs"] == [] and listing["total"] == 0


async def test_detail_has_attempts_and_events(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    job = await create(client)
    detail = (await client.get(f"/api/jobs/{job['id']}")).json()["job"]
    assert [a["number"] for a in detail["attempts"]] == [1]
    assert [e["kind"] for e in detail["events"]] == ["created"]


async def test_list_filters_paging_and_stats(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    for i in range(7):
        await create(client, toolId="upscale-2x" if i % 2 else "background-removal",
                     metadata={"campaign": "spring" if i < 3 else "summer"})  # fmt: skip
    first = (await client.get("/api/jobs", params={"limit": 3})).json()
    assert first["total"] == 7 and len(first["jobs"]) == 3 and first["nextCursor"]
    second = (
        await client.get("/api/jobs", params={"limit": 3, "cursor": first["nextCursor"]})
    ).json()
    assert not {j["id"] for j in first["jobs"]} & {j["id"] for j in second["jobs"]}
    upscale = (await client.get("/api/jobs", params={"toolId": "upscale-2x"})).json()
    assert upscale["total"] == 3 and all(j["toolId"] == "upscale-2x" for j in upscale["jobs"])
    spring = (await client.get("/api/jobs", params={"meta.campaign": "spring"})).json()
    assert spring["total"] == 3
    both = (await client.get("/api/jobs?status=pending&status=failed")).json()
    assert both["total"] == 7
    stats = (await client.get("/api/jobs/stats", params={"toolId": "upscale-2x"})).json()["stats"]
    assert stats["total"] == 3 and stats["pending"] == 3 and stats["successRate"] is None


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=NaN", "limit=-5", "offset=-1", "status=exploded",
     "from=yesterday", "cursor=%%%", "page=2", "from=2026-02-01&to=2026-01-01"],
)  # fmt: skip
async def test_list_rejects_bad_query(client_for: Client, shop: str, query: str) -> None:
    response = await client_for(shop).get(f"/api/jobs?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]


async def test_openapi_and_health(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        spec = (await client.get("/openapi.json")).json()
        health = (await client.get("/healthz")).json()
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert "/api/jobs" in spec["paths"]
    assert health["database"]["ok"] is True and health["database"]["migrated"] is True
    assert ready.status_code == 200
    assert metrics.status_code == 200 and "text/plain" in metrics.headers["content-type"]


async def test_metrics_name_jobs_queue_and_connections(client_for: Client, shop: str, api_url: str) -> None:
    await create(client_for(shop))
    async with httpx.AsyncClient(base_url=api_url) as client:
        text = (await client.get("/metrics")).text
    assert 'pikcel_jobs{status="pending"}' in text
    assert "pikcel_queue_lag_seconds" in text and "pikcel_queue_due" in text
    assert "pikcel_sse_connections" in text
    pending = next(line for line in text.splitlines() if line.startswith('pikcel_jobs{status="pending"}'))
    assert float(pending.split()[-1]) >= 1
