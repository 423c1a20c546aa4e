"""Notifications end to end on both databases: email through a real SMTP server
(aiosmtpd), webhooks to a real HTTP receiver that checks Standard Webhooks signatures,
retries with backoff, replay, the daily digest, URL safety and shop scoping.

One running stack (app, PikcelAI simulator, two workers) per database serves the module."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from notify_support import (
    Inbox,
    Receiver,
    eventually,
    mail_settings,
    smtp_server,
    text_and_html,
    webhook_receiver,
)

from pikcel_jobs.analytics import rollups
from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import InvalidInput
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.net.fetch import FetchPolicy
from pikcel_jobs.notifications import repository, service
from pikcel_jobs.notifications.hooks import on_job_status
from pikcel_jobs.notifications.models import NotificationDelivery
from pikcel_jobs.notifications.schemas import NotificationSettingsUpdate
from pikcel_jobs.notifications.tasks import DigestPlanner, deliver_now, send_email
from pikcel_jobs.shops.service import ensure_shop
from tests.support.stack import Stack, finished, running_stack


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(app_settings: Settings, smtp: tuple[Inbox, int]) -> AsyncIterator[Stack]:
    async with running_stack(app_settings, workers=2, **mail_settings(smtp[1])) as found:
        yield found


async def deliveries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/api/notifications/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["deliveries"])


async def until_deliveries(
    client: httpx.AsyncClient, done: Callable[[list[dict[str, Any]]], bool], within: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        found = await deliveries(client)
        if found and done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries not as expected: {found}")
        await asyncio.sleep(0.1)


def all_sent(found: list[dict[str, Any]]) -> bool:
    return all(d["status"] == "sent" for d in found)


async def test_failed_job_emails_once_with_two_workers(
    stack: Stack, shop: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    client = stack.client(shop)
    address = f"owner@{shop}"
    saved = await client.put("/api/notifications/settings", json={"notificationEmail": address})
    assert saved.status_code == 200 and saved.json()["settings"]["notifyOnFailure"] is True
    await stack.set_faults(job_failure_rate=1.0)
    try:
        [job_id] = await stack.create_jobs(client, 1, productTitle="Blue mug")
        [job] = await stack.wait_for(client, [job_id], finished)
        assert job["status"] == "failed"
        [message] = await eventually(lambda: inbox.to(address), what="the failure email")
        # The same change reported again (a repeated webhook racing a poll) adds nothing.
        async with unit_of_work(stack.runtime.sessions) as session:
            row = await session.get(Job, job_id)
            assert row is not None
            await on_job_status(session, row, "processing", "failed")
            await on_job_status(session, row, "processing", "failed")
        [sent] = await until_deliveries(client, all_sent)
        assert (sent["channel"], sent["kind"], sent["attempts"]) == ("email", "job.failed", 1)
        assert message["X-Pikcel-Delivery"] == sent["id"] and sent["log"][0]["ok"] is True
        assert message["Subject"] == "Job failed: Background Removal on Blue mug"
        assert message["From"] == "PikcelAI <notifications@pikcel.test>"
        text, html = text_and_html(message)
        link = f"{stack.settings.app_url}/app/jobs/{job_id}"
        assert link in text and link in html and job["errorMessage"] in text

        # A retry is a new attempt: its failure is news, announced once more.
        assert (await client.post("/api/jobs/retry", json={"jobId": job_id})).status_code == 200
        await stack.wait_for(
            client, [job_id], lambda j: j["status"] == "failed" and j["attempt"] == 2
        )
        await eventually(lambda: len(inbox.to(address)) == 2, what="the second failure email")
    finally:
        await stack.set_faults()
    found = await until_deliveries(client, lambda ds: len(ds) == 2 and all_sent(ds))
    assert [d["payload"]["attempt"] for d in found] == [2, 1]
    await asyncio.sleep(0.5)
    assert len(inbox.to(address)) == 2


async def test_a_batch_of_five_sends_one_email_and_one_webhook(
    stack: Stack, shop: str, smtp: tuple[Inbox, int], receiver: Receiver
) -> None:
    inbox, _ = smtp
    name = f"batch-{shop}"
    client = stack.client(shop)
    address = f"batches@{shop}"
    saved = await client.put(
        "/api/notifications/settings",
        json={"notificationEmail": address, "notifyOnCompletion": True,
              "webhookUrl": receiver.hook_url(name)},
    )  # fmt: skip
    assert saved.status_code == 200, saved.text
    receiver.secrets[name] = saved.json()["settings"]["webhookSecret"]
    images = [{"inputImageUrl": stack.image_url} for _ in range(5)]
    created = await client.post(
        "/api/batches", json={"toolId": "background-removal", "images": images, "name": "Spring"}
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["batch"]["id"]
    await stack.wait_for(client, [j["id"] for j in created.json()["jobs"]], finished)
    done = await until_deliveries(client, lambda ds: len(ds) == 2 and all_sent(ds))
    kinds = sorted((d["channel"], d["kind"]) for d in done)
    assert kinds == [("email", "batch.completed"), ("webhook", "batch.completed")]
    await asyncio.sleep(0.5)
    [message] = inbox.to(address)
    [call] = receiver.calls[name]
    assert message["Subject"] == "Batch finished: Spring — all 5 images done"
    assert f"/app/batches/{batch_id}" in text_and_html(message)[0]
    assert call.verified and call.answered == 204
    assert call.body["type"] == "batch.completed"
    assert call.body["data"]["batchId"] == batch_id and call.body["data"]["completedJobs"] == 5
    assert len(await deliveries(client)) == 2  # no message per job


async def test_webhook_retried_with_backoff_then_sent_and_replayed(
    stack: Stack, shop: str, other_shop: str, receiver: Receiver
) -> None:
    name = f"retry-{shop}"
    receiver.fail_first[name] = 2
    client = stack.client(shop)
    saved = await client.put(
        "/api/notifications/settings", json={"webhookUrl": receiver.hook_url(name)}
    )
    secret = saved.json()["settings"]["webhookSecret"]
    assert secret.startswith("whsec_")
    receiver.secrets[name] = secret
    [job_id] = await stack.create_jobs(client, 1)
    [job] = await stack.wait_for(client, [job_id], finished)
    assert job["status"] == "completed"
    [sent] = await until_deliveries(client, all_sent)
    calls = receiver.calls[name]
    assert [c.answered for c in calls] == [500, 500, 204]
    assert all(c.verified for c in calls)
    assert {c.headers["webhook-id"] for c in calls} == {sent["id"]}
    assert [a["statusCode"] for a in sent["log"]] == [500, 500, 204]
    assert sent["attempts"] == 3 and sent["lastError"] is None
    # Backoff of 0.3 s, then 0.6 s (doubling).
    first_gap, second_gap = calls[1].at - calls[0].at, calls[2].at - calls[1].at
    assert first_gap >= 0.25 and second_gap >= 0.5, (first_gap, second_gap)
    assert calls[2].body["type"] == "job.completed"
    data = calls[2].body["data"]
    assert data["jobId"] == job_id and data["url"].endswith(f"/app/jobs/{job_id}")

    # Replay: a copy, with its own id, delivered again.
    replay_path = f"/api/notifications/deliveries/{sent['id']}/replay"
    assert (await stack.client(other_shop).post(replay_path)).status_code == 404
    answer = await client.post(replay_path)
    assert answer.status_code == 201, answer.text
    copy = answer.json()["delivery"]
    assert copy["replayOf"] == sent["id"] and copy["id"] != sent["id"]
    listed = await until_deliveries(client, lambda ds: len(ds) == 2 and all_sent(ds))
    assert [d["id"] for d in listed] == [copy["id"], sent["id"]]
    again = receiver.calls[name][3]
    assert again.verified and again.headers["webhook-id"] == copy["id"]
    assert again.body["data"] == data


def planners(stack: Stack) -> list[DigestPlanner]:
    return [q.plan for w in stack.workers for q in w.queues if isinstance(q.plan, DigestPlanner)]


async def test_daily_digest_once_per_day_with_many_workers(
    stack: Stack, shop: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    address = f"digest@{shop}"
    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    async with unit_of_work(stack.runtime.sessions) as session:
        row = await ensure_shop(session, shop)
        row.settings = {**(row.settings or {}), "dailyDigest": True, "notificationEmail": address}
        base = {"shop": shop, "day": yesterday, "tool_id": "upscale", "time_ms_sum": 0,
                "time_ms_count": 0}  # fmt: skip
        await rollups.add_rows(
            session,
            [{**base, "status": "completed", "jobs": 3, "credits": 6},
             {**base, "status": "failed", "jobs": 1, "credits": 0},
             {**base, "tool_id": "background-removal", "status": "completed", "jobs": 2,
              "credits": 2}],
        )  # fmt: skip

    async def plan() -> int:
        async with unit_of_work(stack.runtime.sessions) as session:
            return await service.plan_digests(session, now=now, hour=0)

    # Every worker's planner is due (as a minute later) and three more run at once.
    for planner in planners(stack):
        planner.next_run = 0.0
    for worker in stack.workers:
        worker.nudge()
    assert sum(await asyncio.gather(plan(), plan(), plan())) <= 1
    [message] = await eventually(lambda: inbox.to(address), what="the digest")
    client = stack.client(shop)
    [digest] = await until_deliveries(client, all_sent)
    assert digest["kind"] == "digest" and digest["payload"]["date"] == yesterday.isoformat()
    assert await plan() == 0
    await asyncio.sleep(0.5)
    assert len(inbox.to(address)) == 1
    assert message["Subject"].startswith("Your PikcelAI summary for ")
    assert message["Subject"].endswith(": 5 completed, 1 failed")
    text, _ = text_and_html(message)
    assert "Credits used: 8" in text and "Started: 6" in text
    # Before the hour nothing is due; the next day has nothing to report for this shop.
    assert service.digest_day(now.replace(hour=5), 6) is None
    async with unit_of_work(stack.runtime.sessions) as session:
        assert await service.plan_digests(session, now=now + timedelta(days=1), hour=0) == 0


async def test_private_webhook_urls_are_refused_unless_allowed(
    stack: Stack, shop: str, receiver: Receiver
) -> None:
    strict = FetchPolicy(allow_private=False)
    for url, words in [
        ("https://127.0.0.1/hooks/x", "private address"),
        ("https://localhost/hooks/x", "private address"),
        ("https://10.1.2.3/hooks/x", "private address"),
        ("http://example.com/hooks/x", "only https"),
        ("ftp://example.com/x", "only https"),
    ]:
        update = NotificationSettingsUpdate(webhook_url=url)
        _, errors = await service.clean_settings(update, current={}, policy=strict)
        assert words in errors["webhookUrl"], (url, errors)
    lenient = FetchPolicy(allow_private=True)
    update = NotificationSettingsUpdate(webhook_url=receiver.hook_url("x"))
    assert (await service.clean_settings(update, current={}, policy=lenient))[1] == {}
    with pytest.raises(InvalidInput, match="webhookUrl: This address can't receive webhooks"):
        async with unit_of_work(stack.runtime.sessions) as session:
            await service.update_settings(session, shop=shop, update=update, policy=strict)

    # At send time too: a stored loopback target is given up at once, never contacted.
    name = f"private-{shop}"
    target = receiver.hook_url(name).replace("http://", "https://")
    async with unit_of_work(stack.runtime.sessions) as session:
        row = await ensure_shop(session, shop)
        row.settings = {"webhookUrl": target, "webhookSecret": service.new_webhook_secret()}
        delivery_id = await repository.enqueue(
            session, shop=shop, channel="webhook", kind="test", dedupe_key=f"t:{name}",
            target=target, payload={}, now=datetime.now(UTC) + timedelta(days=1),
        )  # fmt: skip
    assert delivery_id is not None
    ctx = stack.runtime.worker_context("strict-worker")
    ctx.fetch_policy = strict
    await deliver_now(ctx, [delivery_id])
    async with unit_of_work(stack.runtime.sessions, read_only=True) as session:
        stored = await repository.get_for_shop(session, shop=shop, delivery_id=delivery_id)
    assert stored.status == "gave_up" and "private address" in (stored.last_error or "")
    assert stored.attempts == 1 and name not in receiver.calls


async def test_email_without_smtp_is_given_up_with_the_reason(app_settings: Settings) -> None:
    delivery = NotificationDelivery(
        id="d1", shop="s.myshopify.com", channel="email", kind="test", target="a@b.example",
        payload={"path": "/app/settings"}, created_at=datetime.now(UTC),
    )  # fmt: skip
    outcome = await send_email(delivery, app_settings.model_copy(update={"smtp_host": ""}))
    assert not outcome.ok and outcome.permanent and "SMTP_HOST" in (outcome.error or "")


async def test_api_validation_paging_and_shop_scoping(
    stack: Stack, shop: str, other_shop: str, receiver: Receiver, smtp: tuple[Inbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    client, other = stack.client(shop), stack.client(other_shop)
    for body, words in [
        ({"notificationEmail": "nope"}, "Enter an email address"),
        ({"webhookUrl": "ftp://example.com/x"}, "webhookUrl"),
        ({"dailyDigest": "sometimes"}, "dailyDigest"),
        ({"colour": "red"}, "colour"),
    ]:
        answer = await client.put("/api/notifications/settings", json=body)
        assert answer.status_code == 400 and words in answer.json()["error"]["message"], body
    nothing = await client.post("/api/notifications/test")  # no body: every target
    assert nothing.status_code == 400 and "settings first" in nothing.json()["error"]["message"]
    assert (
        await client.post("/api/notifications/test", json={"channel": "sms"})
    ).status_code == 400

    name = f"api-{shop}"
    saved = await client.put(
        "/api/notifications/settings",
        json={"webhookUrl": receiver.hook_url(name), "notificationEmail": f"a@{shop}"},
    )
    settings = saved.json()["settings"]
    fetched = (await client.get("/api/notifications/settings")).json()["settings"]
    assert fetched == settings
    rotated = await client.put("/api/notifications/settings", json={"rotateWebhookSecret": True})
    assert rotated.json()["settings"]["webhookSecret"] not in (None, settings["webhookSecret"])
    receiver.secrets[name] = rotated.json()["settings"]["webhookSecret"]

    # A test goes out at once, to both targets, and answers with the outcome.
    tested = await client.post("/api/notifications/test", json={})
    assert tested.status_code == 200, tested.text
    by_channel = {d["channel"]: d for d in tested.json()["deliveries"]}
    assert by_channel["webhook"]["status"] == "sent" and receiver.calls[name][-1].verified
    assert by_channel["email"]["status"] == "sent"
    assert smtp[0].to(f"a@{shop}")[0]["Subject"] == "Test notification from PikcelAI"
    await client.post("/api/notifications/test", json={"channel": "webhook"})

    # Newest first, keyset pages; another shop sees none of it.
    everything = await deliveries(client)
    assert len(everything) == 3
    first = (await client.get("/api/notifications/deliveries", params={"limit": 2})).json()
    assert [d["id"] for d in first["deliveries"]] == [d["id"] for d in everything[:2]]
    rest = await deliveries(client, limit=2, cursor=first["nextCursor"])
    assert [d["id"] for d in rest] == [everything[2]["id"]]
    assert [d["id"] for d in await deliveries(client, channel="email")] == [
        by_channel["email"]["id"]
    ]
    assert await deliveries(other) == []
    some_id = everything[0]["id"]
    assert (await other.get(f"/api/notifications/deliveries/{some_id}")).status_code == 404
    assert (await client.get(f"/api/notifications/deliveries/{some_id}")).status_code == 200
    assert (await other.post(f"/api/notifications/deliveries/{some_id}/replay")).status_code == 404
    # On-demand sends (tests, replays) are limited per shop.
    monkeypatch.setattr(service, "ON_DEMAND_LIMIT", 4)
    assert (await client.post(f"/api/notifications/deliveries/{some_id}/replay")).status_code == 201
    for call in (
        client.post("/api/notifications/test", json={"channel": "webhook"}),
        client.post(f"/api/notifications/deliveries/{some_id}/replay"),
    ):
        refused = await call
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "RATE_LIMITED"
    for params in [{"limit": "0"}, {"limit": "x"}, {"status": "lost"}, {"cursor": "@@"},
                   {"channel": "fax"}, {"sort": "asc"}]:  # fmt: skip
        answer = await client.get("/api/notifications/deliveries", params=params)
        assert answer.status_code == 400, params
        assert answer.json()["success"] is False


async def test_settings_page_fields_log_and_replay_button(
    stack: Stack, shop: str, receiver: Receiver
) -> None:
    client = stack.client(shop)
    page = await client.get("/app/settings")
    assert page.status_code == 200 and "Notification log" in page.text
    assert "No notifications sent yet." in page.text
    token = re.search(r'name="csrfToken" value="([^"]+)"', page.text)
    assert token is not None
    form = {"csrfToken": token.group(1), "defaultPriority": "normal"}
    bad = await client.post("/app/settings", data={**form, "webhookUrl": "ftp://example.com/x"})
    assert bad.status_code == 400 and "receive webhooks" in bad.text
    name = f"page-{shop}"
    saved = await client.post(
        "/app/settings", data={**form, "webhookUrl": receiver.hook_url(name), "dailyDigest": "on"}
    )
    assert saved.status_code == 303
    page = await client.get("/app/settings")
    assert re.search(r'name="dailyDigest" checked', page.text)
    secret = re.search(r'value="(whsec_[^"]+)" readonly', page.text)
    assert secret is not None
    receiver.secrets[name] = secret.group(1)

    sent = await client.post("/app/settings/notifications/test", data=form)
    assert sent.status_code == 303 and sent.headers["location"] == "/app/settings#deliveries"
    page = await client.get("/app/settings")
    assert "Test sent to " + receiver.hook_url(name) in page.text
    [delivery_id] = re.findall(r'data-delivery="([^"]+)"', page.text)
    replay = f"/app/settings/deliveries/{delivery_id}/replay"
    assert (await client.post(replay, data={})).status_code == 403
    assert (await client.post(replay, data=form)).status_code == 303
    page = await client.get("/app/settings")
    assert "Queued again for" in page.text
    assert len(re.findall(r'data-delivery="', page.text)) == 2
    await eventually(lambda: len(receiver.calls.get(name, [])) == 2, what="the replayed test")
