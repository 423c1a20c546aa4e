"""Mint Shopify session tokens (App Bridge ID tokens) for tests and the demo."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import jwt


def mint_session_token(
    shop: str,
    api_key: str,
    api_secret: str,
    *,
    exp_in: int = 60,
    user_id: str | int = "1",
    **overrides: Any,
) -> str:
    """A session token as Shopify admin would hand the app (HS256 with the app secret).

    `shop` is `name.myshopify.com`. `overrides` replace claims (`iss=...`, `nbf=...`);
    an override of None removes that claim.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": api_key,
        "sub": str(user_id),
        "exp": now + exp_in,
        "nbf": now,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": secrets.token_hex(16),
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, api_secret, algorithm="HS256")
