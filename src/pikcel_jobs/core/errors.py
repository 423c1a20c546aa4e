"""Errors a merchant can read; the web layer turns them into the API's error envelope."""

from __future__ import annotations


class AppError(Exception):
    status_code = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"


class InvalidInput(AppError):
    status_code = 400
    code = "INVALID_INPUT"


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "UNAVAILABLE"


class UpstreamError(AppError):
    """PikcelAI or Shopify failed; the message says what happened and what to do."""

    status_code = 502
    code = "UPSTREAM_ERROR"
