"""Session token verification: what is accepted and what is refused, and why."""

from __future__ import annotations

import time

import jwt
import pytest

from pikcel_jobs.shopify.errors import InvalidSessionToken
from pikcel_jobs.shopify.session_token import extract_bearer, verify_session_token
from pikcel_sim.shopify.tokens import mint_session_token

KEY = "unit-api-key"
SECRET = "unit-api-secret-0123456789abcdef0123"
SHOP = "unit-shop.myshopify.com"


def mint(**overrides: object) -> str:
    return mint_session_token(SHOP, KEY, SECRET, **overrides)


def test_valid_token_gives_shop_and_user() -> None:
    claims = verify_session_token(mint(user_id=42), KEY, SECRET)
    assert claims.shop == SHOP
    assert claims.user_id == "42"
    assert claims.sid and claims.jti
    assert claims.dest == f"https://{SHOP}" and claims.iss == f"https://{SHOP}/admin"


def test_expired_within_leeway_is_accepted() -> None:
    now = int(time.time())
    token = mint(exp=now - 5, nbf=now - 65, iat=now - 65)
    assert verify_session_token(token, KEY, SECRET).shop == SHOP


def test_expired_beyond_leeway_is_refused() -> None:
    now = int(time.time())
    with pytest.raises(InvalidSessionToken) as caught:
        verify_session_token(mint(exp=now - 15, nbf=now - 75), KEY, SECRET)
    assert caught.value.reason == "expired"


def test_not_yet_valid_is_refused_beyond_leeway_only() -> None:
    now = int(time.time())
    assert verify_session_token(mint(nbf=now + 5), KEY, SECRET)
    with pytest.raises(InvalidSessionToken) as caught:
        verify_session_token(mint(nbf=now + 30, exp=now + 90), KEY, SECRET)
    assert caught.value.reason == "not_yet_valid"


@pytest.mark.parametrize(
    ("token_factory", "reason"),
    [
        (lambda: mint_session_token(SHOP, "another-app", SECRET), "wrong_audience"),
        (
            lambda: mint_session_token(SHOP, KEY, "another-secret-0123456789abcdef-0123"),
            "bad_signature",
        ),
        (lambda: mint(iss="https://other-shop.myshopify.com/admin"), "iss_dest_mismatch"),
        (
            lambda: mint(iss="https://evil.example.com/admin", dest="https://evil.example.com"),
            "bad_shop",
        ),
        (lambda: mint(dest="http://unit-shop.myshopify.com"), "bad_shop"),
        (lambda: mint(dest=None), "missing_claim"),
        (lambda: mint(exp=None), "missing_claim"),
        (lambda: "not-a-jwt", "malformed"),
        (lambda: jwt.encode({"aud": KEY}, SECRET * 2, algorithm="HS512"), "malformed"),
    ],
)
def test_refusals(token_factory: object, reason: str) -> None:
    with pytest.raises(InvalidSessionToken) as caught:
        verify_session_token(token_factory(), KEY, SECRET)  # type: ignore[operator]
    assert caught.value.reason == reason


def test_none_algorithm_is_refused() -> None:
    token = jwt.encode(
        {
            "aud": KEY,
            "dest": f"https://{SHOP}",
            "iss": f"https://{SHOP}/admin",
            "exp": int(time.time()) + 60,
            "nbf": int(time.time()),
        },
        None,
        algorithm="none",
    )
    with pytest.raises(InvalidSessionToken):
        verify_session_token(token, KEY, SECRET)


def test_previous_secret_accepted_during_rotation() -> None:
    old = "old-api-secret-0123456789abcdef0123"
    token = mint_session_token(SHOP, KEY, old)
    with pytest.raises(InvalidSessionToken):
        verify_session_token(token, KEY, SECRET)
    assert verify_session_token(token, KEY, SECRET, previous_secrets=[old]).shop == SHOP


def test_extract_bearer() -> None:
    assert extract_bearer("Bearer abc.def.ghi") == "abc.def.ghi"
    assert extract_bearer("bearer  tok ") == "tok"
    assert extract_bearer("Basic xyz") is None
    assert extract_bearer("Bearer ") is None
    assert extract_bearer(None) is None
