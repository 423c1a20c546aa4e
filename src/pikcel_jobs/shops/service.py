"""Shops: install records, their Shopify access tokens (encrypted at rest, refreshed
before expiry) and a GraphQL client per shop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import AppError
from pikcel_jobs.db.base import utcnow
from pikcel_jobs.shopify.auth import AccessToken, refresh_access_token
from pikcel_jobs.shopify.graphql import ShopifyGraphQL
from pikcel_jobs.shops.crypto import TokenCipher
from pikcel_jobs.shops.models import Shop

DEFAULT_SETTINGS: dict[str, Any] = {
    "notificationEmail": None,
    "notifyOnFailure": True,
    "notifyOnCompletion": False,
    "dailyDigest": False,
    "webhookUrl": None,  # merchant endpoint for signed notification webhooks
    "webhookSecret": None,  # whsec_…, generated when a webhook URL is first saved
    "reviewBeforePublish": False,
    "autoPush": False,
    "defaultToolId": None,
    "defaultPriority": "normal",
}


class ShopNotConnected(AppError):
    status_code = 409
    code = "SHOP_NOT_CONNECTED"


async def ensure_shop(session: AsyncSession, domain: str) -> Shop:
    shop = await session.get(Shop, domain)
    if shop is None:
        shop = Shop(domain=domain, settings=dict(DEFAULT_SETTINGS), installed_at=utcnow())
        session.add(shop)
        await session.flush()
    return shop


def shop_settings(shop: Shop | None) -> dict[str, Any]:
    return {**DEFAULT_SETTINGS, **((shop.settings if shop else None) or {})}


def store_token(shop: Shop, token: AccessToken, cipher: TokenCipher) -> None:
    shop.access_token_enc = cipher.encrypt(token.access_token)
    shop.refresh_token_enc = cipher.encrypt(token.refresh_token) if token.refresh_token else None
    shop.token_expires_at = token.expires_at
    shop.refresh_expires_at = token.refresh_expires_at
    shop.scope = token.scope
    shop.uninstalled_at = None


def load_token(shop: Shop, cipher: TokenCipher) -> AccessToken | None:
    if not shop.access_token_enc:
        return None
    return AccessToken(
        shop=shop.domain,
        access_token=cipher.decrypt(shop.access_token_enc),
        scope=shop.scope or "",
        expires_at=shop.token_expires_at,
        refresh_token=cipher.decrypt(shop.refresh_token_enc) if shop.refresh_token_enc else None,
        refresh_expires_at=shop.refresh_expires_at,
    )


async def access_token_for(
    session: AsyncSession, *, domain: str, settings: Settings, http: httpx.AsyncClient
) -> AccessToken:
    """The shop's offline token, refreshed (and stored) when it is about to expire.
    Call inside a transaction that holds the shop row lock, so two workers do not spend
    the same single-use refresh token."""
    shop = await session.get(Shop, domain, with_for_update=True)
    cipher = TokenCipher.from_settings(settings)
    token = load_token(shop, cipher) if shop else None
    if shop is None or token is None or shop.uninstalled_at is not None:
        raise ShopNotConnected(
            "this shop is not connected to Shopify; open the app from Shopify admin"
        )
    if token.needs_refresh(margin=timedelta(minutes=5)):
        token = await refresh_access_token(
            token, api_key=settings.shopify_api_key,
            api_secret=settings.shopify_api_secret.get_secret_value(), http_client=http,
        )  # fmt: skip
        store_token(shop, token, cipher)
    return token


def graphql_for(token: AccessToken, settings: Settings, http: httpx.AsyncClient) -> ShopifyGraphQL:
    return ShopifyGraphQL(token.shop, token.access_token, settings.shopify_api_version, http)
