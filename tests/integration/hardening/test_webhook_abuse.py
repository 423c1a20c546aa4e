"""Abuse of the two webhook routes over loopback, on both databases: missing, forged,
replayed and stale signatures, oversized and malformed bodies, unknown events and
jobs, and floods of duplicates sent at once. Each gets the right status with the
error envelope, nothing is applied twice (events, credits, receipts, bulk
operations), and nothing answers 5xx."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.bulk.models import BulkOperation
from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job, JobAttempt
from pikcel_jobs.jobs.schemas import JobCreate
from pikcel_jobs.pikcel.webhooks import signing_key
from pikcel_jobs.webhooks.models import WebhookReceipt

Client = Callable[[str], httpx.AsyncClient]


# ---- PikcelAI ----


async def running_job(sessions: async_sessionmaker[AsyncSession], shop: str) -> tuple[str, str]:
    """A job of `shop` that PikcelAI is processing: (our id, PikcelAI's id)."""
    remote_id = f"pk-{secrets.token_hex(8)}"
    async with unit_of_work(sessions) as session:
        image = "https://cdn.example.com/x.png"
        data = JobCreate(tool_id="background-removal", input_image_url=image)
        job = await service.create_job(session, shop=shop, data=data, input_image_url=image)
        job.status = "processing"
        job.pikcel_job_id = remote_id
        job.next_attempt_at = None
        await session.execute(
            update(JobAttempt).where(JobAttempt.job_id == job.id).values(pikcel_job_id=remote_id)
        )
        return job.id, remote_id


def event_body(remote_id: str, status: str, *, event: str | None = None, **job: Any) -> bytes:
    payload = {
        "event": event or {"processing": "job.started", "completed": "job.completed",
                           "failed": "job.failed", "cancelled": "job.cancelled"}[status],
        "job_id": remote_id,
        "job": {"id": remote_id, "tool_id": "background-removal", "status": status,
                "credits_used": 4 if status == "completed" else 0,
                "output_image_url": "https://cdn.example.com/out.png", **job},
        "timestamp": "2026-12-01T10:00:00Z",
    }  # fmt: skip
    return json.dumps(payload).encode()


def standard(settings: Settings, body: bytes, msg_id: str, ts: int | None = None) -> dict[str, str]:
    key = signing_key(settings.pikcel_webhook_secret.get_secret_value())
    stamp = int(time.time()) if ts is None else ts
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id, "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }  # fmt: skip


def legacy(settings: Settings, body: bytes) -> dict[str, str]:
    key = signing_key(settings.pikcel_webhook_secret.get_secret_value())
    return {"X-Pikcel-Signature": hmac.new(key, body, hashlib.sha256).hexdigest()}


def envelope(answer: httpx.Response, status: int, code: str | None = None) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert body["success"] is False and body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body


async def job_state(sessions: async_sessionmaker[AsyncSession], job_id: str) -> dict[str, Any]:
    async with unit_of_work(sessions, read_only=True) as session:
        job = await session.get(Job, job_id)
        assert job is not None
        kinds = (
            await session.execute(
                select(JobEvent.kind, JobEvent.status).where(JobEvent.job_id == job_id)
            )
        ).all()
        return {"status": job.status, "credits": job.credits_used, "progress": job.progress,
                "events": sorted((k, s) for k, s in kinds)}  # fmt: skip


async def test_pikcel_webhook_refuses_what_is_not_authentic_or_fresh(
    api_url: str, app_settings: Settings, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    job_id, remote = await running_job(sessions, shop)
    body = event_body(remote, "completed")
    before = await job_state(sessions, job_id)
    now = int(time.time())
    good = standard(app_settings, body, "msg_ok")
    forged_key = {**standard(app_settings, body, "msg_f"),
                  "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}  # fmt: skip
    cases: list[tuple[str, dict[str, str], bytes, int]] = [
        ("no signature at all", {"content-type": "application/json"}, body, 401),
        ("forged v1 signature", forged_key, body, 401),
        ("signature of another body", good, event_body(remote, "failed"), 401),
        ("id swapped after signing", {**good, "webhook-id": "msg_other"}, body, 401),
        ("no v1 scheme", {**good, "webhook-signature": "v2,abc"}, body, 401),
        ("empty signature", {**good, "webhook-signature": ""}, body, 401),
        ("stale timestamp (6 min)", standard(app_settings, body, "msg_s", now - 360), body, 401),
        ("future timestamp (6 min)", standard(app_settings, body, "msg_u", now + 360), body, 401),
        ("timestamp not a number", {**good, "webhook-timestamp": "yesterday"}, body, 401),
        ("missing webhook-id", {k: v for k, v in good.items() if k != "webhook-id"}, body, 401),
        ("forged legacy signature", {"X-Pikcel-Signature": "00" * 32}, body, 401),
        ("legacy signature with a bad standard one",
         {**legacy(app_settings, body), **forged_key}, body, 401),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as raw:
        for what, headers, content, status in cases:
            answer = await raw.post("/webhooks/pikcel", content=content, headers=headers)
            assert answer.status_code == status, (what, answer.status_code, answer.text)
            envelope(answer, status, "INVALID_SIGNATURE")
    assert await job_state(sessions, job_id) == before, "a refused delivery changed the job"


async def test_pikcel_webhook_bodies_sizes_events_and_unknown_jobs(
    api_url: str, app_settings: Settings, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    job_id, remote = await running_job(sessions, shop)

    async def post(content: bytes, msg: str | None = None, **extra: str) -> httpx.Response:
        headers = standard(app_settings, content, msg or f"msg_{uuid.uuid4().hex}")
        return await raw.post("/webhooks/pikcel", content=content, headers={**headers, **extra})

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as raw:
        # Too large: refused before anything is read further, declared or streamed.
        big = b"{" + b" " * (1024 * 1024) + b"}"
        envelope(await post(big), 413, "PAYLOAD_TOO_LARGE")

        async def chunks() -> Any:
            for _ in range(40):
                yield b" " * 65536

        streamed = await raw.post("/webhooks/pikcel", content=chunks(),
                                  headers=standard(app_settings, b"", "msg_stream"))  # fmt: skip
        envelope(streamed, 413, "PAYLOAD_TOO_LARGE")
        # Signed but not a PikcelAI event.
        for content in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"{}",
                        json.dumps({"event": "job.completed", "job_id": remote}).encode(),
                        event_body(remote, "completed").replace(
                            f'"job_id": "{remote}"'.encode(), b'"job_id": "someone-else"'),
                        event_body(remote, "completed").replace(b'"completed"', b'"exploded"')):  # fmt: skip
            envelope(await post(content), 400, "INVALID_PAYLOAD")
        # A job nobody knows: 404, so a real PikcelAI would redeliver later.
        envelope(await post(event_body("pk-nobody", "completed")), 404, "UNKNOWN_JOB")
        # An event type we do not know, for a real job: the job snapshot decides.
        answer = await post(event_body(remote, "processing", event="job.teleported", progress=30))
        assert answer.status_code == 200, answer.text
        # Out of order: completed, then a late started and progress change nothing.
        assert (await post(event_body(remote, "completed"))).status_code == 200
        assert (await post(event_body(remote, "processing", progress=50))).status_code == 200
    state = await job_state(sessions, job_id)
    assert state["status"] == "completed" and state["credits"] == 4 and state["progress"] == 100
    assert [e for e in state["events"] if e[0] == "status"].count(("status", "completed")) == 1


async def test_pikcel_webhook_replays_change_nothing(
    api_url: str, app_settings: Settings, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    """The same delivery again (same id, or the same body signed the legacy way only,
    or a very long id) is answered as a duplicate and applied once."""
    job_id, remote = await running_job(sessions, shop)
    body = event_body(remote, "completed")
    long_id = "msg_" + "x" * 300
    signed = standard(app_settings, body, long_id)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as raw:
        first = await raw.post("/webhooks/pikcel", content=body, headers=signed)
        assert first.status_code == 200 and not first.json().get("duplicate"), first.text
        again = await raw.post("/webhooks/pikcel", content=body, headers=signed)
        assert again.status_code == 200 and again.json().get("duplicate") is True, again.text
        # Captured delivery replayed with only its legacy signature (no timestamp to go stale).
        replay = await raw.post(
            "/webhooks/pikcel", content=body, headers=legacy(app_settings, body)
        )
        assert replay.status_code == 200 and replay.json().get("duplicate") is True, replay.text
    state = await job_state(sessions, job_id)
    assert state["events"].count(("status", "completed")) == 1 and state["credits"] == 4


async def test_pikcel_webhook_flood_of_duplicates_applies_once(
    api_url: str, app_settings: Settings, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    """60 deliveries at once: 30 copies of one delivery, 30 redeliveries of the same
    event under new ids. One status change, credits counted once, no 5xx."""
    job_id, remote = await running_job(sessions, shop)
    body = event_body(remote, "completed")
    same = standard(app_settings, body, f"msg_{uuid.uuid4().hex}")
    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as raw:
        sends = [raw.post("/webhooks/pikcel", content=body, headers=same) for _ in range(30)]
        sends += [
            raw.post("/webhooks/pikcel", content=body,
                     headers=standard(app_settings, body, f"msg_{uuid.uuid4().hex}"))
            for _ in range(30)
        ]  # fmt: skip
        answers = await asyncio.gather(*sends)
    statuses = sorted({a.status_code for a in answers})
    assert statuses == [200], [
        (a.status_code, a.text[:200]) for a in answers if a.status_code != 200
    ]
    applied = [a for a in answers if not a.json().get("duplicate")]
    assert len(applied) >= 1
    state = await job_state(sessions, job_id)
    assert state["status"] == "completed" and state["credits"] == 4
    assert state["events"].count(("status", "completed")) == 1, state["events"]
    async with unit_of_work(sessions, read_only=True) as session:
        receipts = (
            await session.execute(
                select(func.count()).where(
                    WebhookReceipt.source == "pikcel",
                    WebhookReceipt.delivery_id == same["webhook-id"],
                )
            )
        ).scalar_one()
    assert receipts == 1


# ---- Shopify ----


def shopify_headers(
    settings: Settings, body: bytes, shop: str, topic: str, wid: str
) -> dict[str, str]:
    secret = settings.shopify_api_secret.get_secret_value()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json", "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop, "X-Shopify-Webhook-Id": wid,
        "X-Shopify-Triggered-At": "2026-12-01T10:00:00Z", "X-Shopify-API-Version": "2025-10",
    }  # fmt: skip


async def test_shopify_webhook_abuse(
    api_url: str, app_settings: Settings, sessions: async_sessionmaker[AsyncSession], shop: str
) -> None:
    body = json.dumps({"shop_id": 1, "shop_domain": shop}).encode()
    ok = shopify_headers(app_settings, body, shop, "shop/redact", f"w-{uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as raw:
        unsigned = {k: v for k, v in ok.items() if k != "X-Shopify-Hmac-Sha256"}
        envelope(await raw.post("/webhooks/shopify", content=body, headers=unsigned), 401)
        forged = {**ok, "X-Shopify-Hmac-Sha256": base64.b64encode(b"y" * 32).decode()}
        envelope(await raw.post("/webhooks/shopify", content=body, headers=forged), 401)
        other_body = json.dumps({"shop_domain": "victim.myshopify.com"}).encode()
        envelope(await raw.post("/webhooks/shopify", content=other_body, headers=ok), 401)
        big = b"{" + b" " * (1024 * 1024) + b"}"
        envelope(await raw.post("/webhooks/shopify", content=big,
                                headers=shopify_headers(app_settings, big, shop, "shop/redact", "w-big")), 413)  # fmt: skip
        # Authentic but malformed: a shop domain that is not one, no topic, no id.
        bad_shop = shopify_headers(app_settings, body, "evil.example.com", "shop/redact", "w-x")
        envelope(await raw.post("/webhooks/shopify", content=body, headers=bad_shop), 400)
        no_topic = {k: v for k, v in ok.items() if k != "X-Shopify-Topic"}
        envelope(await raw.post("/webhooks/shopify", content=body, headers=no_topic), 400)
        # Authentic, not JSON, unknown topic: acknowledged and ignored.
        junk = b"\x00not json"
        unknown = shopify_headers(
            app_settings, junk, shop, "products/teleport", f"w-{uuid.uuid4()}"
        )
        answer = await raw.post("/webhooks/shopify", content=junk, headers=unknown)
        assert answer.status_code == 200 and answer.json().get("ignored") is True, answer.text


@pytest.mark.parametrize("copies", [40])
async def test_shopify_uninstall_flood_runs_once(
    api_url: str, app_settings: Settings, sessions: async_sessionmaker[AsyncSession],
    client_for: Client, shop: str, copies: int,
) -> None:  # fmt: skip
    """The same app/uninstalled delivery 40 times at once: one receipt, one cancelling
    bulk operation, every answer 200."""
    client = client_for(shop)
    for _ in range(3):
        created = await client.post("/api/jobs", json={
            "toolId": "background-removal", "inputImageUrl": "https://cdn.example.com/x.png"})  # fmt: skip
        assert created.status_code == 201
    body = json.dumps({"id": 1, "myshopify_domain": shop}).encode()
    headers = shopify_headers(app_settings, body, shop, "app/uninstalled", f"w-{uuid.uuid4()}")
    limits = httpx.Limits(max_connections=copies)
    async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as raw:
        answers = await asyncio.gather(
            *[raw.post("/webhooks/shopify", content=body, headers=headers) for _ in range(copies)]
        )
    assert {a.status_code for a in answers} == {200}, [
        a.text for a in answers if a.status_code != 200
    ]
    assert sum(1 for a in answers if not a.json().get("duplicate")) == 1
    async with unit_of_work(sessions, read_only=True) as session:
        ops = (
            await session.execute(select(func.count()).where(BulkOperation.shop == shop))
        ).scalar_one()
        receipts = (
            await session.execute(
                select(func.count()).where(
                    WebhookReceipt.source == "shopify",
                    WebhookReceipt.delivery_id == headers["X-Shopify-Webhook-Id"],
                )
            )
        ).scalar_one()
    assert ops == 1 and receipts == 1
