"""Web security over loopback, on both databases: CSRF on every state-changing page
route (enumerated from the app, so a new form is covered by itself), cookie flags,
Content-Security-Policy framing by Shopify admin only, no secret in any page, answer
or log line, and per-shop rate limits on creating jobs, bulk actions and exports."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session
from pikcel_jobs.web.ratelimit import Limit
from pikcel_sim.serve import serve_in_thread
from tests.conftest import TEST_SECRETS
from tests.integration.hardening.support import app_routes, snapshot

Client = Callable[[str], httpx.AsyncClient]
IMAGE = "https://cdn.example.com/x.png"


def page_token(body: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', body)
    assert match
    return match.group(1)


async def new_job(client: httpx.AsyncClient) -> str:
    answer = await client.post(
        "/api/jobs", json={"toolId": "background-removal", "inputImageUrl": IMAGE}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job"]["id"])


async def test_every_state_changing_page_route_requires_a_csrf_token(
    client_for: Client, app_settings: Settings, sessions: async_sessionmaker[AsyncSession],
    shop: str, other_shop: str,
) -> None:  # fmt: skip
    """Without a token, with another shop's token, or with a token whose browser
    cookie is not this one: 403 and nothing changes."""
    if "postgresql" in app_settings.database_url:
        pytest.skip("no database involved: the SQLite run covers it")
    client, other = client_for(shop), client_for(other_shop)
    job_id = await new_job(client)
    template = await client.post(
        "/api/templates", json={"name": "T", "toolId": "background-removal"}
    )
    template_id = template.json()["template"]["id"]
    own_token = page_token((await client.get("/app/jobs")).text)
    other_token = page_token((await other.get("/app/jobs")).text)
    before = await snapshot(sessions, shop)
    values = {"job_id": job_id, "template_id": template_id, "action": "cancel", "rest": "x",
              "batch_id": "x", "product_id": "gid://shopify/Product/1"}  # fmt: skip
    # Every POST under /app but the catch-all, which answers an unknown page with a 404
    # and changes nothing.
    posts = [
        r for r in app_routes(create_app(app_settings))
        if r.method != "GET" and r.path.startswith("/app") and r.path != "/app/{rest}"
    ]  # fmt: skip
    assert len(posts) >= 8, posts
    for route in posts:
        url = re.sub(r"{([^}:]+)(:[^}]*)?}", lambda m: values.get(m.group(1), "x"), route.path)
        form = {"toolId": "background-removal", "imageUrls": IMAGE, "name": "CSRF", "jobIds": job_id,
                "action": "cancel", "confirm": "1"}  # fmt: skip
        for what, extra, cookies in (
            ("no token", {}, None),
            ("another shop's token", {"csrfToken": other_token}, None),
            ("a forged token", {"csrfToken": "abc.def"}, None),
            (
                "this shop's token, another browser",
                {"csrfToken": own_token},
                {"pikcel_csrf": "x" * 32},
            ),
        ):
            sender = client
            if cookies:
                sender = httpx.AsyncClient(base_url=str(client.base_url), cookies={
                    SESSION_COOKIE: sign_session(app_settings, shop), **cookies})  # fmt: skip
            answer = await sender.request(route.method, url, data={**form, **extra})
            if cookies:
                await sender.aclose()
            assert answer.status_code == 403, (route.path, what, answer.status_code)
            assert "security token" in answer.text
    assert await snapshot(sessions, shop) == before
    # With the right token the same form works (the refusals above were the token's doing).
    done = await client.post(f"/app/jobs/{job_id}/cancel", data={"csrfToken": own_token})
    assert done.status_code == 303, (done.status_code, dict(client.cookies), done.text[-3000:])


def set_cookies(answer: httpx.Response) -> dict[str, str]:
    out = {}
    for header in answer.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        out[name] = header.lower()
    return out


@pytest.fixture(scope="module")
def https_app(app_settings: Settings) -> Iterator[str]:
    """The app as deployed behind https (APP_URL https://...), served on loopback."""
    settings = app_settings.model_copy(update={"app_url": "https://jobs.example.com"})
    with serve_in_thread(create_app(settings)) as url:
        yield url


async def test_api_writes_on_the_session_cookie_must_come_from_our_origin(
    client_for: Client, api_url: str, app_settings: Settings,
    sessions: async_sessionmaker[AsyncSession], shop: str,
) -> None:  # fmt: skip
    """A page on another site can make a browser POST with our cookie (SameSite=Lax
    aside, older browsers and same-site subdomains): the browser's Origin and
    Sec-Fetch-Site give it away, and the write is refused before anything changes."""
    if "postgresql" in app_settings.database_url:
        pytest.skip("no database involved: the SQLite run covers it")
    client = client_for(shop)
    job_id = await new_job(client)
    before = await snapshot(sessions, shop)
    body = {"toolId": "background-removal", "inputImageUrl": IMAGE}
    for headers in (
        {"origin": "https://evil.example"},
        {"origin": "null"},  # sandboxed frames and file pages
        {"origin": api_url.replace("127.0.0.1", "localhost")},  # another origin, same host
        {"sec-fetch-site": "cross-site"},
    ):
        for path, payload in (("/api/jobs", body), ("/api/jobs/cancel", {"jobId": job_id})):
            answer = await client.post(path, json=payload, headers=headers)
            assert answer.status_code == 403, (headers, path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "CSRF_FAILED" and "another website" in error["message"]
    assert await snapshot(sessions, shop) == before
    # Reads are not refused, and our own pages (same origin) and API clients that send
    # no Origin at all go through.
    assert (await client.get("/api/jobs", headers={"origin": "https://evil.example"})).is_success
    own = await client.post("/api/jobs", json=body, headers={"origin": api_url})
    assert own.status_code == 201, own.text
    same_site = {"sec-fetch-site": "same-origin", "origin": api_url}
    cancelled = await client.post("/api/jobs/cancel", json={"jobId": job_id}, headers=same_site)
    assert cancelled.status_code == 200, cancelled.text
    assert (await new_job(client)) != job_id


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_cookie_flags(
    api_url: str, https_app: str, scheme: str, app_settings: Settings
) -> None:
    if "postgresql" in app_settings.database_url:
        pytest.skip("no database involved: the SQLite run covers it")
    base = https_app if scheme == "https" else api_url
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/app/signin")
        csrf = set_cookies(page)["pikcel_csrf"]
        nonce = page.cookies.get("pikcel_csrf") or ""
        # (a Secure cookie is not sent back over this loopback http, so by hand)
        answer = await client.post(
            "/app/signin", data={"csrfToken": page_token(page.text)},
            headers={"cookie": f"pikcel_csrf={nonce}"},
        )  # fmt: skip
        assert answer.status_code == 303
        cookies = {**set_cookies(answer), "pikcel_csrf": csrf}
    for name in (SESSION_COOKIE, "pikcel_csrf", "pikcel_flash"):
        flags = cookies[name]
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags, flags
        assert ("secure" in flags.split("; ")) == (scheme == "https"), flags
    assert "max-age" in cookies[SESSION_COOKIE]


async def test_pages_may_be_framed_by_shopify_admin_only(
    client_for: Client, app_settings: Settings, shop: str
) -> None:
    if "postgresql" in app_settings.database_url:
        pytest.skip("no database involved: the SQLite run covers it")
    client = client_for(shop)
    paths = [
        r.path
        for r in app_routes(create_app(app_settings))
        if r.method == "GET" and r.path.startswith("/app") and "{" not in r.path
    ]
    paths += ["/app/jobs/no-such-job", "/app/no-such-page", "/app/signin"]
    for path in paths:
        answer = await client.get(path)
        csp = answer.headers.get("content-security-policy", "")
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
        assert directives.get("frame-ancestors") == "https://admin.shopify.com", (path, csp)
        assert (
            "'unsafe-inline'" not in directives.get("script-src", "") and "'unsafe-eval'" not in csp
        )
        assert directives.get("object-src") == "'none'"
        assert answer.headers.get("x-content-type-options") == "nosniff"
    # An embedded load names its shop: that shop's admin domain may frame it too, and
    # nothing else (a forged value is ignored).
    own = await client.get("/app", params={"shop": "my-store.myshopify.com"})
    assert own.headers["content-security-policy"].endswith(
        "frame-ancestors https://admin.shopify.com https://my-store.myshopify.com"
    )
    for forged in (
        "evil.com",
        "x.myshopify.com.evil.com",
        "*.myshopify.com",
        "a b.myshopify.com;script-src *",
    ):
        answer = await client.get("/app", params={"shop": forged})
        assert answer.headers["content-security-policy"].endswith(
            "frame-ancestors https://admin.shopify.com"
        )


def secret_forms() -> dict[str, str]:
    forms = {k: v for k, v in TEST_SECRETS.items() if k != "shopify_api_key"}  # the key is public
    raw = base64.b64decode(TEST_SECRETS["pikcel_webhook_secret"].removeprefix("whsec_")).decode()
    forms["pikcel_webhook_secret (decoded)"] = raw
    return forms


async def test_no_secret_in_pages_answers_errors_or_logs(
    client_for: Client,
    api_url: str,
    shop: str,
    caplog: pytest.LogCaptureFixture,
    app_settings: Settings,
) -> None:
    if "postgresql" in app_settings.database_url:
        pytest.skip("no database involved: the SQLite run covers it")
    client = client_for(shop)
    caplog.set_level(logging.DEBUG)
    job_id = await new_job(client)
    bodies: list[str] = []
    paths = ["/app", "/app/jobs", f"/app/jobs/{job_id}", "/app/jobs/new", "/app/settings",
             "/app/tools", "/app/analytics", "/app/templates", "/app/batches", "/api/jobs",
             f"/api/jobs/{job_id}", "/api/jobs/stats", "/api/products", "/api/templates",
             "/metrics", "/healthz", "/readyz", "/openapi.json", "/api/jobs/export.csv",
             "/api/jobs?limit=-1", "/api/jobs?cursor=%%%", "/api/jobs/nope"]  # fmt: skip
    for path in paths:
        bodies.append((await client.get(path)).text)
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        # Refusals: forged session token, expired cookie, bad webhook signatures.
        bodies.append(
            (await anonymous.get("/api/jobs", headers={"Authorization": "Bearer a.b.c"})).text
        )
        bodies.append(
            (await anonymous.get("/api/jobs", headers={"cookie": f"{SESSION_COOKIE}=forged"})).text
        )
        bodies.append((await anonymous.post("/webhooks/pikcel", content=b"{}",
                                            headers={"X-Pikcel-Signature": "00"})).text)  # fmt: skip
        bodies.append((await anonymous.post("/webhooks/shopify", content=b"{}",
                                            headers={"X-Shopify-Hmac-Sha256": "AA=="})).text)  # fmt: skip
        bodies.append((await anonymous.post("/api/jobs", content=b"{bad json",
                                            headers={"content-type": "application/json"})).text)  # fmt: skip
    await asyncio.sleep(0.2)
    everything = "\n".join(bodies) + "\n" + caplog.text
    found = [name for name, value in secret_forms().items() if value in everything]
    assert not found, f"secrets in answers or logs: {found}"
    assert len(caplog.records) > 0  # the logs were captured (there are refusals in them)


async def test_rate_limits_per_shop_on_expensive_actions(
    app_settings: Settings, shop: str, other_shop: str
) -> None:
    if "postgresql" in app_settings.database_url:
        pytest.skip("no database involved: the SQLite run covers it")
    app = create_app(app_settings)
    app.state.rate_limits = {
        "create": Limit(burst=5, per_second=0.5), "bulk": Limit(burst=3, per_second=0.5),
        "export": Limit(burst=2, per_second=0.5),
    }  # fmt: skip
    with serve_in_thread(app) as url:

        def client(s: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                base_url=url, cookies={SESSION_COOKIE: sign_session(app_settings, s)}
            )

        async with client(shop) as a, client(other_shop) as b:
            calls = {
                "create": lambda c: c.post(
                    "/api/jobs", json={"toolId": "t", "inputImageUrl": IMAGE}
                ),
                "bulk": lambda c: c.post("/api/jobs/bulk", json={"action": "retry", "filter": {}}),
                "export": lambda c: c.get("/api/jobs/export.csv"),
            }
            for action, call in calls.items():
                burst = app.state.rate_limits[action].burst
                answers = [await call(a) for _ in range(int(burst) + 3)]
                codes = [r.status_code for r in answers]
                assert codes[: int(burst)] == [answers[0].status_code] * int(burst), (action, codes)
                assert answers[0].status_code < 300 and codes[int(burst) :] == [429] * 3, (
                    action,
                    codes,
                )
                refused = answers[-1]
                assert refused.json()["error"]["code"] == "RATE_LIMITED", refused.text
                assert "try again in" in refused.json()["error"]["message"]
                wait = int(refused.headers["retry-after"])
                assert 1 <= wait <= 2, wait
                # Another shop is not affected by this one's burst.
                assert (await call(b)).status_code < 300, action
                # And the shop gets going again after Retry-After.
                await asyncio.sleep(wait)
                assert (await call(a)).status_code < 300, action
            # The page form shares the create bucket: a readable 429 page.
            for _ in range(10):
                page = await a.post("/app/jobs/new", data={"toolId": "t", "imageUrls": IMAGE})
                if page.status_code == 429:
                    break
            assert page.status_code == 429 and "text/html" in page.headers["content-type"]
