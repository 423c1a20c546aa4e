"""Verifying Shopify webhooks (`X-Shopify-Hmac-Sha256`) and reading their headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from .hosts import validate_shop_domain

TOPICS = frozenset({"app/uninstalled", "customers/data_request", "customers/redact", "shop/redact"})


def compute_webhook_hmac(body: bytes, secret: str) -> str:
    """Base64 HMAC-SHA256 of the raw body, as Shopify signs it."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_shopify_webhook(body: bytes, hmac_header: str | None, secrets: Sequence[str]) -> bool:
    """True when `hmac_header` signs `body` with one of `secrets` (current and previous
    during a rotation). Constant-time; checks every secret."""
    if not hmac_header:
        return False
    received = hmac_header.strip().encode()
    ok = False
    for secret in secrets:
        if secret and hmac.compare_digest(compute_webhook_hmac(body, secret).encode(), received):
            ok = True
    return ok


class ShopifyWebhookHeaders(BaseModel):
    """The headers of a delivery; `webhook_id` is the key to dedupe on."""

    model_config = ConfigDict(frozen=True)

    topic: str
    shop_domain: str
    webhook_id: str
    triggered_at: datetime | None = None
    api_version: str | None = None
    event_id: str | None = None
    hmac: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ShopifyWebhookHeaders:
        """Read from any case-insensitive mapping (Starlette or httpx headers, or a dict).

        Raises ValueError when topic, shop domain or webhook id is missing or malformed.
        """
        lower = {k.lower(): v for k, v in headers.items()}

        def get(name: str) -> str | None:
            value = lower.get(f"x-shopify-{name}") or lower.get(f"shopify-{name}")
            return value.strip() if value else None

        topic, shop, webhook_id = get("topic"), get("shop-domain"), get("webhook-id")
        if not topic or not shop or not webhook_id:
            raise ValueError(
                "missing X-Shopify-Topic, X-Shopify-Shop-Domain or X-Shopify-Webhook-Id"
            )
        triggered = get("triggered-at")
        when = None
        if triggered:
            try:
                when = datetime.fromisoformat(triggered.replace("Z", "+00:00"))
            except ValueError:
                when = None
        return cls(
            topic=topic,
            shop_domain=validate_shop_domain(shop),
            webhook_id=webhook_id,
            triggered_at=when,
            api_version=get("api-version"),
            event_id=get("event-id"),
            hmac=get("hmac-sha256"),
        )
