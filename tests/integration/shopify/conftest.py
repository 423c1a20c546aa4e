"""The Shopify simulator on a real loopback port, and our clients pointed at it.

Fixtures:
* `start_shopify_sim(**config)`: a fresh simulator (stopped after the test) with
  `SHOPIFY_SIM_DEFAULTS` overridden; returns a `ShopifySimHandle`;
* `shopify_sim`: one shared simulator for the session (big bucket, fast media);
* `shop_domain`: a fresh `*.myshopify.com` per test (auto-created by token exchange);
* `shopify_http`: an httpx.AsyncClient whose https requests go to `shopify_sim`;
* `access_token`: an expiring offline token for `shop_domain` (via token exchange);
* `gql`: a `ShopifyGraphQL` for `shop_domain` with its own pacer.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pikcel_jobs.shopify.auth import AccessToken, exchange_token
from pikcel_jobs.shopify.graphql import ShopifyGraphQL, ThrottlePacer
from pikcel_jobs.shopify.transport import make_async_client
from pikcel_sim.serve import ThreadedServer
from pikcel_sim.shopify import ShopifySimConfig, create_app, mint_session_token

API_KEY = "test-shopify-api-key"
API_SECRET = "test-shopify-api-secret-0123456789abcdef"
API_VERSION = "2025-10"

SHOPIFY_SIM_DEFAULTS: dict[str, Any] = {
    "api_key": API_KEY,
    "api_secret": API_SECRET,
    "seed": 7,
    "products_per_shop": 12,
    "media_processing_seconds": 0.3,
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
        return self.admin.get(f"/_sim/shops/{shop}/products/{product_id.rsplit('/', 1)[-1]}") \
            .raise_for_status().json()

    def files(self, shop: str) -> list[dict[str, Any]]:
        return self.admin.get(f"/_sim/shops/{shop}/files").raise_for_status().json()

    def send_webhook(self, **body: Any) -> dict[str, Any]:
        return self.admin.post("/_sim/webhooks/send", json=body).raise_for_status().json()


@pytest.fixture
def start_shopify_sim() -> Iterator[Callable[..., ShopifySimHandle]]:
    started: list[tuple[ThreadedServer, httpx.Client]] = []

    def start(**overrides: Any) -> ShopifySimHandle:
        config = ShopifySimConfig(**{**SHOPIFY_SIM_DEFAULTS, **overrides})
        server = ThreadedServer(create_app(config)).start()
        admin = httpx.Client(base_url=server.url, timeout=10)
        started.append((server, admin))
        return ShopifySimHandle(server.url, config, admin)

    yield start
    for server, admin in started:
        admin.close()
        server.stop()


@pytest.fixture(scope="session")
def shopify_sim() -> Iterator[ShopifySimHandle]:
    config = ShopifySimConfig(**SHOPIFY_SIM_DEFAULTS)
    server = ThreadedServer(create_app(config)).start()
    with httpx.Client(base_url=server.url, timeout=10) as admin:
        yield ShopifySimHandle(server.url, config, admin)
    server.stop()


@pytest.fixture
def shop_domain() -> str:
    return f"sim-{secrets.token_hex(5)}.myshopify.com"


@pytest.fixture
async def shopify_http(shopify_sim: ShopifySimHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with make_async_client(shopify_sim.url) as client:
        yield client


@pytest.fixture
async def access_token(
    shopify_sim: ShopifySimHandle, shop_domain: str, shopify_http: httpx.AsyncClient
) -> AccessToken:
    return await exchange_token(
        shop_domain, shopify_sim.session_token(shop_domain), api_key=API_KEY,
        api_secret=API_SECRET, http_client=shopify_http,
    )


@pytest.fixture
def gql(
    shop_domain: str, access_token: AccessToken, shopify_http: httpx.AsyncClient
) -> ShopifyGraphQL:
    return ShopifyGraphQL(shop_domain, access_token.access_token, API_VERSION, shopify_http,
                          pacer=ThrottlePacer())
