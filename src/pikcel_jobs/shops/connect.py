"""Connecting a shop to Shopify, and a GraphQL client for a connected shop.

An embedded request carries a verified session token. When its shop has no usable
offline token (first open, reinstall after an uninstall, a refresh token that expired
or was refused), the session token is exchanged for one here, once, and stored. A
failed exchange never fails the request: pages that need no Shopify call still work,
and the routes that do answer 409 SHOP_NOT_CONNECTED."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.config import Settings
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.shopify.auth import AccessToken, exchange_token
from pikcel_jobs.shopify.errors import ShopifyAuthError, ShopifyError, ShopifyOAuthError
from pikcel_jobs.shopify.graphql import ShopifyGraphQL
from pikcel_jobs.shops.crypto import TokenCipher
from pikcel_jobs.shops.models import Shop
from pikcel_jobs.shops.service import (
    ShopNotConnected,
    access_token_for,
    ensure_shop,
    graphql_for,
    store_token,
)

log = logging.getLogger("pikcel_jobs.shops")
NOT_CONNECTED = "this shop is not connected to Shopify; open the app from Shopify admin"


def has_usable_token(shop: Shop | None, *, now: datetime | None = None) -> bool:
    """A stored token that is installed and can still be used or refreshed."""
    if shop is None or not shop.access_token_enc or shop.uninstalled_at is not None:
        return False
    now = now or datetime.now(UTC)
    if shop.refresh_token_enc:
        return shop.refresh_expires_at is None or shop.refresh_expires_at > now
    return shop.token_expires_at is None or shop.token_expires_at > now


def drop_tokens(shop: Shop) -> None:
    shop.access_token_enc = None
    shop.refresh_token_enc = None
    shop.token_expires_at = None
    shop.refresh_expires_at = None


async def save_token(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, token: AccessToken
) -> None:
    async with unit_of_work(sessions) as session:
        shop = await ensure_shop(session, token.shop)
        store_token(shop, token, TokenCipher.from_settings(settings))


async def forget_token(sessions: async_sessionmaker[AsyncSession], domain: str) -> None:
    """Shopify no longer takes the stored token: drop it, so the next embedded request
    exchanges a new one."""
    async with unit_of_work(sessions) as session:
        shop = await session.get(Shop, domain, with_for_update=True)
        if shop is not None:
            drop_tokens(shop)


async def connect_with_session_token(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    shop: str,
    session_token: str,
) -> AccessToken:
    """Token exchange (no transaction open during the call), then store the token."""
    token = await exchange_token(
        shop, session_token, api_key=settings.shopify_api_key,
        api_secret=settings.shopify_api_secret.get_secret_value(), http_client=http,
    )  # fmt: skip
    await save_token(sessions, settings, token)
    log.info("shop %s connected through token exchange", shop)
    return token


async def ensure_connected(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    shop: str,
    session_token: str,
) -> bool:
    """Connect `shop` when it has no usable token; True when it is connected after."""
    async with unit_of_work(sessions, read_only=True) as session:
        row = await session.get(Shop, shop)
        if has_usable_token(row):
            return True
    try:
        await connect_with_session_token(
            sessions, settings, http, shop=shop, session_token=session_token
        )
    except ShopifyError as exc:
        log.warning("token exchange for %s failed: %s", shop, exc)
        return False
    return True


async def graphql_for_shop(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    shop: str,
) -> ShopifyGraphQL:
    """A GraphQL client with the shop's token (refreshed first when due). Raises
    `ShopNotConnected` when there is no token or Shopify refused to refresh it."""
    try:
        async with unit_of_work(sessions) as session:
            token = await access_token_for(session, domain=shop, settings=settings, http=http)
    except ShopifyOAuthError as exc:
        if not exc.reauthorize:
            raise
        await forget_token(sessions, shop)
        raise ShopNotConnected(NOT_CONNECTED) from exc
    return graphql_for(token, settings, http)


def is_token_refused(exc: BaseException) -> bool:
    """Shopify answered 401 to our access token (revoked, uninstalled, expired)."""
    return isinstance(exc, ShopifyAuthError) and exc.status == 401
