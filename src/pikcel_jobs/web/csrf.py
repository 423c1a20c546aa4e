"""CSRF protection for the pages' forms: a signed double-submit token.

A random nonce lives in the `pikcel_csrf` cookie (HttpOnly, SameSite=Lax). The token
put in every form (`csrfToken`) or sent by the JS module (`X-CSRF-Token`) is
`<salt>.<HMAC(secret, shop | nonce | salt)>`: it is bound to the signed-in shop and to
that browser's cookie, so a page on another site can neither read nor forge one.
JSON API calls authenticated with `Authorization: Bearer` (Shopify session tokens)
carry no ambient credentials and are exempt. JSON API writes that ride on the session
cookie must come from our own origin (`check_origin`): a browser names the page that
sent a request in `Origin` / `Sec-Fetch-Site`, which no page can forge, while scripts
and API clients (curl, httpx) send neither and are not browsers a site could steer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import AppError

CSRF_COOKIE = "pikcel_csrf"
CSRF_FIELD = "csrfToken"
CSRF_HEADER = "x-csrf-token"


class CsrfError(AppError):
    status_code = 403
    code = "CSRF_FAILED"


def _key(settings: Settings) -> bytes:
    secret = (
        settings.session_secret.get_secret_value() or settings.shopify_api_secret.get_secret_value()
    )
    if not secret:
        raise CsrfError("forms are not configured on this server: set SESSION_SECRET")
    return hashlib.sha256(b"pikcel-csrf|" + secret.encode()).digest()


def _mac(settings: Settings, shop: str, nonce: str, salt: str) -> str:
    message = f"{shop}|{nonce}|{salt}".encode()
    return hmac.new(_key(settings), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def make_token(settings: Settings, *, shop: str, nonce: str) -> str:
    salt = secrets.token_urlsafe(8)
    return f"{salt}.{_mac(settings, shop, nonce, salt)}"


def token_is_valid(settings: Settings, *, shop: str, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token or "." not in token or len(token) > 200:
        return False
    salt, mac = token.split(".", 1)
    return hmac.compare_digest(mac, _mac(settings, shop, nonce, salt))


def request_nonce(request: Request) -> str:
    """This browser's nonce; a new one (set as a cookie by the page route) if it has none."""
    nonce = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf_new_nonce", None)
    if not nonce or len(nonce) > 100:
        nonce = new_nonce()
        request.state.csrf_new_nonce = nonce
    return nonce


def token_for(request: Request, shop: str | None) -> str:
    settings: Settings = request.app.state.settings
    return make_token(settings, shop=shop or "", nonce=request_nonce(request))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_origin(request: Request) -> None:
    """Refuse a cookie-authenticated write a browser sent from another site."""
    if request.method in SAFE_METHODS or is_exempt(request):
        return
    settings: Settings = request.app.state.settings
    own = {str(request.base_url).rstrip("/"), settings.app_url.rstrip("/")}
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") == "cross-site" or (
        origin is not None and origin not in own
    ):
        raise CsrfError(
            "this request came from another website and was refused; "
            "use the app's own pages, or call the API with a session token"
        )


def is_exempt(request: Request) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


async def check_csrf(request: Request, shop: str | None) -> None:
    """Raise `CsrfError` (403) unless the request carries a valid token for `shop`."""
    if is_exempt(request):
        return
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
    settings: Settings = request.app.state.settings
    nonce = request.cookies.get(CSRF_COOKIE)
    if not token:
        raise CsrfError("this form is missing its security token; reload the page and try again")
    if not token_is_valid(settings, shop=shop or "", nonce=nonce, token=token):
        raise CsrfError(
            "this form's security token has expired or does not match your session; "
            "reload the page and try again"
        )
