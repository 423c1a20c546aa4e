"""Every failure answers `{"success": false, "error": {"code", "message"}}` with the right
status; nothing internal (stack traces, SQL, secrets) reaches the body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pikcel_jobs.core.errors import AppError

log = logging.getLogger("pikcel_jobs.web")

HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE", 422: "INVALID_INPUT", 429: "RATE_LIMITED", 503: "UNAVAILABLE",
}  # fmt: skip


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"success": False, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def describe_validation(errors: list[Any]) -> str:
    """'toolId: Field required; limit: must be ≤ 100' — names the field a merchant sent."""
    parts = []
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        where = ".".join(loc) or "request"
        msg = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "the request is not valid"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        return error_response(exc.status_code, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "INVALID_INPUT", describe_validation(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def _model_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return error_response(400, "INVALID_INPUT", describe_validation(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(OperationalError)
    async def _db_away(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return error_response(
            503, "UNAVAILABLE", "the service is briefly unavailable; try again in a moment",
            {"Retry-After": "2"},
        )  # fmt: skip

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, DataError):
            # A value the database cannot hold (PostgreSQL: a NUL character, a number or
            # date out of range) that validation let through: the request's fault.
            log.warning("value refused by the database: %s", type(exc.orig).__name__)
            return error_response(
                400, "INVALID_INPUT", "a value in the request is not valid (out of range or "
                "holding characters that cannot be stored)",
            )  # fmt: skip
        if exc.connection_invalidated:
            return error_response(
                503, "UNAVAILABLE", "the service is briefly unavailable; try again"
            )
        log.exception("database error")
        return error_response(500, "INTERNAL", "something went wrong on our side; it was logged")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "INTERNAL", "something went wrong on our side; it was logged")
