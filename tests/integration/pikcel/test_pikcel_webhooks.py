"""The simulator's webhook deliveries, checked with the client's own `verify_webhook`."""

from __future__ import annotations

import asyncio

import pytest
from pikcel_support import (
    WEBHOOK_SECRET,
    Delivery,
    Origin,
    Receiver,
    SimHandle,
    red_square_on_blue,
    wait_until,
)

from pikcel_jobs.pikcel import (
    PikcelClient,
    WebhookVerificationError,
    parse_webhook,
    verify_webhook,
)

ALL_EVENTS = ["job.started", "job.progress", "job.progress", "job.progress", "job.progress",
              "job.completed"]


def events(deliveries: list[Delivery]) -> list[str]:
    return [parse_webhook(d.body).event for d in deliveries]


def verifies(delivery: Delivery, secret: str = WEBHOOK_SECRET) -> bool:
    try:
        verify_webhook(delivery.headers, delivery.body, secret)
    except WebhookVerificationError:
        return False
    return True


async def dispatch_with_hook(client: PikcelClient, origin: Origin, receiver: Receiver,
                             tool: str = "convert-webp") -> str:
    job = await client.dispatch(tool, origin.add_image("wh.png", red_square_on_blue()),
                                webhook_url=receiver.url)
    return job.id


async def wait_for_event(receiver: Receiver, event: str, count: int = 1,
                         within: float = 5.0) -> list[Delivery]:
    return await wait_until(
        lambda: (found := [d for d in receiver.all() if parse_webhook(d.body).event == event])
        and len(found) >= count and found,
        within, f"{count} x {event}",
    )


@pytest.mark.parametrize("secret", [WEBHOOK_SECRET, "a plain shared secret"])
async def test_every_transition_is_delivered_signed_both_ways(
    client: PikcelClient, sim: SimHandle, origin: Origin, receiver: Receiver, secret: str,
) -> None:
    sim.reset(webhook_secret=secret)
    job_id = await dispatch_with_hook(client, origin, receiver)
    await wait_for_event(receiver, "job.completed")
    delivered = receiver.all()
    assert events(delivered) == ALL_EVENTS
    assert len({d.webhook_id for d in delivered}) == len(delivered)
    progress = []
    for delivery in delivered:
        verify_webhook(delivery.headers, delivery.body, secret)
        standard_only = {k: v for k, v in delivery.headers.items() if k != "x-pikcel-signature"}
        verify_webhook(standard_only, delivery.body, secret)
        legacy_only = {k: v for k, v in delivery.headers.items() if not k.startswith("webhook-")}
        verify_webhook(legacy_only, delivery.body, secret)
        assert delivery.headers["webhook-signature"].startswith("v1,")
        assert len(delivery.headers["x-pikcel-signature"]) == 64
        event = parse_webhook(delivery.body)
        assert event.job_id == job_id == event.job.id and event.timestamp is not None
        progress.append(event.job.progress)
    assert progress == [10, 30, 50, 70, 90, 100]
    completed = parse_webhook(delivered[-1].body).job
    assert completed.status == "completed" and completed.output_image_url
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(delivered[0].headers, delivered[0].body, "some other secret")
    assert "no v1 signature" in info.value.reason


async def test_tampered_body_fails(client: PikcelClient, sim: SimHandle, origin: Origin,
                                   receiver: Receiver) -> None:
    await dispatch_with_hook(client, origin, receiver)
    delivery = (await wait_for_event(receiver, "job.completed"))[0]
    tampered = delivery.body.replace(b'"completed"', b'"failed"', 1)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(delivery.headers, tampered, WEBHOOK_SECRET)
    legacy_only = {"X-Pikcel-Signature": delivery.headers["x-pikcel-signature"]}
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(legacy_only, tampered, WEBHOOK_SECRET)
    assert "X-Pikcel-Signature" in info.value.reason


async def test_stale_or_future_timestamps_fail(client: PikcelClient, sim: SimHandle,
                                               origin: Origin, receiver: Receiver) -> None:
    await dispatch_with_hook(client, origin, receiver)
    delivery = (await wait_for_event(receiver, "job.started"))[0]
    sent = int(delivery.headers["webhook-timestamp"])
    verify_webhook(delivery.headers, delivery.body, WEBHOOK_SECRET, now=sent + 299)
    with pytest.raises(WebhookVerificationError) as old:
        verify_webhook(delivery.headers, delivery.body, WEBHOOK_SECRET, now=sent + 301)
    assert "too old" in old.value.reason
    with pytest.raises(WebhookVerificationError) as future:
        verify_webhook(delivery.headers, delivery.body, WEBHOOK_SECRET, now=sent - 301)
    assert "future" in future.value.reason


