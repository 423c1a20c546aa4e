"""Constants and the simulator handle shared by the Shopify integration tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from pikcel_sim.shopify import ShopifySimConfig, mint_session_token

API_KEY = "test-shopify-api-key"
API_SECRET = "test-shopify-api-secret-0123456789abcdef"
API_VERSION = "2025-10"

SHOPIFY_SIM_DEFAULTS: dict[str, Any] = {
    "api_key": API_KEY,
    "api_secret": API_SECRET,
    "seed": 7,
    "products_per_shop": 12,
    "media_processing_seconds": 0.5,
    "bucket_size": 5000.0,
    "restore_rate": 1000.0,
    "shops": ("demo-shop.myshopify.com",),
}


@dataclass
class ShopifySimHandle:
    url: str
    config: ShopifySimConfig
    admin: httpx.Client

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def api_secret(self) -> str:
        return self.config.api_secret

    def session_token(self, shop: str, **overrides: Any) -> str:
        return mint_session_token(shop, self.api_key, self.api_secret, **overrides)

    def counters(self) -> dict[str, Any]:
        return self.admin.get("/_sim/counters").raise_for_status().json()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self.admin.put("/_sim/faults", json=faults).raise_for_status().json()

    def clear_faults(self) -> None:
        self.admin.delete("/_sim/faults").raise_for_status()

    def product(self, shop: str, product_id: str) -> dict[str, Any]:
        return (
            self.admin.get(f"/_sim/shops/{shop}/products/{product_id.rsplit('/', 1)[-1]}")
            .raise_for_status()
            .json()
        )

    def files(self, shop: str) -> list[dict[str, Any]]:
        return self.admin.get(f"/_sim/shops/{shop}/files").raise_for_status().json()

    def send_webhook(self, **body: Any) -> dict[str, Any]:
        return self.admin.post("/_sim/webhooks/send", json=body).raise_for_status().json()
