"""`verify_webhook` / `parse_webhook` on hand-made deliveries (both schemes, both secret forms)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from pikcel_jobs.pikcel import (
    WebhookPayloadError,
    WebhookVerificationError,
    parse_webhook,
    verify_webhook,
)
from pikcel_jobs.pikcel.webhooks import signing_key

KEY = b"\x00\x01binary key bytes\xff"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_750_000_000
JOB = {"id": "job_1", "tool_id": "upscale-2x", "status": "completed", "progress": 100}
BODY = json.dumps({"event": "job.completed", "job_id": "job_1", "job": JOB,
                   "timestamp": "2025-06-15T12:00:00Z"}).encode()


def standard(key: bytes, body: bytes = BODY, msg_id: str = "msg_1", ts: int = NOW) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(key: bytes = KEY, **overrides: str) -> dict[str, str]:
    found = {
        "webhook-id": "msg_1", "webhook-timestamp": str(NOW),
        "webhook-signature": standard(key),
        "X-Pikcel-Signature": hmac.new(key, BODY, hashlib.sha256).hexdigest(),
    }
    found.update(overrides)
    return found


def reason(hdrs: dict[str, str], body: bytes = BODY, secret: str = WHSEC, **kw: object) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(hdrs, body, secret, now=NOW, **kw)  # type: ignore[arg-type]
    return info.value.reason


def test_signing_key_forms() -> None:
    assert signing_key(WHSEC) == KEY
    assert signing_key("plain") == b"plain"
    with pytest.raises(WebhookVerificationError, match="base64"):
        signing_key("whsec_***")


def test_both_schemes_and_both_secret_forms_verify() -> None:
    verify_webhook(headers(), BODY, WHSEC, now=NOW)
    plain = b"just a secret"
    verify_webhook(headers(plain), BODY, "just a secret", now=NOW)
    legacy_only = {"X-Pikcel-Signature": headers()["X-Pikcel-Signature"]}
    verify_webhook(legacy_only, BODY, WHSEC, now=NOW + 10**6)  # no timestamp to check
    upper = {k.upper(): v for k, v in headers().items()}
    verify_webhook(upper, BODY, WHSEC, now=NOW)


def test_any_of_several_v1_signatures_may_match() -> None:
    rotated = f"v1,{base64.b64encode(b'x' * 32).decode()} v2,zzz {standard(KEY)}"
    verify_webhook(headers(**{"webhook-signature": rotated}), BODY, WHSEC, now=NOW)
    assert "no v1 signature" in reason(headers(**{"webhook-signature": "v2,abc"}))


def test_wrong_key_or_tampered_body_fail() -> None:
    assert "matches" in reason(headers(b"another key"))
    assert "matches" in reason(headers(), BODY + b" ")
    legacy_only = {"x-pikcel-signature": headers()["X-Pikcel-Signature"]}
    assert "does not match" in reason(legacy_only, BODY + b" ")
    assert "no signature" in reason({})
    assert "not accepted" in reason(legacy_only, allow_legacy=False)


def test_the_standard_scheme_decides_when_present() -> None:
    """A good legacy signature cannot rescue a stale or bad Standard one (replays)."""
    stale = headers(**{"webhook-timestamp": str(NOW - 301)})
    assert "too old" in reason(stale)
    bad = headers(**{"webhook-signature": "v1,AAAA"})
    assert "matches" in reason(bad)


def test_timestamp_window() -> None:
    for ts in (NOW - 300, NOW + 300):
        hdrs = headers(**{"webhook-timestamp": str(ts), "webhook-signature": standard(KEY, ts=ts)})
        verify_webhook(hdrs, BODY, WHSEC, now=NOW)
    old = NOW - 301
    hdrs = headers(**{"webhook-timestamp": str(old), "webhook-signature": standard(KEY, ts=old)})
    assert "too old" in reason(hdrs)
    new = NOW + 301
    hdrs = headers(**{"webhook-timestamp": str(new), "webhook-signature": standard(KEY, ts=new)})
    assert "future" in reason(hdrs)
    verify_webhook(hdrs, BODY, WHSEC, now=NOW, tolerance=400)
    assert "unix seconds" in reason(headers(**{"webhook-timestamp": "yesterday"}))


def test_missing_parts_are_named() -> None:
    no_id = headers()
    del no_id["webhook-id"]
    assert "webhook-id is missing" in reason(no_id)
    no_ts = headers()
    del no_ts["webhook-timestamp"]
    assert "webhook-timestamp is missing" in reason(no_ts)
    assert "no webhook secret" in reason(headers(), secret="")


def test_parse_webhook() -> None:
    event = parse_webhook(BODY)
    assert event.event == "job.completed" and event.job.status == "completed"
    assert event.job_id == event.job.id == "job_1" and event.timestamp is not None
    assert parse_webhook(BODY.decode()).job.progress == 100
    new_kind = json.dumps({"event": "job.queued", "job_id": "job_1",
                           "job": {**JOB, "status": "pending", "extra": 1}}).encode()
    assert parse_webhook(new_kind).event == "job.queued"  # unknown events still parse
    for bad, why in [
        (b"{", "not JSON"), (b"[]", "not a JSON object"),
        (json.dumps({"event": "job.completed", "job_id": "job_1"}).encode(), "job"),
        (json.dumps({"event": "job.completed", "job_id": "job_2", "job": JOB}).encode(),
         "does not match"),
        (json.dumps({"event": "x", "job_id": "job_1", "job": {**JOB, "status": "odd"}}).encode(),
         "job.status"),
    ]:
        with pytest.raises(WebhookPayloadError) as info:
            parse_webhook(bad)
        assert why in info.value.reason
