"""Sign in and out of the standalone (non-embedded) app."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from pikcel_jobs.config import Settings
from pikcel_jobs.shops.auth import SESSION_COOKIE
from pikcel_jobs.web import csrf
from pikcel_jobs.web.pages.common import (
    DEMO_SHOP,
    PageRoute,
    error_page,
    maybe_shop,
    redirect,
    set_session_cookie,
    signin_page,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def safe_next(value: object) -> str:
    """Only our own pages: no open redirect through `next`."""
    if (
        isinstance(value, str)
        and value.startswith("/app")
        and not any(c in value for c in ("\\", "\n", "\r", "//"))
    ):
        return value
    return "/app"


@router.get("/app/signin", response_class=HTMLResponse)
async def signin_form(request: Request) -> HTMLResponse:
    return signin_page(request, status_code=200)


@router.post("/app/signin")
async def signin(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    await csrf.check_csrf(request, None)
    if settings.env not in ("demo", "test"):
        return error_page(
            request, 403, "Sign in through Shopify",
            "Open this app from your Shopify admin: Apps → PikcelAI.",
        )  # fmt: skip
    form = await request.form()
    response = redirect(request, safe_next(form.get("next")), flash=f"Signed in as {DEMO_SHOP}.")
    set_session_cookie(request, response, DEMO_SHOP)
    return response


@router.post("/app/signout")
async def signout(request: Request) -> Response:
    await csrf.check_csrf(request, maybe_shop(request))
    response = redirect(request, "/app/signin")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
