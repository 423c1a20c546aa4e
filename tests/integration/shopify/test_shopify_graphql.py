"""The GraphQL client against the simulator: pacing, throttling, retries, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from shopify_support import API_KEY, API_SECRET, API_VERSION, ShopifySimHandle

from pikcel_jobs.shopify.auth import exchange_token
from pikcel_jobs.shopify.errors import (
    ShopifyGraphQLError,
    ShopifyThrottledError,
    ShopifyTransientError,
    ShopifyUserError,
)
from pikcel_jobs.shopify.graphql import ShopifyGraphQL, ThrottlePacer, raise_for_user_errors
from pikcel_jobs.shopify.transport import make_async_client

# 2 + 8 x 1 = 10 points requested; the sim also charges 10 when all 8 come back.
PAGE = "query($n: Int!) { products(first: $n) { nodes { id title featuredMedia { id } } } }"
SHOP = "pace-shop.myshopify.com"


async def _client(
    sim: ShopifySimHandle, http: httpx.AsyncClient, shop: str = SHOP, **kwargs: object
) -> ShopifyGraphQL:
    token = await exchange_token(
        shop, sim.session_token(shop), api_key=API_KEY, api_secret=API_SECRET, http_client=http
    )
    return ShopifyGraphQL(
        shop, token.access_token, API_VERSION, http, pacer=ThrottlePacer(), **kwargs
    )  # type: ignore[arg-type]


async def test_pacing_under_a_small_bucket_is_never_throttled(
    start_shopify_sim: Callable[..., ShopifySimHandle],
) -> None:
    sim = start_shopify_sim(bucket_size=50, restore_rate=50)
    async with make_async_client(sim.url) as http:
        gql = await _client(sim, http)
        started = time.monotonic()
        await gql.execute(PAGE, {"n": 4})  # learn the bucket
        for _ in range(5):
            await gql.execute(PAGE, {"n": 4})
        # and concurrently, as a worker with many tasks would
        await asyncio.gather(*(gql.execute(PAGE, {"n": 4}) for _ in range(10)))
        elapsed = time.monotonic() - started
    counters = sim.counters()
    assert counters["requests"][SHOP] == 16
    assert counters["throttled"].get(SHOP, 0) == 0
    # 16 x 10 = 160 points from a 50-point bucket at 50/s: the client must have waited.
    assert elapsed > (160 - 50) / 50 * 0.8


async def test_without_pacing_the_same_load_is_throttled(
    start_shopify_sim: Callable[..., ShopifySimHandle],
) -> None:
    """Control for the test above: the bucket is small enough to matter."""
    sim = start_shopify_sim(bucket_size=50, restore_rate=25)
    async with make_async_client(sim.url) as http:
        gql = await _client(sim, http)
        url, headers = gql.url, {"X-Shopify-Access-Token": gql._token}
        answers = await asyncio.gather(
            *(
                http.post(url, json={"query": PAGE, "variables": {"n": 4}}, headers=headers)
                for _ in range(16)
            )
        )
    throttled = [a.json() for a in answers if "errors" in a.json()]
    assert throttled, "expected THROTTLED answers"
    body = throttled[0]
    assert answers[0].status_code == 200
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 10 and cost["actualQueryCost"] is None
    assert set(cost["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}
    assert sim.counters()["throttled"][SHOP] == len(throttled)


async def test_recovers_from_forced_throttled_and_429_and_503(
    start_shopify_sim: Callable[..., ShopifySimHandle],
) -> None:
    sim = start_shopify_sim()
    async with make_async_client(sim.url) as http:
        gql = await _client(sim, http, backoff_base=0.05)
        await gql.execute(PAGE, {"n": 2})

        sim.set_faults(force_throttled_count=2)
        assert (await gql.execute(PAGE, {"n": 2}))["products"]["nodes"]
        assert sim.counters()["throttled"][SHOP] == 2

        sim.set_faults(force_status=429, force_status_count=1, retry_after=1)
        started = time.monotonic()
        assert (await gql.execute(PAGE, {"n": 2}))["products"]["nodes"]
        assert time.monotonic() - started >= 0.95  # Retry-After honoured

        sim.set_faults(force_status=503, force_status_count=2, retry_after=0)
        assert (await gql.execute(PAGE, {"n": 2}))["products"]["nodes"]
        forced = sim.counters()["forced_status"]
        assert forced == {"429": 1, "503": 2}


async def test_gives_up_after_bounded_retries(
    start_shopify_sim: Callable[..., ShopifySimHandle],
) -> None:
    sim = start_shopify_sim()
    async with make_async_client(sim.url) as http:
        gql = await _client(sim, http, max_attempts=3, backoff_base=0.01)
        sim.set_faults(force_status=503, force_status_count=-1, retry_after=0)
        with pytest.raises(ShopifyTransientError) as caught:
            await gql.execute(PAGE, {"n": 1})
        assert caught.value.status == 503 and caught.value.retry_after == 0
        assert sim.counters()["forced_status"]["503"] == 3

        sim.set_faults(force_status=429, force_status_count=-1, retry_after=120)
        with pytest.raises(ShopifyTransientError) as caught:  # too long to wait in-process
            await gql.execute(PAGE, {"n": 1})
        assert caught.value.status == 429 and caught.value.retry_after == 120

        sim.clear_faults()
        sim.set_faults(force_throttled_count=-1)
        with pytest.raises(ShopifyThrottledError):
            await gql.execute(PAGE, {"n": 1})
        sim.clear_faults()


async def test_errors_are_raised_clearly(gql: ShopifyGraphQL) -> None:
    with pytest.raises(ShopifyGraphQLError) as caught:
        await gql.execute("{ products(first: 2) { nodes { id nope } } }")
    assert "nope" in str(caught.value)
    with pytest.raises(ShopifyGraphQLError):
        await gql.execute("{ products(first: 2) { nodes { id ")
    with pytest.raises(ShopifyGraphQLError) as caught:
        await gql.execute('{ product(id: "123") { id } }')
    assert caught.value.codes == ["argumentLiteralsIncompatible"]
    with pytest.raises(ShopifyGraphQLError) as caught:
        await gql.execute(
            "{ products(first: 250) { nodes { id media(first: 250) { nodes { id } } } } }"
        )
    assert caught.value.codes == ["MAX_COST_EXCEEDED"]
    assert await gql.execute('{ product(id: "gid://shopify/Product/1") { id } }') == {
        "product": None
    }

    with pytest.raises(ShopifyUserError) as user:
        await gql.mutate(
            "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) "
            "{ product { id } userErrors { field message } } }",
            {"p": {"id": "gid://shopify/Product/1"}},
            payload_key="productUpdate",
        )
    assert user.value.user_errors == [{"field": ["id"], "message": "Product does not exist"}]
    raise_for_user_errors({"userErrors": []})
    with pytest.raises(ShopifyUserError):
        raise_for_user_errors({"mediaUserErrors": [{"field": None, "message": "x"}]})


async def test_cost_extension_is_reported(gql: ShopifyGraphQL) -> None:
    await gql.execute(PAGE, {"n": 3})
    assert gql.last_cost is not None
    assert gql.last_cost["requestedQueryCost"] == 2 + 3 * 2
    assert gql.last_cost["actualQueryCost"] <= gql.last_cost["requestedQueryCost"]
    status = gql.last_cost["throttleStatus"]
    assert status["maximumAvailable"] == 5000.0 and status["restoreRate"] == 1000.0


async def test_transport_keeps_the_shop_host(shopify_sim: ShopifySimHandle) -> None:
    """Two shops on one simulator: the Host header, not the address, picks the shop."""
    async with make_async_client(shopify_sim.url) as http:
        a = await _client(shopify_sim, http, "host-a.myshopify.com")
        b = await _client(shopify_sim, http, "host-b.myshopify.com")
        shop_a = (await a.execute("{ shop { myshopifyDomain } }"))["shop"]["myshopifyDomain"]
        shop_b = (await b.execute("{ shop { myshopifyDomain } }"))["shop"]["myshopifyDomain"]
    assert (shop_a, shop_b) == ("host-a.myshopify.com", "host-b.myshopify.com")
