"""What every page shares: rendering with the base layout, flash messages, the page
route class (HTML errors, sign-in, cookies), and small helpers.

A page module looks like:

    router = APIRouter(route_class=PageRoute)

    @router.get("/app/things", response_class=HTMLResponse)
    async def things(request: Request, shop: ShopDomain, db: Db) -> Response:
        ...
        return render(request, "things.html", {...}, shop=shop, active="things")

`install_pages` includes every `router` found in `pikcel_jobs.web.pages.*`.
Raise any `AppError` in a view (NotFound, InvalidInput, ...): `PageRoute` turns it into
a readable HTML page; a missing session shows the sign-in page.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pikcel_jobs.config import Settings
from pikcel_jobs.core.errors import AppError, Unauthorized
from pikcel_jobs.events.models import JobEvent
from pikcel_jobs.pikcel.schemas import Tool
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.shops.auth import SESSION_COOKIE, SESSION_MAX_AGE, sign_session
from pikcel_jobs.web import csrf
from pikcel_jobs.web.errors import describe_validation

log = logging.getLogger("pikcel_jobs.web.pages")
T = TypeVar("T")

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
FLASH_COOKIE = "pikcel_flash"
DEMO_SHOP = "demo-shop.myshopify.com"
UPSTREAM_TIMEOUT = 3.0

NAV_ITEMS = [
    ("dashboard", "/app", "Dashboard"),
    ("jobs", "/app/jobs", "Jobs"),
    ("new", "/app/jobs/new", "New job"),
    ("batches", "/app/batches", "Batches"),
    ("templates", "/app/templates", "Templates"),
    ("tools", "/app/tools", "Tools"),
    ("analytics", "/app/analytics", "Analytics"),
    ("settings", "/app/settings", "Settings"),
]

templates = Jinja2Templates(directory=TEMPLATES_DIR)
_static_versions: dict[str, str] = {}


def static_url(name: str) -> str:
    """`/static/<name>?v=<content hash>`: cached forever, refreshed when the file changes."""
    version = _static_versions.get(name)
    if version is None:
        try:
            version = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
        except OSError:
            version = "0"
        _static_versions[name] = version
    return f"/static/{name}?v={version}"


def query_with(params: QueryParams | dict[str, Any], **changes: Any) -> str:
    """The query string with some keys replaced (None removes); lists repeat the key."""
    pairs: list[tuple[str, str]] = []
    items = params.multi_items() if isinstance(params, QueryParams) else list(params.items())
    for key, value in items:
        if key not in changes:
            pairs.append((key, str(value)))
    for key, value in changes.items():
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return urlencode(pairs)


def number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


templates.env.globals.update(
    static_url=static_url,
    nav_items=NAV_ITEMS,
    query_with=query_with,
    tool_label=lambda job: tool_label(job),
)
templates.env.filters.update(number=number, percent=percent)


# ---- Flash messages (a signed cookie that lives for one redirect) ----


def _flash_serializer(settings: Settings) -> URLSafeSerializer:
    secret = (
        settings.session_secret.get_secret_value()
        or settings.shopify_api_secret.get_secret_value()
        or "pikcel-flash"
    )
    return URLSafeSerializer(secret, salt="pikcel-flash")


def read_flashes(request: Request) -> list[dict[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    request.state.flash_consumed = True
    try:
        data = _flash_serializer(request.app.state.settings).loads(raw)
    except BadSignature:
        return []
    return [
        {"level": str(f.get("level", "info")), "message": str(f.get("message", ""))}
        for f in data
        if isinstance(f, dict)
    ][:5]


def redirect(
    request: Request, url: str, *, flash: str | None = None, level: str = "success"
) -> Response:
    """303 See Other to `url`, carrying a one-time message to the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        value = _flash_serializer(request.app.state.settings).dumps(
            [{"level": level, "message": flash}]
        )
        response.set_cookie(
            FLASH_COOKIE, value, max_age=60, httponly=True, samesite="lax",
            secure=is_https(request.app.state.settings), path="/",
        )  # fmt: skip
    return response


def is_https(settings: Settings) -> bool:
    return settings.app_url.startswith("https://")


# ---- Rendering ----


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    shop: str | None,
    active: str | None = None,
    live: bool = False,
    last_event_id: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    ctx: dict[str, Any] = {
        "shop": shop,
        "active": active,
        "live": live,
        "last_event_id": last_event_id,
        "env": settings.env,
        "csrf_token": csrf.token_for(request, shop),
        "flashes": read_flashes(request),
        "upstream": getattr(request.state, "upstream", None),
        "now": datetime.now().astimezone(),
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


_upstream_down_until: dict[str, float] = {}
UPSTREAM_QUIET_SECONDS = 15.0


async def from_pikcel(runtime: Runtime, call: Callable[[], Awaitable[T]], what: str) -> T | None:
    """An upstream read for a page: at most `UPSTREAM_TIMEOUT` seconds, and after a
    failure not tried again for a few seconds, so pages stay fast while PikcelAI is down.
    None when it can't be read (the page says so and works without it)."""
    key = runtime.settings.pikcel_api_url
    if _upstream_down_until.get(key, 0.0) > time.monotonic():
        return None
    try:
        result = await asyncio.wait_for(call(), UPSTREAM_TIMEOUT)
    except Exception as exc:  # any client failure: the page still renders
        log.warning("%s unavailable: %s", what, exc)
        _upstream_down_until[key] = time.monotonic() + UPSTREAM_QUIET_SECONDS
        return None
    _upstream_down_until.pop(key, None)
    return result


TOOL_NAMES: dict[str, str] = {}  # last known names, for jobs recorded before dispatch


async def tools_or_none(runtime: Runtime) -> list[Tool] | None:
    """PikcelAI's catalogue (cached by the client), or None when it can't be read."""
    tools = await from_pikcel(runtime, runtime.pikcel.list_tools, "tool list")
    TOOL_NAMES.update({t.id: t.name for t in tools or []})
    return tools


def tool_label(job: Any) -> str:
    return str(job.tool_name or TOOL_NAMES.get(job.tool_id) or job.tool_id)


def has_route(request: Request, path: str, method: str = "GET") -> bool:
    """Whether the app answers `method path` (a feature check for routes other people
    are still building), by asking the router itself."""
    scope = {
        "type": "http", "path": path, "method": method, "root_path": "", "headers": [],
        "query_string": b"", "app": request.app,
    }  # fmt: skip
    return any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)


