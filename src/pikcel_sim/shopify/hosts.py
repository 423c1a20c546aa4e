"""Shop host names and Shopify's query-string HMAC (the simulator's own copy)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


def shop_from_host(host: str | None) -> str | None:
    """`name.myshopify.com` from a Host header (port stripped), or None."""
    if not host:
        return None
    name = host.strip().lower().rsplit(":", 1)[0] if ":" in host else host.strip().lower()
    return name if SHOP_DOMAIN.match(name) else None


def query_hmac(params: Iterable[tuple[str, str]], secret: str) -> str:
    """Hex HMAC-SHA256 over `k=v` pairs sorted by key and joined with `&` (hmac excluded)."""
    message = "&".join(
        f"{key}={value}"
        for key, value in sorted((k, v) for k, v in params if k not in ("hmac", "signature"))
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
