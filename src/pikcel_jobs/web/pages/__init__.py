"""Server-rendered pages under /app (Jinja2), and the static files they use.

`install_pages` includes the `router` of every module in this package (so a new page
module needs no registration), then a last catch-all that answers unknown /app paths
with an HTML 404. Pages get security headers (CSP without inline scripts, framing only
by Shopify admin, nosniff)."""

from __future__ import annotations

import importlib
import pkgutil
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pikcel_jobs.shopify.errors import InvalidShopDomain
from pikcel_jobs.shopify.hosts import validate_shop_domain
from pikcel_jobs.web.pages.common import STATIC_DIR, PageRoute, error_page

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https: http:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors https://admin.shopify.com",
    ]
)


def content_security_policy(query_string: bytes) -> str:
    """Framing by Shopify admin only; the shop's own admin domain is added when the
    embedded load names it (`?shop=name.myshopify.com`, as Shopify sends). Never a
    wildcard: any shop's storefront could frame the app with `*.myshopify.com`."""
    shop = parse_qs(query_string.decode("latin-1")).get("shop", [""])[0]
    try:
        domain = validate_shop_domain(shop)
    except InvalidShopDomain:
        return CONTENT_SECURITY_POLICY
    return f"{CONTENT_SECURITY_POLICY} https://{domain}"
PAGE_PREFIXES = ("/app", "/static")


class PageSecurityHeaders:
    """Pure ASGI (safe with streaming responses): headers on /app and /static only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PAGE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                csp = content_security_policy(scope.get("query_string", b""))
                extra = [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                ]
                if path.startswith("/app"):
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def page_routers() -> list[APIRouter]:
    routers = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers


fallback = APIRouter(route_class=PageRoute)


@fallback.api_route("/app/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
async def unknown_page(request: Request, rest: str) -> HTMLResponse:
    return error_page(
        request, 404, "We couldn't find that page",
        "The address may be mistyped, or the page has moved. Use the menu to find your way.",
    )  # fmt: skip


def install_pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in page_routers():
        app.include_router(router)
    app.include_router(fallback)
    app.add_middleware(PageSecurityHeaders)
