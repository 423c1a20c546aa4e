"""Push to Shopify end to end over loopback (our app, the worker, the Shopify and
PikcelAI simulators): connecting by token exchange, products, add, replace, revert,
review, double clicks, Shopify's refusal, bulk push/approve and auto-push."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from push_support import (
    connect,
    ours,
    push_is,
    seed_completed,
    set_shop_settings,
    sim_product,
    wait_job,
)

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.shops.models import Shop
from pikcel_sim.shopify import ShopifySimConfig
from tests.support.stack import Stack, running_stack

PUSHED = push_is("pushed")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(app_settings: Settings) -> AsyncIterator[Stack]:
    shopify = ShopifySimConfig(
        seed=11, products_per_shop=30, media_processing_seconds=0.3, bucket_size=5000.0,
        restore_rate=1000.0, shops=(),
    )  # fmt: skip
    async with running_stack(app_settings, shopify=shopify) as running:
        yield running


async def test_first_session_token_request_connects_and_lists_products(
    stack: Stack, shop: str
) -> None:
    async with unit_of_work(stack.runtime.sessions, read_only=True) as session:
        assert await session.get(Shop, shop) is None
    client = stack.embedded_client(shop)
    first = (await client.get("/api/products")).json()
    assert first["success"] and len(first["products"]) == 24 and first["nextCursor"]
    async with unit_of_work(stack.runtime.sessions, read_only=True) as session:
        row = await session.get(Shop, shop)
        assert row is not None and row.access_token_enc and row.refresh_token_enc
        assert row.access_token_enc.startswith("gAAAA")  # encrypted at rest (Fernet)
    second = (await client.get("/api/products", params={"cursor": first["nextCursor"]})).json()
    assert len(second["products"]) == 6 and second["nextCursor"] is None
    everything = first["products"] + second["products"]
    assert len({p["id"] for p in everything}) == 30
    product = everything[3]
    assert set(product) == {"id", "title", "images"}
    assert set(product["images"][0]) == {"id", "url", "altText"}
    found = await client.get("/api/products", params={"query": f'title:"{product["title"]}"'})
    assert product["id"] in [p["id"] for p in found.json()["products"]]
    none = (await client.get("/api/products", params={"query": "title:zzznothing*"})).json()
    assert none["products"] == [] and none["nextCursor"] is None


async def test_products_need_a_connected_shop_and_a_working_shopify(
    stack: Stack, shop: str, other_shop: str
) -> None:
    # Signed in by cookie (standalone) but never connected: a clear 409.
    answer = await stack.client(other_shop).get("/api/products")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "SHOP_NOT_CONNECTED"
    await connect(stack, shop)
    admin = stack.shopify_admin()
    await admin.put(
        "/_sim/faults", json={"force_status": 500, "force_status_count": 1, "shop": shop}
    )
    try:
        failed = await stack.client(shop).get("/api/products")
    finally:
        await admin.delete("/_sim/faults")
    assert failed.status_code == 502
    assert "Shopify" in failed.json()["error"]["message"]
    # Shopify revoked the token: an embedded request reconnects by itself.
    await admin.post(f"/_sim/shops/{shop}/expire-tokens")
    again = await stack.embedded_client(shop).get("/api/products")
    assert again.status_code == 200, again.text


async def test_push_adds_exactly_one_ready_image(stack: Stack, shop: str) -> None:
    product = (await connect(stack, shop))[0]
    before = await sim_product(stack, shop, product["id"])
    job_id = await seed_completed(stack, shop, product)
    client = stack.client(shop)
    answer = await client.post("/api/jobs/push-to-shopify", json={"jobId": job_id})
    assert answer.status_code == 200, answer.text
    assert answer.json()["job"]["pushStatus"] == "queued"
    job = await wait_job(client, job_id, push_is("pushed", "failed"))
    assert job["pushStatus"] == "pushed", job["pushError"]
    assert job["pushedToShopify"] and job["pushedAt"] and job["pushMode"] == "add"
    after = await sim_product(stack, shop, product["id"])
    mine = ours(after, job_id)
    assert len(after["media"]) == len(before["media"]) + 1
    assert len(mine) == 1 and mine[0]["status"] == "READY"
    assert mine[0]["id"] == job["shopifyMediaId"]
    # The merchant's click again: already there, nothing added.
    again = await client.post("/api/jobs/push-to-shopify", data={"jobId": job_id})
    assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_PUSHED"

    # Revert an add: ours leaves the product, the rest is as before.
    reverted = await client.post("/api/jobs/revert", json={"jobId": job_id})
    assert reverted.status_code == 200 and reverted.json()["job"]["pushStatus"] == "reverting"
    job = await wait_job(client, job_id, push_is("reverted", "pushed"))
    assert job["pushStatus"] == "reverted" and not job["pushedToShopify"]
    final = await sim_product(stack, shop, product["id"])
    assert [m["id"] for m in final["media"]] == [m["id"] for m in before["media"]]


async def test_replace_removes_the_original_only_after_ours_is_ready_and_revert_restores(
    stack: Stack, shop: str
) -> None:
    product = (await connect(stack, shop))[1]
    before = await sim_product(stack, shop, product["id"])
    original = product["images"][0]["id"]
    job_id = await seed_completed(stack, shop, product)
    client = stack.client(shop)
    snapshots: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            snapshots.append(await sim_product(stack, shop, product["id"]))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    answer = await client.post(
        "/api/jobs/push-to-shopify", json={"jobId": job_id, "mode": "replace"}
    )
    assert answer.status_code == 200, answer.text
    job = await wait_job(client, job_id, push_is("pushed", "failed"))
    done.set()
    await watcher
    assert job["pushStatus"] == "pushed", job["pushError"]
    for snap in snapshots:
        ids = [m["id"] for m in snap["media"]]
        if original not in ids:  # gone only once ours is READY on the product
            assert [m["status"] for m in ours(snap, job_id)] == ["READY"]
    assert any(original in [m["id"] for m in s["media"]] and ours(s, job_id) for s in snapshots)
    after = await sim_product(stack, shop, product["id"])
    assert len(after["media"]) == len(before["media"])
    assert original not in [m["id"] for m in after["media"]]
    assert len(ours(after, job_id)) == 1

    reverted = await client.post("/api/jobs/revert", json={"jobId": job_id})
    assert reverted.status_code == 200
    job = await wait_job(client, job_id, push_is("reverted", "pushed"))
    assert job["pushStatus"] == "reverted", job["pushError"]
    final = await sim_product(stack, shop, product["id"])
    assert original in [m["id"] for m in final["media"]] and not ours(final, job_id)
    assert sorted(m["id"] for m in final["media"]) == sorted(m["id"] for m in before["media"])


async def test_review_before_publish_approve_and_reject(stack: Stack, shop: str) -> None:
    products = await connect(stack, shop)
    await set_shop_settings(stack, shop, reviewBeforePublish=True)
    approved_id = await seed_completed(stack, shop, products[2])
    rejected_id = await seed_completed(stack, shop, products[3])
    before = await sim_product(stack, shop, products[3]["id"])
    client = stack.client(shop)
    for job_id in (approved_id, rejected_id):
        answer = await client.post("/api/jobs/push-to-shopify", json={"jobId": job_id})
        assert answer.json()["job"]["pushStatus"] == "awaiting_review"
    await asyncio.sleep(0.5)  # the worker leaves jobs under review alone
    assert not ours(await sim_product(stack, shop, products[2]["id"]), approved_id)
    approve = await client.post("/api/jobs/approve", json={"jobId": approved_id})
    assert approve.status_code == 200 and approve.json()["job"]["pushStatus"] == "queued"
    reject = await client.post("/api/jobs/reject", data={"jobId": rejected_id})
    assert reject.status_code == 200 and reject.json()["job"]["pushStatus"] == "rejected"
    job = await wait_job(client, approved_id, push_is("pushed", "failed"))
    assert job["pushStatus"] == "pushed"
    assert len(ours(await sim_product(stack, shop, products[2]["id"]), approved_id)) == 1
    assert await sim_product(stack, shop, products[3]["id"]) == before
    wrong = await client.post("/api/jobs/approve", json={"jobId": rejected_id})
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "NOT_AWAITING_REVIEW"


async def test_double_click_pushes_once(stack: Stack, shop: str) -> None:
    product = (await connect(stack, shop))[4]
    job_id = await seed_completed(stack, shop, product)
    client = stack.client(shop)
    answers = await asyncio.gather(
        *[client.post("/api/jobs/push-to-shopify", json={"jobId": job_id}) for _ in range(4)]
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    job = await wait_job(client, job_id, push_is("pushed", "failed"))
    assert job["pushStatus"] == "pushed"
    assert len(ours(await sim_product(stack, shop, product["id"]), job_id)) == 1
    detail = (await client.get(f"/api/jobs/{job_id}")).json()["job"]
    queued = [e for e in detail["events"] if e["kind"] == "push" and e["data"]["to"] == "queued"]
    assert len(queued) == 1


async def test_push_refuses_what_cannot_be_pushed(stack: Stack, shop: str, other_shop: str) -> None:
    product = (await connect(stack, shop))[5]
    client = stack.client(shop)
    running = await seed_completed(stack, shop, product, status="processing")
    no_product = await seed_completed(stack, shop, None)
    no_image = await seed_completed(stack, shop, product, with_image=False)
    cases = [
        ({"jobId": running}, 400, "only completed jobs"),
        ({"jobId": no_product}, 400, "no product"),
        ({"jobId": no_image, "mode": "replace"}, 400, "imageId"),
        ({"jobId": no_image, "mode": "sideways"}, 400, "mode"),
        ({}, 400, "jobId"),
    ]
    for body, status, words in cases:
        answer = await client.post("/api/jobs/push-to-shopify", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"]["message"], answer.text
    foreign = await stack.client(other_shop).post(
        "/api/jobs/push-to-shopify", json={"jobId": no_image}
    )
    assert foreign.status_code == 404
    not_pushed = await client.post("/api/jobs/revert", json={"jobId": no_image})
    assert not_pushed.status_code == 409


async def test_media_shopify_cannot_process_fails_the_push_and_is_deleted(
    stack: Stack, shop: str
) -> None:
    product = (await connect(stack, shop))[6]
    before = await sim_product(stack, shop, product["id"])
    job_id = await seed_completed(stack, shop, product)
    admin = stack.shopify_admin()
    await admin.put("/_sim/faults", json={"media_failure_rate": 1.0, "shop": shop})
    try:
        client = stack.client(shop)
        await client.post("/api/jobs/push-to-shopify", json={"jobId": job_id})
        job = await wait_job(client, job_id, push_is("pushed", "failed"))
    finally:
        await admin.delete("/_sim/faults")
    assert job["pushStatus"] == "failed" and not job["pushedToShopify"]
    assert job["pushError"].startswith("Shopify could not process the image")
    assert await sim_product(stack, shop, product["id"]) == before  # the FAILED media is gone
    # Pushing again after the failure works.
    await client.post("/api/jobs/push-to-shopify", json={"jobId": job_id})
    job = await wait_job(client, job_id, push_is("pushed", "failed"))
    assert job["pushStatus"] == "pushed"


async def test_bulk_push_and_bulk_approve(stack: Stack, shop: str) -> None:
    products = await connect(stack, shop)
    client = stack.client(shop)
    first = [await seed_completed(stack, shop, products[i]) for i in (7, 8, 9)]
    answer = await client.post("/api/jobs/bulk", json={"action": "push", "jobIds": first})
    assert answer.status_code == 200, answer.text
    for job_id in first:
        assert (await wait_job(client, job_id, PUSHED))["pushStatus"] == "pushed"
    await set_shop_settings(stack, shop, reviewBeforePublish=True)
    second = [await seed_completed(stack, shop, products[i]) for i in (10, 11)]
    await client.post("/api/jobs/bulk", json={"action": "push", "jobIds": second})
    for job_id in second:
        await wait_job(client, job_id, push_is("awaiting_review"))
    approve = await client.post(
        "/api/jobs/bulk", json={"action": "approve", "filter": {"status": ["completed"]}}
    )
    assert approve.status_code == 200 and approve.json()["operation"]["total"] == 2
    for job_id, index in zip(second, (10, 11), strict=True):
        assert (await wait_job(client, job_id, PUSHED))["pushStatus"] == "pushed"
        assert len(ours(await sim_product(stack, shop, products[index]["id"]), job_id)) == 1


async def test_auto_push_when_the_job_completes(stack: Stack, shop: str) -> None:
    product = (await connect(stack, shop))[12]
    await set_shop_settings(stack, shop, autoPush=True)
    client = stack.client(shop)
    (job_id,) = await stack.create_jobs(
        client, 1, productId=product["id"], imageId=product["images"][0]["id"]
    )
    job = await wait_job(client, job_id, push_is("pushed", "failed"), within=30)
    assert job["status"] == "completed" and job["pushStatus"] == "pushed", job["pushError"]
    assert len(ours(await sim_product(stack, shop, product["id"]), job_id)) == 1


@pytest.mark.parametrize("via", ["header", "id_token"])
async def test_a_bad_session_token_is_refused_with_the_retry_header(
    stack: Stack, shop: str, via: str
) -> None:
    token = stack.session_token(shop, aud="another-app")
    client = stack.client(shop)
    client.cookies.clear()
    if via == "header":
        answer = await client.get("/api/products", headers={"Authorization": f"Bearer {token}"})
    else:
        answer = await client.get("/api/products", params={"id_token": token})
    assert answer.status_code == 401
    assert answer.headers.get("X-Shopify-Retry-Invalid-Session-Request") == "1"
