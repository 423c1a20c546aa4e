"""One exception family for everything that can go wrong talking to PikcelAI.

`str(exc)` is a sentence a merchant can read; `exc.retryable` tells the worker whether
trying again later may succeed (back off durably) or the job should fail for good.
"""

from __future__ import annotations

from typing import Any


class PikcelError(Exception):
    """Base of every PikcelAI client error."""

    code: str = "PIKCEL_ERROR"
    retryable: bool = False
    retry_after: float | None = None
    status: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PikcelNetworkError(PikcelError):
    """PikcelAI could not be reached, or did not answer in time."""

    code = "NETWORK_ERROR"
    retryable = True

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        if timeout:
            self.code = "TIMEOUT"

    def __str__(self) -> str:
        what = "did not answer in time" if self.timeout else "could not be reached"
        return f"PikcelAI {what} ({self.message}). It will be tried again."


class PikcelAPIError(PikcelError):
    """PikcelAI answered with an error envelope (or an unusable body)."""

    def __init__(
        self, code: str, message: str, status: int | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.details = details
        self.retryable = status is not None and (status >= 500 or status in (408, 429))

    def __str__(self) -> str:
        where = f" (HTTP {self.status}, {self.code})" if self.status else f" ({self.code})"
        if self.retryable:
            return f"PikcelAI had a temporary problem: {self.message}{where}"
        return f"PikcelAI refused the request: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"status={self.status!r})"
        )


class PikcelAuthError(PikcelAPIError):
    """401/403: the API key is missing, wrong or revoked."""

    def __str__(self) -> str:
        return (
            f"PikcelAI rejected the API key: {self.message} (HTTP {self.status}). "
            "Check PIKCEL_API_KEY."
        )


class PikcelNotFound(PikcelAPIError):
    """404: the job (or other resource) does not exist for this account."""

    def __str__(self) -> str:
        return f"PikcelAI does not know it: {self.message} (HTTP 404)"


class PikcelValidationError(PikcelAPIError):
    """400/422: the request itself is wrong (unknown tool, bad parameters, ...)."""


class PikcelInsufficientCredits(PikcelAPIError):
    """402: the PikcelAI account has not enough credits; top it up and retry."""

    def __str__(self) -> str:
        return (
            f"Not enough PikcelAI credits: {self.message} Top up the PikcelAI account "
            "and retry the job."
        )


class PikcelRateLimited(PikcelAPIError):
    """429 that outlasted the call's retry budget; `retry_after` says when to come back."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = 429,
        details: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, status, details)
        self.retry_after = retry_after
        self.retryable = True

    def __str__(self) -> str:
        when = f" in {self.retry_after:g} s" if self.retry_after is not None else " later"
        return f"PikcelAI is busy (rate limited); it will be tried again{when}."


class PikcelServerError(PikcelAPIError):
    """5xx from PikcelAI: temporary on their side."""


class PikcelBadResponse(PikcelAPIError):
    """The body was not the JSON envelope the contract promises (treated like a 5xx)."""

    def __init__(self, message: str, status: int | None = None, details: Any = None) -> None:
        super().__init__("BAD_RESPONSE", message, status, details)
        self.retryable = True

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status else ""
        return f"PikcelAI sent an unreadable answer{where}: {self.message}"


def api_error(
    status: int, code: str, message: str, details: Any = None, retry_after: float | None = None
) -> PikcelAPIError:
    """The right subclass for an error envelope received with `status`."""
    if status == 429:
        return PikcelRateLimited(code, message, status, details, retry_after=retry_after)
    exc = _api_error(status, code, message, details)
    exc.retry_after = retry_after  # a 503 may say when to come back too
    return exc


def _api_error(status: int, code: str, message: str, details: Any) -> PikcelAPIError:
    if status in (401, 403):
        return PikcelAuthError(code, message, status, details)
    if status == 402:
        return PikcelInsufficientCredits(code, message, status, details)
    if status == 404:
        return PikcelNotFound(code, message, status, details)
    if status in (400, 409, 413, 415, 422):
        return PikcelValidationError(code, message, status, details)
    if status >= 500:
        return PikcelServerError(code, message, status, details)
    return PikcelAPIError(code, message, status, details)
