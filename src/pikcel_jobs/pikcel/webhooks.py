"""Verification and parsing of PikcelAI webhooks (DESIGN §3).

Two signature schemes arrive at once:

* Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds) and
  `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (several
  space-separated signatures may be sent during a key rotation; one match is enough);
* legacy: `X-Pikcel-Signature: <hex HMAC-SHA256 of the body>`.

When the Standard headers are present they decide (and their timestamp must be within
`tolerance` seconds either way, which is what stops a replay); a delivery carrying only
the legacy header is checked against it. Repeated `webhook-id`s are the caller's to
detect (the service keeps them in its database).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from pydantic import ValidationError

from .schemas import WebhookEvent

DEFAULT_TOLERANCE = 300


class WebhookVerificationError(Exception):
    """The delivery is not authentic or not fresh; `reason` says why (answer 401/400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookPayloadError(ValueError):
    """The body is not a PikcelAI webhook event (answer 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signing_key(secret: str) -> bytes:
    """`whsec_<base64>` -> the decoded key bytes; any other secret -> its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError(
                "the webhook secret starts with whsec_ but the rest is not valid base64"
            ) from None
    return secret.encode("utf-8")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
    allow_legacy: bool = True,
) -> None:
    """Return if the delivery is authentic and fresh; raise WebhookVerificationError if not."""
    if not secret:
        raise WebhookVerificationError("no webhook secret is configured (PIKCEL_WEBHOOK_SECRET)")
    key = signing_key(secret)
    h = _lower(headers)
    signatures = h.get("webhook-signature")
    if signatures is not None:
        _verify_standard(h, signatures, body, key, time.time() if now is None else now, tolerance)
        return
    legacy = h.get("x-pikcel-signature")
    if legacy is None:
        raise WebhookVerificationError(
            "no signature: neither webhook-signature nor X-Pikcel-Signature is present"
        )
    if not allow_legacy:
        raise WebhookVerificationError("legacy X-Pikcel-Signature deliveries are not accepted")
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(legacy.strip().lower().encode(), expected.encode()):
        raise WebhookVerificationError("X-Pikcel-Signature does not match the body")


def _verify_standard(
    h: dict[str, str], signatures: str, body: bytes, key: bytes, now: float, tolerance: int
) -> None:
    msg_id = h.get("webhook-id")
    stamp = h.get("webhook-timestamp")
    if not msg_id:
        raise WebhookVerificationError("webhook-signature is present but webhook-id is missing")
    if not stamp:
        raise WebhookVerificationError(
            "webhook-signature is present but webhook-timestamp is missing"
        )
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        raise WebhookVerificationError(
            f"webhook-timestamp is not unix seconds: {stamp[:40]!r}"
        ) from None
    if timestamp < now - tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is too old ({int(now - timestamp)} s ago; limit {tolerance} s)"
        )
    if timestamp > now + tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is in the future ({int(timestamp - now)} s ahead; "
            f"limit {tolerance} s)"
        )
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    seen_v1 = False
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version != "v1" or not value:
            continue
        seen_v1 = True
        if hmac.compare_digest(value.encode(), expected):
            return
    if not seen_v1:
        raise WebhookVerificationError("webhook-signature carries no v1 signature")
    raise WebhookVerificationError("no v1 signature in webhook-signature matches the body")


def parse_webhook(body: bytes | str) -> WebhookEvent:
    """The event in a (verified) delivery body; WebhookPayloadError if it is not one."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookPayloadError(f"the body is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise WebhookPayloadError("the body is not a JSON object")
    try:
        event = WebhookEvent.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise WebhookPayloadError(f"{where}: {first['msg']}") from None
    if event.job_id != event.job.id:
        raise WebhookPayloadError(f"job_id {event.job_id!r} does not match job.id {event.job.id!r}")
    return event
