"""Verify Shopify session tokens (App Bridge ID tokens) of embedded requests.

PyJWT directly rather than `shopifyapp.verify_app_home_req`: that function wants the
whole request and answers with a response to send, and it does not check that `iss`
and `dest` name the same `*.myshopify.com` host, which we require.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

from .errors import InvalidSessionToken
from .hosts import SHOP_DOMAIN_RE

LEEWAY_SECONDS = 10
REQUIRED_CLAIMS = ("iss", "dest", "aud", "exp", "nbf")
RETRY_HEADER = {"X-Shopify-Retry-Invalid-Session-Request": "1"}


@dataclass(frozen=True)
class SessionClaims:
    """What a verified session token says. `shop` is `name.myshopify.com`."""

    shop: str
    user_id: str | None
    sid: str | None
    exp: int
    nbf: int
    iat: int | None
    jti: str | None
    iss: str
    dest: str
    aud: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


def extract_bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def verify_session_token(
    token: str,
    api_key: str,
    api_secret: str,
    *,
    previous_secrets: Sequence[str] = (),
    leeway: int = LEEWAY_SECONDS,
) -> SessionClaims:
    """Verify `token` and return its claims; raises `InvalidSessionToken(reason)`.

    HS256 with the app secret (or a previous one during rotation), `aud` = api key,
    exp/nbf with `leeway` seconds, `iss` host == `dest` host, both `*.myshopify.com`.
    On failure answer 401 with `RETRY_HEADER` so App Bridge retries with a fresh token.
    """
    if not token or token.count(".") != 2:
        raise InvalidSessionToken("malformed")
    claims: dict[str, Any] | None = None
    for secret in (api_secret, *previous_secrets):
        if not secret:
            continue
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=api_key,
                leeway=leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise InvalidSessionToken("expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidSessionToken("not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise InvalidSessionToken("wrong_audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidSessionToken("missing_claim", exc.claim) from None
        except jwt.PyJWTError as exc:
            raise InvalidSessionToken("malformed", type(exc).__name__) from None
    if claims is None:
        raise InvalidSessionToken("bad_signature")

    dest_host = urlsplit(str(claims["dest"])).hostname or ""
    iss = urlsplit(str(claims["iss"]))
    if iss.hostname != dest_host:
        raise InvalidSessionToken("iss_dest_mismatch")
    if not SHOP_DOMAIN_RE.match(dest_host) or urlsplit(str(claims["dest"])).scheme != "https":
        raise InvalidSessionToken("bad_shop", dest_host)
    aud = claims["aud"]
    return SessionClaims(
        shop=dest_host,
        user_id=str(claims["sub"]) if claims.get("sub") is not None else None,
        sid=claims.get("sid"),
        exp=int(claims["exp"]),
        nbf=int(claims["nbf"]),
        iat=int(claims["iat"]) if claims.get("iat") is not None else None,
        jti=claims.get("jti"),
        iss=str(claims["iss"]),
        dest=str(claims["dest"]),
        aud=aud if isinstance(aud, str) else api_key,
        raw=claims,
    )
