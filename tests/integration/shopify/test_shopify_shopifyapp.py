"""Shopify's own `shopifyapp` package, pointed at the simulator through our transport.

This shows the simulator speaks what Shopify's library expects (JSON token requests,
token/refresh response fields, GraphQL endpoint, 401 and 429 handling), and that the
transport needs no change in the library.
"""

from __future__ import annotations

from typing import Any

from shopify_app import ShopifyApp
from shopify_support import API_KEY, API_SECRET, API_VERSION, ShopifySimHandle

from pikcel_jobs.shopify.session_token import verify_session_token
from pikcel_jobs.shopify.transport import make_async_client, make_sync_client

PRODUCTS = "query($n: Int!) { products(first: $n) { nodes { id title } } }"


def _app_home_request(token: str) -> dict[str, Any]:
    return {
        "method": "GET",
        "headers": {"Authorization": f"Bearer {token}"},
        "url": "https://pikcel.example/app",
        "body": "",
    }


async def test_shopifyapp_token_exchange_graphql_and_refresh(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
) -> None:
    shopify = ShopifyApp(client_id=API_KEY, client_secret=API_SECRET)
    session_token = shopify_sim.session_token(shop_domain, user_id=5)
    verified = shopify.verify_app_home_req(
        _app_home_request(session_token), app_home_patch_id_token_path="/auth/patch-id-token"
    )
    assert verified.ok and verified.shop == shop_domain.removesuffix(".myshopify.com")
    assert verify_session_token(session_token, API_KEY, API_SECRET).shop == shop_domain

    async with make_async_client(shopify_sim.url) as http:
        exchanged = await shopify.exchange_using_token_exchange_async(
            access_mode="offline",
            id_token=verified.id_token,
            invalid_token_response=verified.invalid_token_response,
            http_client=http,
        )
        assert exchanged.ok, exchanged.log
        token = exchanged.access_token
        assert token is not None and token.refresh_token and token.expires

        result = await shopify.admin_graphql_request_async(
            PRODUCTS,
            shop=token.shop,
            access_token=token.token,
            api_version=API_VERSION,
            variables={"n": 3},
            http_client=http,
        )
        assert result.ok, result.log
        assert result.data is not None and len(result.data["products"]["nodes"]) == 3
        assert result.extensions is not None
        assert result.extensions["cost"]["throttleStatus"]["maximumAvailable"] == 5000.0

        # Refresh: the library decides from `expires`; make it due.
        due = {**token.__dict__, "expires": "2000-01-01T00:00:00Z"}
        refreshed = await shopify.refresh_token_exchanged_access_token_async(due, http_client=http)
        assert refreshed.ok and refreshed.access_token is not None
        assert refreshed.access_token.token != token.token
        reused = await shopify.refresh_token_exchanged_access_token_async(due, http_client=http)
        assert not reused.ok and reused.log.code == "invalid_grant"

        bad = await shopify.admin_graphql_request_async(
            PRODUCTS,
            shop=token.shop,
            access_token="shpat_wrong",
            api_version=API_VERSION,
            variables={"n": 1},
            http_client=http,
        )
        assert not bad.ok and bad.log.code == "unauthorized"

    # The sync API, with a sync client from the same transport module.
    with make_sync_client(shopify_sim.url) as sync_http:
        shopify_sim.set_faults(
            force_status=429, force_status_count=1, retry_after=0, shop=shop_domain
        )
        result = shopify.admin_graphql_request(
            PRODUCTS,
            shop=token.shop,
            access_token=refreshed.access_token.token,
            api_version=API_VERSION,
            variables={"n": 2},
            http_client=sync_http,
        )
        shopify_sim.clear_faults()
        assert result.ok and [log.code for log in result.http_logs] == [
            "rate_limited_retry",
            "success",
        ]
