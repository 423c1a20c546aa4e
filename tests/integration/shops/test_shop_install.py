"""Non-embedded install over loopback: /auth/install → the Shopify simulator's consent
screen → /auth/callback (HMAC, state, age checked) → token stored, session cookie,
/app. Tampered callbacks are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.shopify.transport import make_async_client
from pikcel_jobs.shops.auth import SESSION_COOKIE
from pikcel_jobs.shops.install import STATE_COOKIE
from pikcel_sim.serve import ThreadedServer, free_port
from pikcel_sim.shopify import ShopifySimConfig
from pikcel_sim.shopify import create_app as create_shopify_sim


@dataclass
class Servers:
    app_url: str
    shopify_url: str


@pytest.fixture(scope="module")
def servers(app_settings: Settings) -> Iterator[Servers]:
    config = ShopifySimConfig(
        api_key=app_settings.shopify_api_key,
        api_secret=app_settings.shopify_api_secret.get_secret_value(),
        seed=3, products_per_shop=5, shops=(),
    )  # fmt: skip
    sim = ThreadedServer(create_shopify_sim(config)).start()
    port = free_port()
    settings = app_settings.model_copy(
        update={"shopify_connect_url": sim.url, "app_url": f"http://127.0.0.1:{port}"}
    )
    app = ThreadedServer(create_app(settings), port=port).start()
    try:
        yield Servers(app.url, sim.url)
    finally:
        app.stop()
        sim.stop()


@pytest_asyncio.fixture
async def browser(servers: Servers) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=servers.app_url, timeout=30) as client:
        yield client


async def consent(servers: Servers, browser: httpx.AsyncClient, shop: str) -> str:
    """Start the install; Shopify (the simulator) approves and sends us back: the
    callback URL with its signed query."""
    start = await browser.get("/auth/install", params={"shop": shop})
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"https://{shop}/admin/oauth/authorize?")
    assert STATE_COOKIE in start.headers["set-cookie"]
    async with make_async_client(servers.shopify_url) as shopify:
        approved = await shopify.get(authorize)
    assert approved.status_code == 302
    callback = approved.headers["location"]
    assert callback.startswith(f"{servers.app_url}/auth/callback?")
    return callback


async def test_install_round_trip(servers: Servers, browser: httpx.AsyncClient, shop: str) -> None:
    callback = await consent(servers, browser, shop)
    done = await browser.get(callback)
    assert done.status_code == 302 and done.headers["location"] == "/app"
    assert SESSION_COOKIE in browser.cookies
    products = await browser.get("/api/products")  # signed in by our cookie, connected
    assert products.status_code == 200, products.text
    assert len(products.json()["products"]) == 5
    replay = await browser.get(callback)  # the state cookie is spent
    assert replay.status_code == 400


def tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


async def test_bad_hmac_is_refused(servers: Servers, browser: httpx.AsyncClient, shop: str) -> None:
    callback = await consent(servers, browser, shop)
    forged = await browser.get(tamper(callback, code="forged-code"))
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "INVALID_HMAC"
    no_hmac = await browser.get(tamper(callback, hmac=""))
    assert no_hmac.status_code == 401
    assert SESSION_COOKIE not in browser.cookies


async def test_state_must_match_this_browsers_install(
    servers: Servers, browser: httpx.AsyncClient, shop: str, other_shop: str
) -> None:
    callback = await consent(servers, browser, shop)
    await consent(servers, browser, other_shop)  # the cookie now holds another state
    refused = await browser.get(callback)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "INVALID_STATE"
    browser.cookies.clear()
    no_cookie = await browser.get(callback)
    assert no_cookie.status_code == 400


@pytest.mark.parametrize("shop", ["evil.example.com", "", "a.myshopify.com.evil.com"])
async def test_install_validates_the_shop_domain(browser: httpx.AsyncClient, shop: str) -> None:
    answer = await browser.get("/auth/install", params={"shop": shop})
    assert answer.status_code == 400
