"""Installing outside Shopify admin (authorization-code grant).

    GET /auth/install?shop=x.myshopify.com  → state nonce in a signed cookie, 302 to the
                                              shop's /admin/oauth/authorize
    GET /auth/callback?code&hmac&shop&state&timestamp → HMAC, state and age checked,
                                              code exchanged, token stored, our session
                                              cookie set, 302 to /app

Embedded opens need none of this: their session token is exchanged on first use
(shops/connect.py)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import AppError, InvalidInput, Unauthorized, UpstreamError
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shopify.auth import (
    build_authorize_url,
    exchange_authorization_code,
    new_state_nonce,
    validate_callback,
)
from pikcel_jobs.shopify.errors import (
    InvalidShopDomain,
    ShopifyError,
    ShopifyOAuthError,
    ShopifyTransientError,
)
from pikcel_jobs.shopify.hosts import validate_shop_domain
from pikcel_jobs.shops.auth import SESSION_COOKIE, SESSION_MAX_AGE, sign_session
from pikcel_jobs.shops.connect import save_token

router = APIRouter(tags=["auth"], include_in_schema=False)
log = logging.getLogger("pikcel_jobs.shops")
STATE_COOKIE = "pikcel_oauth_state"
STATE_MAX_AGE = 600
SCOPES = "read_products,write_products,read_files,write_files"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    secret = settings.session_secret.get_secret_value()
    if not secret:
        raise AppError("installs are not configured: set SESSION_SECRET", code="NOT_CONFIGURED")
    return URLSafeTimedSerializer(secret, salt="pikcel-oauth-state")


def _secure(settings: Settings) -> bool:
    return settings.app_url.startswith("https://")


def redirect_uri(settings: Settings) -> str:
    return f"{settings.app_url}/auth/callback"


@router.get("/auth/install")
async def install(request: Request, shop: str = "") -> Response:
    settings: Settings = request.app.state.settings
    try:
        domain = validate_shop_domain(shop)
    except InvalidShopDomain:
        raise InvalidInput("shop must be your store's name.myshopify.com domain") from None
    nonce = new_state_nonce()
    location = build_authorize_url(
        domain, api_key=settings.shopify_api_key, scopes=SCOPES,
        redirect_uri=redirect_uri(settings), state=nonce,
    )  # fmt: skip
    response = RedirectResponse(location, status_code=302)
    response.set_cookie(
        STATE_COOKIE, _serializer(settings).dumps({"state": nonce, "shop": domain}),
        max_age=STATE_MAX_AGE, httponly=True, samesite="lax", secure=_secure(settings),
        path="/auth",
    )  # fmt: skip
    return response


@router.get("/auth/callback")
async def callback(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    runtime: Runtime = request.app.state.runtime
    try:
        saved = _serializer(settings).loads(
            request.cookies.get(STATE_COOKIE, ""), max_age=STATE_MAX_AGE
        )
    except BadSignature:
        raise InvalidInput(
            "the install link has expired or was opened in another browser; start again",
            code="INVALID_STATE",
        ) from None
    secrets_ = [
        s
        for s in (
            settings.shopify_api_secret.get_secret_value(),
            settings.shopify_api_secret_previous.get_secret_value(),
        )
        if s
    ]
    try:
        answer = validate_callback(
            request.url.query, api_secrets=secrets_, expected_state=str(saved.get("state", ""))
        )
    except InvalidShopDomain:
        raise InvalidInput("the callback names no valid shop") from None
    except ShopifyOAuthError as exc:
        if exc.code == "invalid_hmac":
            raise Unauthorized(
                "the callback's signature is not Shopify's", code="INVALID_HMAC"
            ) from None
        raise InvalidInput(
            f"the install could not be completed: {exc.detail}", code=exc.code.upper()
        ) from None
    if answer.shop != saved.get("shop"):
        raise InvalidInput("the callback is for another shop", code="INVALID_STATE")
    try:
        token = await exchange_authorization_code(
            answer.shop, answer.code, api_key=settings.shopify_api_key,
            api_secret=settings.shopify_api_secret.get_secret_value(),
            http_client=runtime.shopify_http,
        )  # fmt: skip
    except ShopifyTransientError as exc:
        raise UpstreamError(
            "Shopify could not be reached to finish the install; try again"
        ) from exc
    except ShopifyError as exc:
        raise InvalidInput(f"Shopify refused the install: {exc}", code="INSTALL_REFUSED") from exc
    await save_token(runtime.sessions, settings, token)
    log.info("shop %s installed through the authorization-code grant", answer.shop)
    response = RedirectResponse("/app", status_code=302)
    response.delete_cookie(STATE_COOKIE, path="/auth")
    response.set_cookie(
        SESSION_COOKIE, sign_session(settings, answer.shop), max_age=SESSION_MAX_AGE,
        httponly=True, samesite="lax", secure=_secure(settings), path="/",
    )  # fmt: skip
    return response
