"""Error mapping, merchant messages, retry-after parsing, response envelopes, models."""

from __future__ import annotations

import json
from email.utils import formatdate

import httpx
import pytest

from pikcel_jobs.pikcel import (
    Job,
    PikcelAPIError,
    PikcelAuthError,
    PikcelBadResponse,
    PikcelClient,
    PikcelInsufficientCredits,
    PikcelNetworkError,
    PikcelNotFound,
    PikcelRateLimited,
    PikcelServerError,
    PikcelValidationError,
    Profile,
    parse_retry_after,
)
from pikcel_jobs.pikcel.client import _envelope
from pikcel_jobs.pikcel.errors import api_error


@pytest.mark.parametrize(("status", "kind", "retryable"), [
    (400, PikcelValidationError, False), (401, PikcelAuthError, False),
    (402, PikcelInsufficientCredits, False), (403, PikcelAuthError, False),
    (404, PikcelNotFound, False), (408, PikcelAPIError, True),
    (422, PikcelValidationError, False), (429, PikcelRateLimited, True),
    (500, PikcelServerError, True), (503, PikcelServerError, True),
])
def test_api_error_mapping(status: int, kind: type, retryable: bool) -> None:
    exc = api_error(status, "CODE", "Something happened.", {"x": 1}, retry_after=2)
    assert type(exc) is kind and exc.retryable is retryable
    assert exc.status == status and exc.code == "CODE" and exc.details == {"x": 1}
    assert (str(exc) and "Something happened." in str(exc)) or status in (429,)
    assert "CODE" in repr(exc)


def test_messages_are_merchant_readable() -> None:
    assert "Top up" in str(api_error(402, "INSUFFICIENT_CREDITS", "Needs 2 credits."))
    assert "PIKCEL_API_KEY" in str(api_error(401, "UNAUTHORIZED", "Invalid API key."))
    assert "in 2 s" in str(api_error(429, "RATE_LIMITED", "slow down", retry_after=2))
    assert "refused" in str(api_error(400, "TOOL_NOT_FOUND", "Unknown tool."))
    assert "temporary" in str(api_error(502, "HTTP_502", "Bad gateway"))
    assert "in time" in str(PikcelNetworkError("ReadTimeout", timeout=True))
    assert "unreadable" in str(PikcelBadResponse("not JSON", 200))


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = 1_750_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0


def response(status: int, body: bytes | dict, headers: dict[str, str] | None = None
             ) -> httpx.Response:
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    return httpx.Response(status, content=content, headers=headers,
                          request=httpx.Request("GET", "http://pikcel.test/api/x"))


def test_envelopes() -> None:
    assert _envelope(response(200, {"success": True, "data": [1], "count": 1}))["count"] == 1
    for bad in (b"<html>", b'{"success": true, "data": ', b"", b"[]"):
        with pytest.raises(PikcelBadResponse) as info:
            _envelope(response(200, bad))
        assert info.value.code == "BAD_RESPONSE" and info.value.retryable
    with pytest.raises(PikcelBadResponse):
        _envelope(response(200, {"success": True}))
    with pytest.raises(PikcelBadResponse):
        _envelope(response(200, {"success": False, "data": None, "error": {}}))
    with pytest.raises(PikcelRateLimited) as limited:
        _envelope(response(429, {"success": False, "error": {"code": "RATE_LIMITED",
                                                             "message": "slow"}},
                           {"Retry-After": "7"}))
    assert limited.value.retry_after == 7
    with pytest.raises(PikcelServerError) as proxy:
        _envelope(response(502, b"<html>Bad Gateway</html>"))
    assert proxy.value.code == "HTTP_502" and "Bad Gateway" in proxy.value.message
    with pytest.raises(PikcelNotFound) as missing:
        _envelope(response(404, {"success": False, "error": {"code": "JOB_NOT_FOUND",
                                                             "message": "nope",
                                                             "details": {"job_id": "j"}}}))
    assert missing.value.details == {"job_id": "j"}


def test_job_tolerates_unknown_fields_and_missing_progress() -> None:
    job = Job.model_validate({"id": "job_1", "tool_id": "t", "status": "processing",
                              "brand_new_field": {"a": 1}, "created_at": "2025-01-01T00:00:00Z"})
    assert job.progress is None and not job.is_terminal
    assert job.model_extra == {"brand_new_field": {"a": 1}}
    assert Job.model_validate({"id": "j", "tool_id": "t", "status": "cancelled"}).is_terminal
    with pytest.raises(ValueError):
        Job.model_validate({"id": "j", "tool_id": "t", "status": "exploded"})
    profile = Profile.model_validate({"id": "u", "credits_balance": 5, "subscription": None})
    assert profile.subscription is None and profile.credits_balance == 5


def test_client_rejects_bad_settings_and_normalises_the_url() -> None:
    with pytest.raises(ValueError):
        PikcelClient("http://x", "k", max_attempts=0)
    client = PikcelClient("http://pikcel.test/api/", "k")
    assert client.base_url == "http://pikcel.test"


def test_retry_delays() -> None:
    client = PikcelClient("http://pikcel.test", "k", backoff_base=0.1, backoff_max=1)
    busy = api_error(503, "BUSY", "busy", retry_after=2)
    assert client._retry_delay(busy, 1, retry_500=False) >= 2
    assert 0.05 <= client._retry_delay(api_error(502, "X", "x"), 1, retry_500=False) <= 0.1
    assert client._retry_delay(api_error(502, "X", "x"), 9, retry_500=False) <= 1
    assert client._retry_delay(api_error(500, "X", "x"), 1, retry_500=False) is None
    assert client._retry_delay(api_error(500, "X", "x"), 1, retry_500=True) is not None
    assert client._retry_delay(api_error(404, "X", "x"), 1, retry_500=True) is None
    limited = api_error(429, "RATE_LIMITED", "slow", retry_after=1.5)
    assert 1.5 <= client._retry_delay(limited, 1, retry_500=False) <= 1.75
    assert client._retry_delay(PikcelBadResponse("x", 200), 1, retry_500=False) is None
    assert client._retry_delay(PikcelNetworkError("x"), 1, retry_500=False) is not None


def test_the_proxy_comes_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "pikcel.internal")
    assert PikcelClient("https://api.pikcel.test", "k")._proxy == "http://proxy.internal:3128"
    assert PikcelClient("https://pikcel.internal", "k")._proxy is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert PikcelClient("https://api.pikcel.test", "k")._proxy is None
