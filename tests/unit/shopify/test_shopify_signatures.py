"""Webhook and OAuth query HMACs, shop domains, and the client's static cost estimate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode

import pytest

from pikcel_jobs.shopify.auth import (
    build_authorize_url,
    compute_query_hmac,
    validate_callback,
    verify_query_hmac,
)
from pikcel_jobs.shopify.errors import InvalidShopDomain, ShopifyOAuthError
from pikcel_jobs.shopify.graphql import estimate_query_cost, parse_retry_after
from pikcel_jobs.shopify.hosts import is_valid_shop_domain, validate_shop_domain
from pikcel_jobs.shopify.webhooks import (
    ShopifyWebhookHeaders,
    compute_webhook_hmac,
    verify_shopify_webhook,
)
from pikcel_sim.shopify.hosts import query_hmac

SECRET = "hush-0123456789abcdef"
OLD = "old-hush-0123456789abcdef"


def test_webhook_hmac_matches_shopify_definition() -> None:
    body = b'{"shop_id":1,"shop_domain":"a.myshopify.com"}'
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert compute_webhook_hmac(body, SECRET) == expected
    assert verify_shopify_webhook(body, expected, [SECRET])
    assert not verify_shopify_webhook(body + b" ", expected, [SECRET])
    assert not verify_shopify_webhook(body, None, [SECRET])
    assert not verify_shopify_webhook(body, "", [SECRET])


def test_webhook_rotation_accepts_current_and_previous() -> None:
    body = b"{}"
    signed_old = compute_webhook_hmac(body, OLD)
    assert not verify_shopify_webhook(body, signed_old, [SECRET])
    assert verify_shopify_webhook(body, signed_old, [SECRET, OLD])
    assert verify_shopify_webhook(body, compute_webhook_hmac(body, SECRET), [SECRET, OLD])
    assert not verify_shopify_webhook(body, signed_old, [SECRET, ""])


def test_webhook_headers_parse() -> None:
    headers = ShopifyWebhookHeaders.from_headers(
        {
            "X-Shopify-Topic": "shop/redact",
            "X-Shopify-Shop-Domain": "A-Shop.myshopify.com",
            "X-Shopify-Webhook-Id": "w-1",
            "X-Shopify-Triggered-At": "2025-01-02T03:04:05.123Z",
            "X-Shopify-API-Version": "2025-10",
        }
    )
    assert headers.topic == "shop/redact" and headers.shop_domain == "a-shop.myshopify.com"
    assert headers.webhook_id == "w-1" and headers.triggered_at is not None
    assert headers.triggered_at.year == 2025 and headers.api_version == "2025-10"
    with pytest.raises(ValueError):
        ShopifyWebhookHeaders.from_headers({"X-Shopify-Topic": "shop/redact"})
    with pytest.raises(ValueError):
        ShopifyWebhookHeaders.from_headers(
            {
                "x-shopify-topic": "t",
                "x-shopify-webhook-id": "1",
                "x-shopify-shop-domain": "evil.com",
            }
        )


@pytest.mark.parametrize("shop", ["a.myshopify.com", "my-shop-1.myshopify.com"])
def test_valid_shop_domains(shop: str) -> None:
    assert is_valid_shop_domain(shop)
    assert validate_shop_domain(shop.upper()) == shop


@pytest.mark.parametrize(
    "shop",
    [
        "",
        "myshopify.com",
        "-a.myshopify.com",
        "a.myshopify.com.evil.com",
        "a_b.myshopify.com",
        "a.b.myshopify.com",
        "https://a.myshopify.com",
        "a.myshopify.io",
    ],
)
def test_invalid_shop_domains(shop: str) -> None:
    assert not is_valid_shop_domain(shop)
    with pytest.raises(InvalidShopDomain):
        validate_shop_domain(shop)


def test_query_hmac_agrees_with_simulator_and_rotation() -> None:
    params = {
        "code": "abc",
        "shop": "a.myshopify.com",
        "state": "s1",
        "timestamp": str(int(time.time())),
        "host": "YWRtaW4",
    }
    signed = {**params, "hmac": query_hmac(params.items(), SECRET)}
    assert compute_query_hmac(params, SECRET) == signed["hmac"]
    assert verify_query_hmac(urlencode(signed), [SECRET])
    assert verify_query_hmac(signed, [OLD, SECRET])
    assert not verify_query_hmac({**signed, "shop": "b.myshopify.com"}, [SECRET])
    assert not verify_query_hmac(params, [SECRET])


def test_validate_callback() -> None:
    params = {
        "code": "abc",
        "shop": "a.myshopify.com",
        "state": "nonce-1",
        "timestamp": str(int(time.time())),
        "host": "YWRtaW4",
    }
    query = urlencode({**params, "hmac": compute_query_hmac(params, SECRET)})
    callback = validate_callback(query, api_secrets=[SECRET], expected_state="nonce-1")
    assert callback.shop == "a.myshopify.com" and callback.code == "abc"
    with pytest.raises(ShopifyOAuthError) as caught:
        validate_callback(query, api_secrets=[SECRET], expected_state="other")
    assert caught.value.code == "invalid_state"
    with pytest.raises(ShopifyOAuthError) as caught:
        validate_callback(query, api_secrets=[OLD], expected_state="nonce-1")
    assert caught.value.code == "invalid_hmac"
    stale = {**params, "timestamp": str(int(time.time()) - 3 * 86400)}
    with pytest.raises(ShopifyOAuthError) as caught:
        validate_callback(
            {**stale, "hmac": compute_query_hmac(stale, SECRET)},
            api_secrets=[SECRET],
            expected_state="nonce-1",
        )
    assert caught.value.code == "stale_callback"
    evil = {**params, "shop": "evil.example.com"}
    with pytest.raises(InvalidShopDomain):
        validate_callback(
            {**evil, "hmac": compute_query_hmac(evil, SECRET)},
            api_secrets=[SECRET],
            expected_state="nonce-1",
        )


def test_authorize_url() -> None:
    url = build_authorize_url(
        "a.myshopify.com",
        api_key="k",
        scopes=["read_products", "x"],
        redirect_uri="https://app.example/cb",
        state="n",
    )
    assert url.startswith("https://a.myshopify.com/admin/oauth/authorize?client_id=k&")
    assert "scope=read_products%2Cx" in url and "state=n" in url
    with pytest.raises(InvalidShopDomain):
        build_authorize_url(
            "evil.com", api_key="k", scopes="s", redirect_uri="https://x", state="n"
        )


def test_static_cost_estimate() -> None:
    assert estimate_query_cost("{ shop { id } }") == 1
    assert (
        estimate_query_cost("query($n: Int!) { products(first: $n) { nodes { id } } }", {"n": 10})
        == 12
    )
    assert (
        estimate_query_cost(
            '{ product(id: "x") { id media(first: 5) { edges { node { ... on MediaImage '
            "{ image { url } } } } } } }"
        )
        == 1 + 2 + 5 * 2
    )
    assert (
        estimate_query_cost(
            "mutation { a: fileUpdate(files: []) { files { id } } "
            "b: fileDelete(fileIds: []) { deletedFileIds } }"
        )
        == 20
    )
    assert estimate_query_cost("{ not valid") == 1


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
