"""SSRF on the merchant's notification webhook (`notifications/tasks.send_webhook`): with
production settings a private, loopback, link-local or metadata target is refused for
good before any request, plain http too, and a redirect is never followed."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from pikcel_jobs.config import load_settings
from pikcel_jobs.net.fetch import FetchPolicy
from pikcel_jobs.notifications.models import NotificationDelivery
from pikcel_jobs.notifications.tasks import send_webhook

SETTINGS = load_settings(env="test", _env_file=None, session_secret="s")
SECRET = "whsec_dGVzdC1tZXJjaGFudC1zZWNyZXQ="


def delivery(target: str) -> NotificationDelivery:
    return NotificationDelivery(
        id="d-1", shop="a.myshopify.com", channel="webhook", kind="job.failed",
        dedupe_key="k", target=target, payload={"jobId": "j"},
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )  # fmt: skip


@pytest.mark.parametrize(
    "target",
    ["https://169.254.169.254/latest/meta-data/", "https://127.0.0.1:8443/hook",
     "https://[::1]/hook", "https://10.0.0.5/hook", "https://100.100.100.200/hook",
     "http://93.184.216.34/hook"],
)  # fmt: skip
async def test_private_and_plain_http_targets_are_refused_before_any_request(target: str) -> None:
    sent: list[str] = []
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: sent.append(str(r.url)) or httpx.Response(200))
    )
    async with http:
        outcome = await send_webhook(
            delivery(target), secret=SECRET, settings=SETTINGS, http=http, policy=FetchPolicy()
        )
    assert not outcome.ok and outcome.permanent, outcome
    assert sent == []


async def test_redirects_are_not_followed() -> None:
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(302, headers={"location": "https://169.254.169.254/latest/"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        outcome = await send_webhook(
            delivery("https://93.184.216.34/hook"), secret=SECRET, settings=SETTINGS, http=http,
            policy=FetchPolicy(),
        )  # fmt: skip
    assert not outcome.ok and "redirects are not followed" in (outcome.error or "")
    assert sent == ["https://93.184.216.34/hook"]
