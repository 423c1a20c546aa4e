"""Settings of the Shopify simulator."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Used when SHOPIFY_API_KEY / SHOPIFY_API_SECRET are not set, so `sim shopify` starts
# on a bare machine. The service must then be given the same pair.
DEMO_API_KEY = "pikcel-demo-api-key"
DEMO_API_SECRET = "pikcel-demo-api-secret-not-for-production"

DEFAULT_SCOPES = "read_products,write_products,read_files,write_files"


def _env(name: str, fallback: str) -> str:
    return os.environ.get(name) or fallback


@dataclass
class ShopifySimConfig:
    """Everything the simulator can be told; every field has a demo-friendly default."""

    api_key: str = field(default_factory=lambda: _env("SHOPIFY_API_KEY", DEMO_API_KEY))
    api_secret: str = field(default_factory=lambda: _env("SHOPIFY_API_SECRET", DEMO_API_SECRET))
    # Previous app secret still accepted for session tokens during a rotation.
    old_api_secret: str | None = None
    # The sim's own reachable base URL (CDN and staged-upload URLs). None: taken from
    # the listening socket of each request (http://127.0.0.1:{port}).
    public_url: str | None = None
    seed: int = 1
    # Per-shop leaky bucket (GraphQL cost points) and the single-query cost cap.
    bucket_size: float = 1000.0
    restore_rate: float = 50.0
    max_query_cost: int = 1000
    # Seconds a new media spends UPLOADED/PROCESSING before READY or FAILED.
    media_processing_seconds: float = 2.0
    # Token exchange / OAuth for any well-formed *.myshopify.com creates that shop.
    auto_create_shops: bool = True
    shops: tuple[str, ...] = ("demo-shop.myshopify.com",)
    products_per_shop: int = 36
    scopes: str = DEFAULT_SCOPES
    # Lifetimes, as Shopify's expiring offline tokens (1 h access, 90 days refresh).
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 90 * 24 * 3600
    online_token_ttl: int = 24 * 3600
    # Leeway for session-token exp/nbf, as Shopify.
    session_token_leeway: int = 10
    # Timeout for fetching an external originalSource (not staged, not our CDN).
    fetch_timeout: float = 10.0
