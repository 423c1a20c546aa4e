"""Errors raised by the Shopify clients. None of them carries a token or secret."""

from __future__ import annotations

from typing import Any


class ShopifyError(Exception):
    """Base of every Shopify client error."""


class InvalidShopDomain(ShopifyError, ValueError):
    """Not a `name.myshopify.com` host."""


class InvalidSessionToken(ShopifyError):
    """A session token (App Bridge ID token) failed verification.

    `reason` is one of: malformed, bad_signature, expired, not_yet_valid,
    wrong_audience, missing_claim, iss_dest_mismatch, bad_shop.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"invalid session token: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail


class ShopifyAuthError(ShopifyError):
    """Shopify refused our credentials: 401 (invalid/expired/revoked token) or 403 (scope)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ShopifyOAuthError(ShopifyAuthError):
    """A token endpoint call failed; `code` is the OAuth error / shopifyapp log code.

    `reauthorize` is true when only a new session token or install can fix it
    (invalid_grant, refresh_token_expired, invalid_subject_token, invalid_client).
    """

    REAUTHORIZE = frozenset(
        {"invalid_grant", "refresh_token_expired", "invalid_subject_token", "invalid_client"}
    )

    def __init__(self, code: str, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(
            f"Shopify token request failed: {code}" + (f": {detail}" if detail else ""),
            status=status,
        )
        self.code = code
        self.detail = detail

    @property
    def reauthorize(self) -> bool:
        return self.code in self.REAUTHORIZE


class ShopifyTransientError(ShopifyError):
    """Worth retrying later: 429/5xx after our bounded retries, or a network failure.

    `retry_after` (seconds) is Shopify's hint when it gave one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ShopifyThrottledError(ShopifyTransientError):
    """Still THROTTLED after our bounded retries."""


class ShopifyNotFound(ShopifyError):
    """The shop (HTTP 404) or an object we need does not exist."""


class ShopifyGraphQLError(ShopifyError):
    """Top-level GraphQL `errors` (malformed query, bad id, cost too high, ...)."""

    def __init__(self, errors: list[dict[str, Any]], data: Any = None) -> None:
        messages = "; ".join(str(e.get("message", e)) for e in errors) or "GraphQL error"
        super().__init__(messages)
        self.errors = errors
        self.data = data

    @property
    def codes(self) -> list[str]:
        return [
            str((e.get("extensions") or {}).get("code", ""))
            for e in self.errors
            if isinstance(e, dict)
        ]


class ShopifyUserError(ShopifyError):
    """A mutation answered with non-empty `userErrors`."""

    def __init__(self, user_errors: list[dict[str, Any]], mutation: str | None = None) -> None:
        messages = "; ".join(
            (".".join(e.get("field") or []) + ": " if e.get("field") else "")
            + str(e.get("message", ""))
            for e in user_errors
        )
        super().__init__(f"{mutation}: {messages}" if mutation else messages)
        self.user_errors = user_errors
        self.mutation = mutation

    @property
    def codes(self) -> list[str]:
        return [str(e.get("code")) for e in self.user_errors if e.get("code")]


class StagedUploadError(ShopifyError):
    """The staged upload target refused the file."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"staged upload failed with HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body
