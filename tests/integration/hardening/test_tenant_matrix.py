"""Tenant isolation matrix: every route the app answers, called as shop A with shop B's
ids (in the path, in `jobId`/`jobIds` bodies, in `batchId`/`productId` filters, in bulk
and export filters, on the live stream), on both databases.

The routes come from `app.routes`, so a new route joins the matrix by itself; a route
with a path parameter the matrix does not know fails the test until it learns which of
B's ids to put there. Proven for each call: no answer carries anything of B's (ids,
names, the shop's domain, a marker hidden in B's metadata), a read of one of B's
things by id is a 404, nothing is a 5xx, and after the whole matrix every row B owns
(in every table with a `shop` column) and B's stored images are exactly as before.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.db.base import Base, new_id
from pikcel_jobs.db.engine import unit_of_work
from pikcel_jobs.storage.store import LocalImageStore
from tests.integration.hardening.support import (
    RouteInfo,
    World,
    app_routes,
    build_world,
    leaks,
    snapshot,
)

Client = Callable[[str], httpx.AsyncClient]

# Routes left out of the matrix, each with the reason.
EXCLUDED: dict[str, str] = {
    "/openapi.json": "the API description: the same for everyone, no tenant data",
    "/docs": "Swagger UI shell, no tenant data",
    "/docs/oauth2-redirect": "Swagger UI helper page, no tenant data",
    "/redoc": "ReDoc shell, no tenant data",
    "/healthz": "liveness: no shop, no data (checked below for leaks anyway)",
    "/readyz": "readiness: no shop, no data (checked below for leaks anyway)",
    "/webhooks/pikcel": "authenticated by PikcelAI's signature, not by a shop session: "
    "tests/integration/hardening/test_webhook_abuse.py",
    "/webhooks/shopify": "authenticated by Shopify's HMAC, not by a shop session: "
    "tests/integration/hardening/test_webhook_abuse.py",
    "/auth/install": "OAuth install start: the shop comes from Shopify's HMAC-signed query",
    "/auth/callback": "OAuth callback: HMAC-signed by Shopify, state-checked",
    "/static/{path}": "static CSS/JS files, the same for every shop",
    "/api/events": "an endless stream: its own test below",
    "/app/signin": "signs into the demo shop only (demo/test); no tenant data",
    "/app/signout": "clears the caller's own cookie",
}

PAGE_ACTIONS = ("retry", "cancel", "sync", "push", "approve", "reject", "revert", "reschedule")


async def path_values(
    route: RouteInfo, b: World, sessions: async_sessionmaker[AsyncSession]
) -> list[dict[str, str]]:
    """B's ids for the route's path parameters (one dict per call to make). A
    parameter `<thing>_id` the matrix does not know yet gets the id of B's row in the
    table named after it (`delivery_id` -> a table with `deliver` in its name and a
    `shop` column); a route whose parameter matches no such table fails the test."""
    known = {
        "job_id": b.job_id, "batch_id": b.batch_id, "template_id": b.template_id,
        "operation_id": b.operation_id, "schedule_id": b.schedule_id or b.template_id,
        "product_id": b.product_id, "rest": f"jobs/{b.job_id}/output",
    }  # fmt: skip
    for param in route.params:
        if param not in known and param != "action":
            found = await b_row_id(sessions, b.shop, param)
            assert found is not None, (
                f"{route.method} {route.path}: teach the tenant matrix which of shop B's "
                f"ids to put in {param!r} (or exclude the route with a reason)"
            )
            known[param] = found
    base = {p: known[p] for p in route.params if p != "action"}
    if "action" in route.params:
        return [{**base, "action": a} for a in PAGE_ACTIONS]
    return [base]


async def b_row_id(sessions: async_sessionmaker[AsyncSession], shop: str, param: str) -> str | None:
    if not param.endswith("_id"):
        return None
    word = param.removesuffix("_id").rstrip("y")[:7]
    for table in Base.metadata.sorted_tables:
        if word in table.name and "shop" in table.c and "id" in table.c:
            async with unit_of_work(sessions, read_only=True) as session:
                row = (
                    await session.execute(select(table.c.id).where(table.c.shop == shop).limit(1))
                ).first()
            # B's own row when it has one; else an id that exists nowhere (still a 404).
            return str(row[0]) if row else new_id()
    return None


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"{([^}:]+)(:[^}]*)?}", lambda m: values[m.group(1)], path)


def json_body(b: World, openapi: dict[str, Any], route: RouteInfo) -> dict[str, Any]:
    """The route's JSON body (from its OpenAPI schema) with B's things in every field
    that names one; `{jobId}` for the routes that read a JSON-or-form body by hand."""
    operation = openapi["paths"].get(route.path, {}).get(route.method.lower(), {})
    schema = (
        operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        .get("schema")
    )  # fmt: skip
    if schema is None:
        return {"jobId": b.job_id}
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    fields = all_fields(b)
    if route.path.startswith("/api/schedules"):  # a schedule runs one of our templates
        fields["templateId"] = b.template_id
    return {k: v for k, v in fields.items() if k in schema.get("properties", {})}


def all_fields(b: World) -> dict[str, Any]:
    """References to B's records, and plain values for the fields a body requires.
    (`productId`, `imageId` and a job's `templateId` are the caller's own opaque
    inputs, echoed back to it, so they are not sent as "B's".)"""
    return {
        "jobId": b.job_id, "jobIds": [b.job_id, b.batch_job_id], "action": "retry",
        "batchId": b.batch_id, "toolId": "background-removal",
        "inputImageUrl": "https://cdn.example.com/a.png", "name": "A's own",
        "cron": "0 3 * * *", "mode": "replace",
        "images": [{"inputImageUrl": "https://cdn.example.com/a.png"}],
    }  # fmt: skip


def filter_queries(b: World) -> list[dict[str, str]]:
    return [
        {},
        {"batchId": b.batch_id},
        {"productId": b.product_id},
        {"meta.sku": b.marker},
    ]


def page_token(body: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', body)
    assert match, "a page without a CSRF token"
    return match.group(1)


def check(answer: httpx.Response, what: str, b: World, sent: object = ()) -> None:
    """No 5xx, and nothing of B's in the answer but the values the caller itself sent
    (a filter echoed back in a page's filter bar reveals nothing)."""
    assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.text[:500]}"
    echo = {str(v) for v in (sent.values() if isinstance(sent, dict) else sent)}
    found = [
        f for f in leaks(answer.text + str(answer.headers), b)
        if f.split(" (", 1)[1].rstrip(")") not in echo
        and not any(f.split(" (", 1)[1].rstrip(")") in e for e in echo)
    ]  # fmt: skip
    assert not found, f"{what} leaks shop B's {found}: {answer.text[:800]}"


