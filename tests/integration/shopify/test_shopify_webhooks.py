"""The simulator's outgoing webhooks verify with our verifier (and rotation works)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from shopify_support import API_SECRET, ShopifySimHandle
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pikcel_jobs.shopify.auth import AccessToken
from pikcel_jobs.shopify.errors import ShopifyAuthError
from pikcel_jobs.shopify.graphql import ShopifyGraphQL
from pikcel_jobs.shopify.webhooks import ShopifyWebhookHeaders, verify_shopify_webhook
from pikcel_sim.serve import serve_in_thread

OLD_SECRET = "previous-app-secret-0123456789abcdef"


class Receiver:
    """Answers 200 for a valid HMAC and 401 otherwise, as our route will."""

    def __init__(self) -> None:
        self.secrets = [API_SECRET, OLD_SECRET]
        self.accepted: list[tuple[ShopifyWebhookHeaders, dict[str, Any]]] = []
        self.rejected = 0
        self.url = ""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if not verify_shopify_webhook(
            body, request.headers.get("x-shopify-hmac-sha256"), self.secrets
        ):
            self.rejected += 1
            return Response(status_code=401)
        self.accepted.append(
            (ShopifyWebhookHeaders.from_headers(request.headers), json.loads(body))
        )
        return Response(status_code=200)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/webhooks/shopify", receiver.handle, methods=["POST"])])
    with serve_in_thread(app) as url:
        receiver.url = f"{url}/webhooks/shopify"
        yield receiver


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact"])
def test_privacy_webhooks_verify(
    shopify_sim: ShopifySimHandle, receiver: Receiver, shop_domain: str, topic: str
) -> None:
    result = shopify_sim.send_webhook(shop=shop_domain, topic=topic, address=receiver.url)
    assert result["delivered"] and result["status"] == 200
    headers, payload = receiver.accepted[-1]
    assert headers.topic == topic and headers.shop_domain == shop_domain
    assert headers.webhook_id == result["webhook_id"] and headers.triggered_at is not None
    assert headers.api_version == "2025-10"
    assert payload["shop_domain"] == shop_domain and isinstance(payload["shop_id"], int)
    if topic != "shop/redact":
        assert payload["customer"]["id"]


def test_rotation_and_bad_signatures(
    shopify_sim: ShopifySimHandle, receiver: Receiver, shop_domain: str
) -> None:
    signed_old = shopify_sim.send_webhook(
        shop=shop_domain, topic="shop/redact", address=receiver.url, secret=OLD_SECRET
    )
    assert signed_old["status"] == 200
    receiver.secrets = [API_SECRET]  # rotation finished: the old secret is gone
    signed_old = shopify_sim.send_webhook(
        shop=shop_domain, topic="shop/redact", address=receiver.url, secret=OLD_SECRET
    )
    forged = shopify_sim.send_webhook(
        shop=shop_domain, topic="shop/redact", address=receiver.url, secret="attacker"
    )
    assert signed_old["status"] == forged["status"] == 401 and receiver.rejected == 2
    custom = shopify_sim.send_webhook(
        shop=shop_domain, topic="customers/redact", address=receiver.url, payload={"custom": True}
    )
    assert custom["status"] == 200 and receiver.accepted[-1][1] == {"custom": True}


async def test_uninstall_revokes_tokens(
    shopify_sim: ShopifySimHandle,
    receiver: Receiver,
    shop_domain: str,
    gql: ShopifyGraphQL,
    access_token: AccessToken,
) -> None:
    await gql.execute("{ shop { id } }")
    result = shopify_sim.send_webhook(
        shop=shop_domain, topic="app/uninstalled", address=receiver.url
    )
    assert result["status"] == 200
    headers, payload = receiver.accepted[-1]
    assert headers.topic == "app/uninstalled" and payload["myshopify_domain"] == shop_domain
    with pytest.raises(ShopifyAuthError):
        await gql.execute("{ shop { id } }")


def test_admin_endpoint_validates(shopify_sim: ShopifySimHandle) -> None:
    answer = shopify_sim.admin.post(
        "/_sim/webhooks/send",
        json={"shop": "x.myshopify.com", "topic": "orders/create", "address": "http://x"},
    )
    assert answer.status_code == 400
    unreachable = shopify_sim.send_webhook(
        shop="x.myshopify.com", topic="shop/redact", address="http://127.0.0.1:9/nothing"
    )
    assert unreachable["delivered"] is False
