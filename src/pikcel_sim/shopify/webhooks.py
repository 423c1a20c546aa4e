"""Outgoing webhooks, signed as Shopify signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from .store import SimState, stable_int

TOPICS = ("app/uninstalled", "customers/data_request", "customers/redact", "shop/redact")
DEFAULT_API_VERSION = "2025-10"


def sign_body(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shop_id(state: SimState, domain: str) -> int:
    shop = state.shops.get(domain)
    if shop is not None:
        return shop.id
    return 60_000_000_000 + stable_int(state.config.seed, domain, modulo=90_000) + 10_000


def default_payload(state: SimState, domain: str, topic: str) -> dict[str, Any]:
    """A payload shaped like Shopify's for `topic` (ids stable for the shop)."""
    sid = shop_id(state, domain)
    name = domain.removesuffix(".myshopify.com")
    customer = {
        "id": sid % 1_000_000 * 7 + 1,
        "email": f"customer@{name}.example",
        "phone": "+15555550123",
    }
    if topic == "app/uninstalled":
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return {
            "id": sid,
            "name": name.replace("-", " ").title(),
            "email": f"owner@{domain}",
            "domain": domain,
            "myshopify_domain": domain,
            "province": None,
            "country": "US",
            "currency": "USD",
            "plan_name": "basic",
            "plan_display_name": "Basic",
            "shop_owner": "Demo Merchant",
            "iana_timezone": "America/New_York",
            "created_at": now,
            "updated_at": now,
        }
    if topic == "customers/data_request":
        return {
            "shop_id": sid,
            "shop_domain": domain,
            "orders_requested": [],
            "customer": customer,
            "data_request": {"id": sid % 100_000 + 9},
        }
    if topic == "customers/redact":
        return {"shop_id": sid, "shop_domain": domain, "customer": customer, "orders_to_redact": []}
    if topic == "shop/redact":
        return {"shop_id": sid, "shop_domain": domain}
    return {"shop_id": sid, "shop_domain": domain}


async def send_webhook(
    state: SimState,
    *,
    shop: str,
    topic: str,
    address: str,
    payload: dict[str, Any] | None = None,
    api_version: str = DEFAULT_API_VERSION,
    secret: str | None = None,
    timeout_seconds: float = 5.0,
) -> dict[str, Any]:
    """POST one delivery to `address`; returns what happened."""
    body = json.dumps(
        payload if payload is not None else default_payload(state, shop, topic),
        separators=(",", ":"),
    ).encode()
    webhook_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Shopify-Captain-Hook",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_body(body, secret or state.config.api_secret),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "X-Shopify-API-Version": api_version,
    }
    state.count("webhooks", topic)
    if topic == "app/uninstalled":
        # Shopify revokes the app's tokens when the merchant uninstalls it.
        with state.lock:
            for token, record in list(state.access_tokens.items()):
                if record.shop == shop:
                    del state.access_tokens[token]
            for refresh in state.refresh_tokens.values():
                if refresh.shop == shop:
                    refresh.used = True
    try:
        async with httpx.AsyncClient(timeout=timeout_seconds) as client:
            response = await client.post(address, content=body, headers=headers)
        return {
            "delivered": True,
            "status": response.status_code,
            "webhook_id": webhook_id,
            "response": response.text[:2000],
        }
    except httpx.HTTPError as exc:
        return {
            "delivered": False,
            "status": None,
            "webhook_id": webhook_id,
            "error": f"{type(exc).__name__}: {exc}",
        }
