"""Who is asking: the shop from a Shopify session token, or from our signed session
cookie in standalone mode (demo, local use without Shopify admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import Unauthorized
from pikcel_jobs.web.csrf import check_origin

SESSION_COOKIE = "pikcel_session"
SESSION_MAX_AGE = 7 * 24 * 3600
RETRY_HEADER = {"X-Shopify-Retry-Invalid-Session-Request": "1"}


class InvalidSession(Unauthorized):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="INVALID_SESSION")
        self.headers = RETRY_HEADER


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    secret = (
        settings.session_secret.get_secret_value() or settings.shopify_api_secret.get_secret_value()
    )
    if not secret:
        raise InvalidSession("sessions are not configured: set SESSION_SECRET")
    return URLSafeTimedSerializer(secret, salt="pikcel-session")


def sign_session(settings: Settings, shop: str) -> str:
    return _serializer(settings).dumps({"shop": shop})


def shop_from_cookie(settings: Settings, value: str) -> str:
    try:
        data = _serializer(settings).loads(value, max_age=SESSION_MAX_AGE)
    except BadSignature as exc:
        raise InvalidSession("your session has expired; open the app again") from exc
    return str(data["shop"])


def shop_from_session_token(settings: Settings, token: str) -> str:
    from pikcel_jobs.shopify.session_token import InvalidSessionToken, verify_session_token

    try:
        claims = verify_session_token(
            token, settings.shopify_api_key, settings.shopify_api_secret.get_secret_value(),
            previous_secrets=[settings.shopify_api_secret_previous.get_secret_value()],
        )  # fmt: skip
    except InvalidSessionToken as exc:
        raise InvalidSession(f"the session token was refused: {exc}") from exc
    return claims.shop


def current_shop(request: Request) -> str:
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return shop_from_session_token(settings, header[7:].strip())
    id_token = request.query_params.get("id_token")
    if id_token:  # first embedded page load
        return shop_from_session_token(settings, id_token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return shop_from_cookie(settings, cookie)
    raise InvalidSession("sign in through Shopify admin to use this app")


def session_token_of(request: Request) -> str | None:
    """The request's Shopify session token (header, or `id_token` on a first load)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.query_params.get("id_token") or None


async def connected_shop(request: Request) -> str:
    """`current_shop`, and on a session-token request for a shop without a usable
    Shopify token, the token exchange that connects it (shops/connect.py). A write on
    the session cookie must come from our own origin (web/csrf.py: check_origin)."""
    shop = current_shop(request)
    check_origin(request)
    token = session_token_of(request)
    runtime = getattr(request.app.state, "runtime", None)
    if token is not None and runtime is not None:
        from pikcel_jobs.shops.connect import ensure_connected

        await ensure_connected(
            runtime.sessions, runtime.settings, runtime.shopify_http, shop=shop,
            session_token=token,
        )  # fmt: skip
    return shop


ShopDomain = Annotated[str, Depends(connected_shop)]