async def test_shop_a_reaches_nothing_of_shop_b(
    client_for: Client, sessions: async_sessionmaker[AsyncSession], app_settings: Settings,
    shop: str, other_shop: str,
) -> None:  # fmt: skip
    a, b_client = client_for(shop), client_for(other_shop)
    b = await build_world(other_shop, b_client, sessions, app_settings)
    a_job = await a.post("/api/jobs", json={
        "toolId": "background-removal", "inputImageUrl": "https://cdn.example.com/a.png",
        "metadata": {"sku": "a-own"},
    })  # fmt: skip
    assert a_job.status_code == 201
    await asyncio.sleep(0.2)  # let B's bulk operation (nothing eligible) settle
    before = await snapshot(sessions, other_shop)

    # A's page CSRF token (and the nonce cookie that goes with it) for the forms.
    token = page_token((await a.get("/app/jobs")).text)
    app = create_app(app_settings)
    routes, openapi = app_routes(app), app.openapi()
    called: list[str] = []
    for route in routes:
        if route.path in EXCLUDED:
            continue
        for values in await path_values(route, b, sessions):
            url = fill(route.path, values)
            what = f"{route.method} {url}"
            if route.method == "GET":
                queries = filter_queries(b) if not route.params else [{}]
                for query in queries:
                    answer = await a.get(url, params=query)
                    check(answer, f"{what} {query}", b, {**query, **values})
                    if set(route.params) & RECORD_PARAMS:
                        assert answer.status_code == 404, f"{what}: {answer.status_code}"
            elif route.path.startswith("/app"):
                form = {"csrfToken": token, "jobId": b.job_id, "jobIds": b.job_id,
                        "selectAll": "1", "batchId": b.batch_id, "productId": b.product_id,
                        "action": "retry", "confirm": "1", "name": "A's own",
                        "toolId": "background-removal"}  # fmt: skip
                check(await a.post(url, data=form), what, b, {"p": b.product_id, **values})
            else:
                answer = await a.request(
                    route.method, url, json=json_body(b, openapi, route),
                    headers={"X-CSRF-Token": token},
                )  # fmt: skip
                check(answer, what, b)
                if route.params or route.path in BODY_JOB_ID_ROUTES:
                    assert answer.status_code == 404, f"{what}: {answer.status_code} {answer.text}"
            called.append(what)

    # Bulk actions and exports with B's things in their filters select nothing of B's.
    for action in ("retry", "cancel", "sync", "push", "approve"):
        for selection in ({"jobIds": [b.job_id, b.batch_job_id]},
                          {"filter": {"batchId": b.batch_id}},
                          {"filter": {"productId": b.product_id}}):  # fmt: skip
            answer = await a.post("/api/jobs/bulk", json={"action": action, **selection})
            check(answer, f"bulk {action} {selection}", b)
            assert answer.json()["operation"]["total"] == 0, answer.text
    for ext in ("csv", "xlsx"):
        answer = await a.get(f"/api/jobs/export.{ext}")
        assert answer.status_code == 200
        if ext == "csv":
            assert "a-own" in answer.text  # A's own row is there
    # The unauthenticated endpoints carry no shop's data either.
    for path in ("/healthz", "/readyz", "/metrics"):
        check(await a.get(path), path, b)

    # A's lists hold A's data: the matrix did not pass by answering nothing at all.
    own = (await a.get("/api/jobs")).json()
    assert [j["id"] for j in own["jobs"] if j["metadata"].get("sku") == "a-own"]
    assert len(called) > 40, called
    print(f"tenant matrix: {len(called)} calls as shop A, {len(routes)} routes")

    await asyncio.sleep(0.3)  # any background task an attack may have started
    after = await snapshot(sessions, other_shop)
    assert after == before, "a request of shop A changed shop B's data"
    store = LocalImageStore(app_settings.storage_dir)
    assert await store.exists(b.output_key)
    # And B still sees all of it.
    assert (await b_client.get(f"/api/jobs/{b.job_id}")).status_code == 200
    assert (await b_client.get(f"/api/jobs/{b.job_id}/output")).status_code == 200


