"""Token endpoint (token exchange, refresh, authorization code) and OAuth authorize."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from .hosts import query_hmac, shop_from_host
from .store import AuthCode, SimState

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
ONLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:online-access-token"
NOT_FOUND = {"errors": "Not Found"}


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def _read_params(request: Request) -> dict[str, Any]:
    """JSON or form body (Shopify takes both; its Python library sends JSON), plus query."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if "application/json" in content_type:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ValueError("body is not a JSON object")
        params.update(body)
    elif content_type:
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def verify_subject_token(state: SimState, token: str, shop: str) -> dict[str, Any]:
    """Verify a session token as Shopify does before exchanging it; raises ValueError."""
    config = state.config
    secrets_to_try = [config.api_secret] + (
        [config.old_api_secret] if config.old_api_secret else []
    )
    last_error: Exception | None = None
    for secret in secrets_to_try:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=config.api_key,
                leeway=config.session_token_leeway,
                options={"require": ["exp", "nbf", "iss", "dest", "aud"]},
            )
            break
        except jwt.InvalidSignatureError as exc:
            last_error = exc
            continue
        except jwt.PyJWTError as exc:
            raise ValueError(str(exc)) from exc
    else:
        raise ValueError(str(last_error or "signature verification failed"))
    dest_host = urlsplit(str(claims["dest"])).hostname
    iss_host = urlsplit(str(claims["iss"])).hostname
    if dest_host != shop:
        raise ValueError("token dest does not match the shop")
    if iss_host != dest_host:
        raise ValueError("token iss does not match dest")
    return claims


def register_oauth(app: FastAPI, state: SimState) -> None:
    config = state.config

    def known_or_created(shop: str) -> bool:
        if shop in state.shops:
            return True
        if config.auto_create_shops:
            state.create_shop(shop)
            return True
        return False

    @app.post("/admin/oauth/access_token")
    async def access_token(request: Request) -> Response:
        shop = shop_from_host(request.headers.get("host"))
        if shop is None:
            return JSONResponse(NOT_FOUND, status_code=404)
        try:
            params = await _read_params(request)
        except ValueError:
            return _oauth_error("invalid_request", "The request body could not be parsed")
        grant = str(
            params.get("grant_type") or ("authorization_code" if params.get("code") else "")
        )
        state.count("token_requests", grant or "missing")
        client_ok = hmac.compare_digest(str(params.get("client_id", "")), config.api_key) and (
            hmac.compare_digest(str(params.get("client_secret", "")), config.api_secret)
        )
        if not client_ok:
            return _oauth_error("invalid_client", "Client credentials are invalid", 401)

        if grant == TOKEN_EXCHANGE:
            if params.get("subject_token_type") != ID_TOKEN_TYPE:
                return _oauth_error("invalid_request", "subject_token_type must be an id_token")
            requested = params.get("requested_token_type") or OFFLINE_TOKEN_TYPE
            if requested not in (OFFLINE_TOKEN_TYPE, ONLINE_TOKEN_TYPE):
                return _oauth_error("invalid_request", "Unsupported requested_token_type")
            try:
                claims = verify_subject_token(state, str(params.get("subject_token", "")), shop)
            except ValueError as exc:
                return _oauth_error("invalid_subject_token", f"The subject token is invalid: {exc}")
            if not known_or_created(shop):
                return JSONResponse(NOT_FOUND, status_code=404)
            if requested == ONLINE_TOKEN_TYPE:
                user_id = int(claims["sub"]) if str(claims.get("sub", "")).isdigit() else 1
                answer = state.issue_access_token(
                    shop, mode="online", expiring=True, user_id=user_id
                )
                answer["associated_user_scope"] = answer["scope"]
                answer["session"] = claims.get("sid")
                answer["associated_user"] = {
                    "id": user_id,
                    "first_name": "Demo",
                    "last_name": "Merchant",
                    "email": f"merchant-{user_id}@example.com",
                    "account_owner": True,
                    "locale": "en",
                    "collaborator": False,
                    "email_verified": True,
                }
                return JSONResponse(answer)
            expiring = _truthy(params.get("expiring", "0"))
            return JSONResponse(state.issue_access_token(shop, mode="offline", expiring=expiring))

        if grant == "refresh_token":
            token = str(params.get("refresh_token", ""))
            with state.lock:
                record = state.refresh_tokens.get(token)
                if (
                    record is None
                    or record.shop != shop
                    or record.used
                    or record.expires_at <= time.time()
                ):
                    return _oauth_error(
                        "invalid_grant",
                        "The refresh token is invalid, expired, revoked or was already used",
                    )
                record.used = True
            return JSONResponse(
                state.issue_access_token(shop, mode="offline", expiring=True, scope=record.scope)
            )

        if grant == "authorization_code":
            code = str(params.get("code", ""))
            with state.lock:
                entry = state.auth_codes.get(code)
                if (
                    entry is None
                    or entry.shop != shop
                    or entry.used
                    or entry.expires_at <= time.time()
                ):
                    return _oauth_error(
                        "invalid_request",
                        "The authorization code was not found or was already used",
                    )
                entry.used = True
            expiring = _truthy(params.get("expiring", "0"))
            return JSONResponse(
                state.issue_access_token(shop, mode="offline", expiring=expiring, scope=entry.scope)
            )

        return _oauth_error("unsupported_grant_type", f"Unsupported grant_type '{grant}'")

    @app.get("/admin/oauth/authorize")
    async def authorize(request: Request) -> Response:
        """Shopify's install/consent screen, auto-approved: 302 back with a signed query."""
        shop = shop_from_host(request.headers.get("host"))
        if shop is None:
            return JSONResponse(NOT_FOUND, status_code=404)
        query = request.query_params
        if query.get("client_id") != config.api_key:
            return PlainTextResponse(
                "Oauth error invalid_request: The client_id is not valid", status_code=400
            )
        redirect_uri = query.get("redirect_uri", "")
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            return PlainTextResponse(
                "Oauth error invalid_request: The redirect_uri is missing or not whitelisted",
                status_code=400,
            )
        if not known_or_created(shop):
            return JSONResponse(NOT_FOUND, status_code=404)
        code = secrets.token_hex(16)
        with state.lock:
            state.auth_codes[code] = AuthCode(
                code=code,
                shop=shop,
                scope=query.get("scope") or config.scopes,
                expires_at=time.time() + 600,
            )
        host = base64.b64encode(f"admin.shopify.com/store/{shop.split('.')[0]}".encode())
        params = {
            "code": code,
            "host": host.decode().rstrip("="),
            "shop": shop,
            "state": query.get("state", ""),
            "timestamp": str(int(time.time())),
        }
        params["hmac"] = query_hmac(params.items(), config.api_secret)
        separator = "&" if "?" in redirect_uri else "?"
        ordered = {k: params[k] for k in ("code", "hmac", "host", "shop", "state", "timestamp")}
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(ordered)}", status_code=302)