async def call_api(
    request: Request,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]] | None:
    """Call one of our own JSON routes in-process, as the caller (their cookie or
    Bearer token), so the pages' no-JavaScript forms run exactly the API's code.
    None when the route does not exist (a feature not built yet)."""
    if not has_route(request, path, method):
        return None
    headers = {k: v for k, v in request.headers.items() if k in ("cookie", "authorization")}
    transport = httpx.ASGITransport(app=request.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://pages.internal") as c:
            answer = await c.request(
                method, path, json=json, params=params, headers=headers, timeout=30
            )
        body = answer.json()
    except (httpx.HTTPError, ValueError):
        log.exception("in-process call to %s failed", path)
        return 500, {"error": {"message": "something went wrong on our side; try again"}}
    return answer.status_code, body if isinstance(body, dict) else {}


async def latest_event_id(session: AsyncSession, *, shop: str) -> int:
    """The shop's newest outbox id, so the page's live stream resumes right after it."""
    stmt = select(func.max(JobEvent.id)).where(JobEvent.shop == shop)
    return int((await session.execute(stmt)).scalar_one_or_none() or 0)


def maybe_shop(request: Request) -> str | None:
    """The signed-in shop if there is one (error pages keep the menu), else None."""
    from pikcel_jobs.shops.auth import current_shop

    try:
        return current_shop(request)
    except AppError:
        return None


def error_page(
    request: Request, status: int, title: str, message: str, *, shop: str | None = None
) -> HTMLResponse:
    shop = shop or maybe_shop(request)
    return render(
        request, "error.html", {"status": status, "title": title, "message": message},
        shop=shop, status_code=status,
    )  # fmt: skip


def signin_page(
    request: Request, *, message: str | None = None, status_code: int = 401
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not nxt.startswith("/app") or nxt.startswith("/app/signin"):
        nxt = "/app"
    return render(
        request, "signin.html",
        {"demo": settings.env in ("demo", "test"), "demo_shop": DEMO_SHOP, "next": nxt,
         "message": message},
        shop=None, status_code=status_code,
    )  # fmt: skip


ERROR_TITLES = {
    400: "Something in the request is not right",
    403: "That action was blocked",
    404: "We couldn't find that",
    409: "That can't be done right now",
    502: "PikcelAI didn't answer",
    503: "The service is busy",
}


def set_session_cookie(request: Request, response: Response, shop: str) -> None:
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE, sign_session(settings, shop), max_age=SESSION_MAX_AGE, httponly=True,
        samesite="lax", secure=is_https(settings), path="/",
    )  # fmt: skip


class PageRoute(APIRoute):
    """Route class of the pages: errors become HTML pages a merchant can read, a missing
    session shows the sign-in page, and the cookies a page needs are set on the way out."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except Unauthorized as exc:
                response = signin_page(request, message=_signin_message(request, exc))
            except csrf.CsrfError as exc:
                response = error_page(request, 403, ERROR_TITLES[403], exc.message)
            except AppError as exc:
                title = ERROR_TITLES.get(exc.status_code, "Something went wrong")
                response = error_page(request, exc.status_code, title, exc.message)
            except RequestValidationError as exc:
                response = error_page(
                    request, 400, ERROR_TITLES[400], describe_validation(list(exc.errors()))
                )
            except StarletteHTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, str) else "That didn't work."
                response = error_page(
                    request, exc.status_code, ERROR_TITLES.get(exc.status_code, detail), detail
                )
            except DBAPIError:
                log.exception("database error on a page")
                response = error_page(
                    request, 503, ERROR_TITLES[503],
                    "We couldn't reach our database just now. Wait a moment and reload the page.",
                )  # fmt: skip
            finish(request, response)
            return response

        return handler


def _signin_message(request: Request, exc: Unauthorized) -> str | None:
    if request.cookies.get(SESSION_COOKIE) or request.query_params.get("id_token"):
        return "Your session has expired. Sign in again to continue."
    return None


def finish(request: Request, response: Response) -> None:
    """Cookies a page leaves behind: the CSRF nonce, the session after an embedded first
    load (`?id_token=`), and clearing a flash message once shown."""
    settings: Settings = request.app.state.settings
    nonce = getattr(request.state, "csrf_new_nonce", None)
    if nonce:
        response.set_cookie(
            csrf.CSRF_COOKIE, nonce, httponly=True, samesite="lax", secure=is_https(settings),
            path="/",
        )  # fmt: skip
    if getattr(request.state, "flash_consumed", False) and not any(
        h.startswith(FLASH_COOKIE + "=") for h in response.headers.getlist("set-cookie")
    ):
        response.delete_cookie(FLASH_COOKIE, path="/")
    id_token = request.query_params.get("id_token")
    if id_token and response.status_code < 400:
        from pikcel_jobs.shops.auth import shop_from_session_token

        try:
            shop = shop_from_session_token(settings, id_token)
        except Unauthorized:
            return
        set_session_cookie(request, response, shop)
