"""Shop domain validation."""

from __future__ import annotations

import re

from .errors import InvalidShopDomain

SHOP_DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


def is_valid_shop_domain(shop: str | None) -> bool:
    return bool(shop) and SHOP_DOMAIN_RE.match(str(shop)) is not None


def validate_shop_domain(shop: str | None) -> str:
    """`shop` lower-cased and stripped when it is `name.myshopify.com`; else raises."""
    candidate = (shop or "").strip().lower()
    if not SHOP_DOMAIN_RE.match(candidate):
        raise InvalidShopDomain(f"not a myshopify.com shop domain: {shop!r}")
    return candidate
