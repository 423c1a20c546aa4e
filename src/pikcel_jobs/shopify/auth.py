"""Getting and keeping access tokens: token exchange, refresh, authorization code.

Token exchange and refresh go through Shopify's own `shopifyapp` package, given an
httpx client (from `transport.py` in demo and tests), so production and tests run the
same code; its results are wrapped in our `AccessToken` and errors. `shopifyapp` has
no authorization-code flow (non-embedded installs), so that part is ours.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from shopify_app import ShopifyApp, TokenExchangeAccessToken, TokenExchangeResult

from .errors import InvalidShopDomain, ShopifyOAuthError, ShopifyTransientError
from .hosts import is_valid_shop_domain, validate_shop_domain
from .session_token import verify_session_token

AccessMode = Literal["offline", "online"]
REFRESH_MARGIN = timedelta(minutes=5)
CALLBACK_MAX_AGE = timedelta(hours=24)


@dataclass(frozen=True)
class AccessToken:
    """An Admin API access token for one shop (`shop` is `name.myshopify.com`)."""

    shop: str
    access_token: str
    scope: str
    expires_at: datetime | None = None  # None: a non-expiring token
    refresh_token: str | None = None
    refresh_expires_at: datetime | None = None
    access_mode: AccessMode = "offline"
    user_id: int | None = None  # online tokens only

    def __repr__(self) -> str:  # never print the secrets
        return (
            f"AccessToken(shop={self.shop!r}, scope={self.scope!r}, "
            f"expires_at={self.expires_at!r}, access_mode={self.access_mode!r})"
        )

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(s for s in self.scope.split(",") if s)

    def is_expired(self, *, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.expires_at is not None and self.expires_at <= now

    def needs_refresh(
        self, *, margin: timedelta = REFRESH_MARGIN, now: datetime | None = None
    ) -> bool:
        """True when the token expires within `margin` and a refresh token exists."""
        now = now or datetime.now(UTC)
        return (
            self.expires_at is not None
            and self.refresh_token is not None
            and self.expires_at - margin <= now
        )

    def refresh_expired(self, *, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.refresh_expires_at is not None and self.refresh_expires_at <= now


# ---- shopifyapp glue ------------------------------------------------------------------


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _shop_name(shop: str) -> str:
    return shop.removesuffix(".myshopify.com")


def _from_package(token: TokenExchangeAccessToken, shop: str) -> AccessToken:
    return AccessToken(
        shop=shop,
        access_token=token.token,
        scope=token.scope or "",
        expires_at=_parse_iso(token.expires),
        refresh_token=token.refresh_token or None,
        refresh_expires_at=_parse_iso(token.refresh_token_expires),
        access_mode=token.access_mode,
        user_id=token.user.id if token.user else None,
    )


def _raise_for_result(result: TokenExchangeResult) -> None:
    code = result.log.code
    if code in ("network_error", "rate_limit_exceeded", "server_error"):
        raise ShopifyTransientError(
            f"Shopify token request failed: {code}", status=result.response.status or None
        )
    raise ShopifyOAuthError(code, result.log.detail, status=result.response.status or None)


async def exchange_token(
    shop: str,
    session_token: str,
    *,
    api_key: str,
    api_secret: str,
    http_client: httpx.AsyncClient,
    access_mode: AccessMode = "offline",
    expiring: bool = True,
) -> AccessToken:
    """Exchange a verified session token for an access token (expiring offline by default).

    The token is verified first (raises `InvalidSessionToken`) and must be for `shop`.
    """
    shop = validate_shop_domain(shop)
    claims = verify_session_token(session_token, api_key, api_secret)
    if claims.shop != shop:
        raise InvalidShopDomain(f"session token is for {claims.shop}, not {shop}")
    app = ShopifyApp(client_id=api_key, client_secret=api_secret)
    result = await app.exchange_using_token_exchange_async(
        access_mode=access_mode,
        id_token={"exchangeable": True, "token": session_token, "claims": claims.raw},
        invalid_token_response=None,
        expiring=expiring,
        http_client=http_client,
    )
    if not result.ok or result.access_token is None:
        _raise_for_result(result)
    assert result.access_token is not None
    return _from_package(result.access_token, shop)


async def refresh_access_token(
    token: AccessToken,
    *,
    api_key: str,
    api_secret: str,
    http_client: httpx.AsyncClient,
    force: bool = False,
    margin: timedelta = REFRESH_MARGIN,
) -> AccessToken:
    """A fresh token when `token` is due (expires within `margin`) or `force`; otherwise
    `token` itself. Refresh tokens are single-use: store the result before anything else.

    Raises `ShopifyOAuthError` (`reauthorize` true for invalid_grant / expired refresh).
    """
    if token.refresh_token is None:
        if token.expires_at is None:
            return token  # non-expiring
        raise ShopifyOAuthError("configuration_error", "token has no refresh token")
    if token.refresh_expired():
        raise ShopifyOAuthError("refresh_token_expired", "the refresh token has expired")
    if not force and not token.needs_refresh(margin=margin):
        return token
    app = ShopifyApp(client_id=api_key, client_secret=api_secret)
    # shopifyapp skips the call while `expires` is more than 60 s away; we decided
    # already, so hand it no expiry to make it refresh now.
    result = await app.refresh_token_exchanged_access_token_async(
        {
            "shop": _shop_name(token.shop),
            "access_mode": token.access_mode,
            "token": token.access_token,
            "scope": token.scope,
            "refresh_token": token.refresh_token,
            "expires": "",
            "refresh_token_expires": _iso(token.refresh_expires_at) or "",
            "user": None,
        },
        http_client=http_client,
    )
    if not result.ok or result.access_token is None:
        _raise_for_result(result)
    assert result.access_token is not None
    return replace(_from_package(result.access_token, token.shop), user_id=token.user_id)


# ---- authorization-code grant (non-embedded installs) -----------------------------------


def new_state_nonce() -> str:
    return secrets.token_urlsafe(24)


def build_authorize_url(
    shop: str,
    *,
    api_key: str,
    scopes: str | Iterable[str],
    redirect_uri: str,
    state: str,
    online: bool = False,
) -> str:
    """`https://{shop}/admin/oauth/authorize?...` to send the merchant to."""
    shop = validate_shop_domain(shop)
    params = {
        "client_id": api_key,
        "scope": scopes if isinstance(scopes, str) else ",".join(scopes),
        "redirect_uri": redirect_uri,
        "state": state,
    }
    if online:
        params["grant_options[]"] = "per-user"
    return f"https://{shop}/admin/oauth/authorize?{urlencode(params)}"


def _pairs(query: str | Mapping[str, str] | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(query, str):
        return parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if isinstance(query, Mapping):
        return [(str(k), str(v)) for k, v in query.items()]
    return [(str(k), str(v)) for k, v in query]


def compute_query_hmac(
    query: str | Mapping[str, str] | Sequence[tuple[str, str]], secret: str
) -> str:
    """Shopify's query HMAC: hex SHA-256 over sorted `k=v` joined by `&`, hmac removed."""
    message = "&".join(
        f"{k}={v}"
        for k, v in sorted((k, v) for k, v in _pairs(query) if k not in ("hmac", "signature"))
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_query_hmac(
    query: str | Mapping[str, str] | Sequence[tuple[str, str]],
    api_secrets: Sequence[str],
) -> bool:
    """True when the query's `hmac` matches one of `api_secrets` (current, previous)."""
    received = next((v for k, v in _pairs(query) if k == "hmac"), "")
    if not received:
        return False
    ok = False
    for secret in api_secrets:
        if secret and hmac.compare_digest(
            compute_query_hmac(query, secret).encode(), received.encode()
        ):
            ok = True
    return ok


@dataclass(frozen=True)
class OAuthCallback:
    shop: str
    code: str
    state: str
    host: str | None
    timestamp: int


def validate_callback(
    query: str | Mapping[str, str] | Sequence[tuple[str, str]],
    *,
    api_secrets: Sequence[str],
    expected_state: str,
    max_age: timedelta = CALLBACK_MAX_AGE,
) -> OAuthCallback:
    """Check an OAuth callback query (HMAC, state nonce, shop domain, age).

    Raises `ShopifyOAuthError` (code invalid_hmac, invalid_state, stale_callback,
    missing_code) or `InvalidShopDomain`.
    """
    params = dict(_pairs(query))
    if not verify_query_hmac(query, api_secrets):
        raise ShopifyOAuthError("invalid_hmac", "the callback HMAC does not match")
    if not expected_state or not hmac.compare_digest(
        params.get("state", "").encode(), expected_state.encode()
    ):
        raise ShopifyOAuthError("invalid_state", "the state nonce does not match")
    shop = validate_shop_domain(params.get("shop"))
    try:
        timestamp = int(params.get("timestamp", ""))
    except ValueError:
        raise ShopifyOAuthError("stale_callback", "missing timestamp") from None
    if abs(time.time() - timestamp) > max_age.total_seconds():
        raise ShopifyOAuthError("stale_callback", "the callback is too old")
    if not params.get("code"):
        raise ShopifyOAuthError("missing_code", "no authorization code")
    return OAuthCallback(
        shop=shop,
        code=params["code"],
        state=params["state"],
        host=params.get("host"),
        timestamp=timestamp,
    )


async def exchange_authorization_code(
    shop: str,
    code: str,
    *,
    api_key: str,
    api_secret: str,
    http_client: httpx.AsyncClient,
    expiring: bool = True,
) -> AccessToken:
    """POST the code to `https://{shop}/admin/oauth/access_token` for an offline token."""
    shop = validate_shop_domain(shop)
    body: dict[str, object] = {"client_id": api_key, "client_secret": api_secret, "code": code}
    if expiring:
        body["expiring"] = 1
    try:
        response = await http_client.post(
            f"https://{shop}/admin/oauth/access_token",
            json=body,
            headers={"Accept": "application/json"},
        )
    except httpx.TransportError as exc:
        raise ShopifyTransientError(f"token request failed: {type(exc).__name__}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise ShopifyTransientError(
            f"token request failed with HTTP {response.status_code}", status=response.status_code
        )
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code != 200 or not isinstance(data, dict) or "access_token" not in data:
        error = (
            data.get("error", f"http_{response.status_code}")
            if isinstance(data, dict)
            else f"http_{response.status_code}"
        )
        detail = data.get("error_description", "") if isinstance(data, dict) else ""
        raise ShopifyOAuthError(str(error), str(detail), status=response.status_code)
    now = datetime.now(UTC)
    expires_in = data.get("expires_in")
    refresh_in = data.get("refresh_token_expires_in")
    return AccessToken(
        shop=shop,
        access_token=str(data["access_token"]),
        scope=str(data.get("scope", "")),
        expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
        refresh_token=data.get("refresh_token"),
        refresh_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
    )


__all__ = [
    "AccessMode",
    "AccessToken",
    "OAuthCallback",
    "build_authorize_url",
    "compute_query_hmac",
    "exchange_authorization_code",
    "exchange_token",
    "is_valid_shop_domain",
    "new_state_nonce",
    "refresh_access_token",
    "validate_callback",
    "validate_shop_domain",
    "verify_query_hmac",
]
