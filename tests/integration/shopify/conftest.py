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
from typing import Any

import httpx
import pytest
from shopify_support import (
    API_KEY,
    API_SECRET,
    API_VERSION,
    SHOPIFY_SIM_DEFAULTS,
    ShopifySimHandle,
)

from pikcel_jobs.shopify.auth import AccessToken, exchange_token
from pikcel_jobs.shopify.graphql import ShopifyGraphQL, ThrottlePacer
from pikcel_jobs.shopify.transport import make_async_client
from pikcel_sim.serve import ThreadedServer
from pikcel_sim.shopify import ShopifySimConfig, create_app


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
        shop_domain,
        shopify_sim.session_token(shop_domain),
        api_key=API_KEY,
        api_secret=API_SECRET,
        http_client=shopify_http,
    )


@pytest.fixture
def gql(
    shop_domain: str, access_token: AccessToken, shopify_http: httpx.AsyncClient
) -> ShopifyGraphQL:
    return ShopifyGraphQL(
        shop_domain, access_token.access_token, API_VERSION, shopify_http, pacer=ThrottlePacer()
    )