# Path parameters naming one of our records (a Shopify product id is the caller's own
# input: its page shows the calling shop's jobs for it, here none).
RECORD_PARAMS = {"job_id", "batch_id", "template_id", "operation_id", "schedule_id", "rest"}
BODY_JOB_ID_ROUTES = {
    "/api/jobs/sync", "/api/jobs/retry", "/api/jobs/cancel", "/api/jobs/push-to-shopify",
    "/api/jobs/approve", "/api/jobs/reject", "/api/jobs/revert", "/api/jobs/reschedule",
    "/api/jobs",  # creating a job in B's batch: B's batch is not found
}  # fmt: skip


async def test_live_stream_carries_only_the_shops_own_events(
    client_for: Client, sessions: async_sessionmaker[AsyncSession], app_settings: Settings,
    shop: str, other_shop: str,
) -> None:  # fmt: skip
    """A's SSE stream, resumed from the very first event id, replays none of B's
    events, and events B causes while A listens never reach A (A's own do)."""
    a, b_client = client_for(shop), client_for(other_shop)
    b = await build_world(other_shop, b_client, sessions, app_settings)
    seen = bytearray()
    a_marker = "a-live-marker"

    async def listen() -> None:
        async with a.stream("GET", "/api/events", headers={"Last-Event-ID": "1"}) as stream:
            assert stream.status_code == 200
            async for chunk in stream.aiter_bytes():
                seen.extend(chunk)
                if a_marker.encode() in seen:
                    return

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    # B acts while A listens: a new job, a cancel, a template.
    job = await b_client.post("/api/jobs", json={
        "toolId": "background-removal", "inputImageUrl": "https://cdn.example.com/b.png",
        "metadata": {"sku": b.marker},
    })  # fmt: skip
    assert job.status_code == 201
    await b_client.post("/api/jobs/cancel", json={"jobId": job.json()["job"]["id"]})
    await asyncio.sleep(0.3)
    # Then A: its own event ends the wait, so everything B caused before it is past.
    mine = await a.post("/api/jobs", json={
        "toolId": a_marker, "inputImageUrl": "https://cdn.example.com/a.png",
    })  # fmt: skip
    assert mine.status_code == 201
    await asyncio.wait_for(task, 20)
    text = seen.decode()
    found = [f"{k} ({v})" for k, v in b.markers().items() if v in text]
    assert job.json()["job"]["id"] not in text
    assert not found, f"shop A's stream carries shop B's {found}"


@pytest.mark.parametrize("ext", ["xlsx"])  # (CSV is read in the matrix; a zip hides text)
async def test_exports_filtered_by_another_shops_batch_are_empty(
    client_for: Client, sessions: async_sessionmaker[AsyncSession], app_settings: Settings,
    shop: str, other_shop: str, ext: str,
) -> None:  # fmt: skip
    a, b_client = client_for(shop), client_for(other_shop)
    b = await build_world(other_shop, b_client, sessions, app_settings)
    for query in ({"batchId": b.batch_id}, {"productId": b.product_id}, {}):
        answer = await a.get(f"/api/jobs/export.{ext}", params=query)
        assert answer.status_code == 200
        if ext == "csv":
            assert not leaks(answer.text, b)
            assert len(answer.text.strip().splitlines()) == 1  # the header row only
        else:
            import io

            from openpyxl import load_workbook

            sheet = load_workbook(io.BytesIO(answer.content), read_only=True).active
            rows = list(sheet.iter_rows(values_only=True))
            assert len(rows) == 1, rows[:3]