async def test_corrupted_signatures_fail_and_are_redelivered_until_given_up(
    client: PikcelClient, sim: SimHandle, origin: Origin, receiver: Receiver,
) -> None:
    sim.faults(webhook_corrupt_rate=1.0)
    receiver.rule = lambda headers, body: None if verifies(
        Delivery(headers, body, 0, 0)) else 401
    await dispatch_with_hook(client, origin, receiver)
    await wait_until(lambda: sim.counters()["webhooks"]["gave_up"] == 6, 5, "give-ups")
    delivered = receiver.all()
    assert delivered and all(d.status == 401 for d in delivered)
    assert len(delivered) == 6 * 3  # every event, max_attempts times
    for delivery in delivered:
        legacy_only = {"x-pikcel-signature": delivery.headers["x-pikcel-signature"]}
        with pytest.raises(WebhookVerificationError):
            verify_webhook(legacy_only, delivery.body, WEBHOOK_SECRET)
    by_id: dict[str, list[int]] = {}
    for delivery in delivered:
        by_id.setdefault(delivery.webhook_id, []).append(int(delivery.headers["webhook-attempt"]))
    assert all(sorted(attempts) == [1, 2, 3] for attempts in by_id.values())


async def test_redelivery_after_a_500_keeps_the_webhook_id(
    client: PikcelClient, sim: SimHandle, origin: Origin, receiver: Receiver,
) -> None:
    failed_once: set[str] = set()

    def fail_first_completed(headers: dict[str, str], body: bytes) -> int | None:
        if parse_webhook(body).event == "job.completed" and not failed_once:
            failed_once.add(headers["webhook-id"])
            return 500
        return None

    receiver.rule = fail_first_completed
    await dispatch_with_hook(client, origin, receiver)
    completed = await wait_for_event(receiver, "job.completed", count=2)
    assert [d.status for d in completed] == [500, 204]
    assert completed[0].webhook_id == completed[1].webhook_id == next(iter(failed_once))
    assert [d.headers["webhook-attempt"] for d in completed] == ["1", "2"]
    assert completed[0].body == completed[1].body
    assert all(verifies(d) for d in completed)
    counters = sim.counters()["webhooks"]
    assert counters["failed"] == 1 and counters["delivered"] == 6


async def test_unreachable_receiver_is_retried_then_given_up(
    client: PikcelClient, sim: SimHandle, origin: Origin,
) -> None:
    job = await client.dispatch("convert-webp", origin.add_image("wh2.png", red_square_on_blue()),
                                webhook_url="http://127.0.0.1:9/hook")
    await sim.wait_job(job.id, "completed")
    await wait_until(lambda: sim.counters()["webhooks"]["gave_up"] == 6, 5, "give-ups")
    log = sim.webhook_log()
    assert len(log) == 18 and all(entry["status"] is None and entry["error"] for entry in log)


async def test_duplicate_deliveries_share_a_webhook_id(
    client: PikcelClient, sim: SimHandle, origin: Origin, receiver: Receiver,
) -> None:
    sim.faults(webhook_duplicate_rate=1.0)
    await dispatch_with_hook(client, origin, receiver)
    await wait_for_event(receiver, "job.completed", count=2)
    delivered = receiver.all()
    ids = [d.webhook_id for d in delivered]
    assert len(ids) == 12 and all(ids.count(i) == 2 for i in ids)
    assert all(verifies(d) for d in delivered)


async def test_reordered_deliveries_arrive_out_of_order(
    client: PikcelClient, sim: SimHandle, origin: Origin, receiver: Receiver,
) -> None:
    sim.faults(webhook_reorder_rate=1.0, webhook_reorder_hold_seconds=0.5)
    await dispatch_with_hook(client, origin, receiver)
    await wait_until(lambda: len(receiver.all()) == 6, 5, "six deliveries")
    arrived = events(receiver.all())
    assert sorted(arrived) == sorted(ALL_EVENTS)
    assert arrived != ALL_EVENTS
    assert arrived.index("job.completed") < arrived.index("job.started") or \
        arrived[-1] != "job.completed"
    progress = [parse_webhook(d.body).job.progress or 0 for d in receiver.all()]
    assert progress != sorted(progress)  # a later state arrived before an earlier one
    assert all(verifies(d) for d in receiver.all())


async def test_no_webhooks_when_sending_is_off(
    client: PikcelClient, sim: SimHandle, origin: Origin, receiver: Receiver,
) -> None:
    sim.reset(send_webhooks=False)
    job_id = await dispatch_with_hook(client, origin, receiver)
    await sim.wait_job(job_id, "completed")
    await asyncio.sleep(0.1)
    assert receiver.all() == [] and sim.counters()["webhooks"]["sent"] == 0


async def test_cancel_and_failure_events(
    client: PikcelClient, sim: SimHandle, origin: Origin, receiver: Receiver,
) -> None:
    sim.configure(auto_progress=False)
    cancelled = await dispatch_with_hook(client, origin, receiver)
    await client.cancel_job(cancelled)
    failed = await dispatch_with_hook(client, origin, receiver)
    sim.force(failed, "fail", error_message="model crashed")
    await wait_until(lambda: len(receiver.all()) == 3, 5, "three deliveries")
    parsed = [parse_webhook(d.body) for d in receiver.all()]
    assert [(e.event, e.job_id) for e in parsed] == [
        ("job.cancelled", cancelled), ("job.started", failed), ("job.failed", failed)]
    assert parsed[0].job.status == "cancelled"
    assert parsed[2].job.status == "failed" and parsed[2].job.error_message == "model crashed"
