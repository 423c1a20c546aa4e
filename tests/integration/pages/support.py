"""Helpers for the page tests: read a form's CSRF token, mint a Shopify session token."""

from __future__ import annotations

import re

import httpx

from pikcel_jobs.config import Settings
from pikcel_sim.shopify.tokens import mint_session_token


def csrf_token(page: httpx.Response) -> str:
    match = re.search(r'name="csrfToken" value="([^"]+)"', page.text) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', page.text
    )
    assert match, "the page has no CSRF token"
    return match.group(1)


def make_session_token(settings: Settings, shop: str) -> str:
    return mint_session_token(
        shop, settings.shopify_api_key, settings.shopify_api_secret.get_secret_value()
    )
