"""Token exchange, refresh, expiry and the authorization-code install, over loopback."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from shopify_support import API_KEY, API_SECRET, API_VERSION, ShopifySimHandle

from pikcel_jobs.shopify.auth import (
    AccessToken,
    build_authorize_url,
    exchange_authorization_code,
    exchange_token,
    new_state_nonce,
    refresh_access_token,
    validate_callback,
)
from pikcel_jobs.shopify.errors import (
    InvalidSessionToken,
    InvalidShopDomain,
    ShopifyAuthError,
    ShopifyOAuthError,
)
from pikcel_jobs.shopify.graphql import ShopifyGraphQL, ThrottlePacer
from pikcel_jobs.shopify.transport import make_async_client, make_sync_client

SHOP_QUERY = "{ shop { id myshopifyDomain } }"


def client_for(shop: str, token: AccessToken, http: httpx.AsyncClient) -> ShopifyGraphQL:
    return ShopifyGraphQL(shop, token.access_token, API_VERSION, http, pacer=ThrottlePacer())


async def test_exchange_gives_expiring_offline_token_for_a_new_shop(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
    shopify_http: httpx.AsyncClient,
) -> None:
    token = await exchange_token(
        shop_domain,
        shopify_sim.session_token(shop_domain),
        api_key=API_KEY,
        api_secret=API_SECRET,
        http_client=shopify_http,
    )
    now = datetime.now(UTC)
    assert token.shop == shop_domain and token.access_token.startswith("shpat_")
    assert token.refresh_token and token.expires_at and token.refresh_expires_at
    assert timedelta(minutes=55) < token.expires_at - now <= timedelta(hours=1, seconds=5)
    assert token.refresh_expires_at - now > timedelta(days=80)
    assert "write_products" in token.scopes
    assert "shpat_" not in repr(token)
    data = await client_for(shop_domain, token, shopify_http).execute(SHOP_QUERY)
    assert data["shop"]["myshopifyDomain"] == shop_domain


async def test_exchange_online_and_non_expiring(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
    shopify_http: httpx.AsyncClient,
) -> None:
    online = await exchange_token(
        shop_domain,
        shopify_sim.session_token(shop_domain, user_id=77),
        api_key=API_KEY,
        api_secret=API_SECRET,
        http_client=shopify_http,
        access_mode="online",
    )
    assert online.access_mode == "online" and online.user_id == 77 and online.expires_at
    forever = await exchange_token(
        shop_domain,
        shopify_sim.session_token(shop_domain),
        api_key=API_KEY,
        api_secret=API_SECRET,
        http_client=shopify_http,
        expiring=False,
    )
    assert forever.expires_at is None and forever.refresh_token is None
    assert (
        await refresh_access_token(
            forever, api_key=API_KEY, api_secret=API_SECRET, http_client=shopify_http
        )
        is forever
    )


async def test_exchange_refuses_bad_session_tokens(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
    shopify_http: httpx.AsyncClient,
) -> None:
    with pytest.raises(InvalidSessionToken):
        await exchange_token(
            shop_domain,
            shopify_sim.session_token(shop_domain, exp_in=-60),
            api_key=API_KEY,
            api_secret=API_SECRET,
            http_client=shopify_http,
        )
    with pytest.raises(InvalidShopDomain):
        await exchange_token(
            shop_domain,
            shopify_sim.session_token("other.myshopify.com"),
            api_key=API_KEY,
            api_secret=API_SECRET,
            http_client=shopify_http,
        )


async def test_simulator_refuses_what_we_would_refuse(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
    shopify_http: httpx.AsyncClient,
) -> None:
    """The simulator checks the subject token itself (secret, audience, dest vs host)."""
    body = {
        "client_id": API_KEY,
        "client_secret": API_SECRET,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
    }
    url = f"https://{shop_domain}/admin/oauth/access_token"
    for bad in (
        shopify_sim.session_token(shop_domain, aud="someone-else"),
        shopify_sim.session_token("another-shop.myshopify.com"),
        shopify_sim.session_token(shop_domain, exp_in=-30),
    ):
        answer = await shopify_http.post(url, json={**body, "subject_token": bad})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_subject_token"
    # Form bodies are accepted too; wrong client credentials are invalid_client.
    answer = await shopify_http.post(
        url,
        data={
            **body,
            "client_secret": "wrong",
            "subject_token": shopify_sim.session_token(shop_domain),
        },
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    answer = await shopify_http.post(
        url,
        data={
            **body,
            "subject_token": shopify_sim.session_token(shop_domain),
            "expiring": "1",
        },
    )
    assert answer.status_code == 200 and answer.json()["refresh_token"].startswith("shprt_")


async def test_refresh_is_single_use(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
    shopify_http: httpx.AsyncClient,
    access_token: AccessToken,
) -> None:
    kwargs = {"api_key": API_KEY, "api_secret": API_SECRET, "http_client": shopify_http}
    assert not access_token.needs_refresh()
    same = await refresh_access_token(access_token, **kwargs)  # type: ignore[arg-type]
    assert same is access_token
    due = replace(access_token, expires_at=datetime.now(UTC) + timedelta(seconds=30))
    fresh = await refresh_access_token(due, **kwargs)  # type: ignore[arg-type]
    assert fresh.access_token != access_token.access_token
    assert fresh.refresh_token and fresh.refresh_token != access_token.refresh_token
    assert fresh.expires_at and fresh.expires_at > datetime.now(UTC) + timedelta(minutes=55)
    await client_for(shop_domain, fresh, shopify_http).execute(SHOP_QUERY)

    with pytest.raises(ShopifyOAuthError) as caught:  # the old refresh token was used up
        await refresh_access_token(due, force=True, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_grant" and caught.value.reauthorize
    again = await refresh_access_token(fresh, force=True, **kwargs)  # type: ignore[arg-type]
    assert again.refresh_token != fresh.refresh_token
    expired_refresh = replace(again, refresh_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ShopifyOAuthError) as caught:
        await refresh_access_token(expired_refresh, force=True, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == "refresh_token_expired"


async def test_expired_or_unknown_access_token_is_401(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
    shopify_http: httpx.AsyncClient,
    access_token: AccessToken,
) -> None:
    gql = client_for(shop_domain, access_token, shopify_http)
    await gql.execute(SHOP_QUERY)
    shopify_sim.admin.post(f"/_sim/shops/{shop_domain}/expire-tokens").raise_for_status()
    with pytest.raises(ShopifyAuthError) as caught:
        await gql.execute(SHOP_QUERY)
    assert caught.value.status == 401
    wrong = ShopifyGraphQL(
        shop_domain, "shpat_nope", API_VERSION, shopify_http, pacer=ThrottlePacer()
    )
    with pytest.raises(ShopifyAuthError):
        await wrong.execute(SHOP_QUERY)
    # A token of one shop is no good on another.
    other = ShopifyGraphQL(
        "demo-shop.myshopify.com",
        access_token.access_token,
        API_VERSION,
        shopify_http,
        pacer=ThrottlePacer(),
    )
    with pytest.raises(ShopifyAuthError):
        await other.execute(SHOP_QUERY)


async def test_authorization_code_install(
    shopify_sim: ShopifySimHandle,
    shop_domain: str,
    shopify_http: httpx.AsyncClient,
) -> None:
    state = new_state_nonce()
    url = build_authorize_url(
        shop_domain,
        api_key=API_KEY,
        scopes="read_products,write_files",
        redirect_uri="https://app.example.com/auth/callback?x=1",
        state=state,
    )
    with make_sync_client(shopify_sim.url) as browser:  # the merchant's browser
        answer = browser.get(url)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert location.netloc == "app.example.com" and location.path == "/auth/callback"
    query = [(k, v) for k, v in parse_qsl(location.query) if k != "x"]
    callback = validate_callback(query, api_secrets=[API_SECRET], expected_state=state)
    assert callback.shop == shop_domain and callback.host

    token = await exchange_authorization_code(
        shop_domain, callback.code, api_key=API_KEY, api_secret=API_SECRET, http_client=shopify_http
    )
    assert token.scope == "read_products,write_files" and token.refresh_token
    await client_for(shop_domain, token, shopify_http).execute(SHOP_QUERY)
    with pytest.raises(ShopifyOAuthError) as caught:  # codes are single-use
        await exchange_authorization_code(
            shop_domain,
            callback.code,
            api_key=API_KEY,
            api_secret=API_SECRET,
            http_client=shopify_http,
        )
    assert caught.value.code == "invalid_request"
    tampered = [(k, shop_domain.replace("sim-", "sim-x") if k == "shop" else v) for k, v in query]
    with pytest.raises(ShopifyOAuthError):
        validate_callback(tampered, api_secrets=[API_SECRET], expected_state=state)


async def test_unknown_shop_without_auto_create(start_shopify_sim: object) -> None:
    sim = start_shopify_sim(auto_create_shops=False)  # type: ignore[operator]
    async with make_async_client(sim.url) as http:
        with pytest.raises(ShopifyOAuthError):
            await exchange_token(
                "nobody.myshopify.com",
                sim.session_token("nobody.myshopify.com"),
                api_key=API_KEY,
                api_secret=API_SECRET,
                http_client=http,
            )
        token = await exchange_token(
            "demo-shop.myshopify.com",
            sim.session_token("demo-shop.myshopify.com"),
            api_key=API_KEY,
            api_secret=API_SECRET,
            http_client=http,
        )
        assert token.access_token
