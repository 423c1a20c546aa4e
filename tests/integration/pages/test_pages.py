"""The merchant's pages over real HTTP on both databases: each renders for a signed-in
shop, is scoped to it, refuses forms without a CSRF token, and keeps the list's filters
in the query string."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings
from pikcel_jobs.shops.auth import SESSION_COOKIE
from tests.integration.pages.support import csrf_token, make_session_token

IMAGE = "https://cdn.example.com/mug.png"
Client = Callable[[str], httpx.AsyncClient]


async def create_jobs(client: httpx.AsyncClient, n: int, **body: Any) -> list[str]:
    ids = []
    for i in range(n):
        payload = {"toolId": "background-removal", "inputImageUrl": IMAGE, **body}
        if "productId" in body and "productTitle" not in body:
            payload["productTitle"] = f"Mug {i}"
        answer = await client.post("/api/jobs", json=payload)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["job"]["id"])
    return ids


def assert_page(answer: httpx.Response, status: int = 200, *texts: str) -> str:
    assert answer.status_code == status, answer.text[-2000:]
    assert answer.headers["content-type"].startswith("text/html")
    body = answer.text
    for text in texts:
        assert text in body, f"{text!r} missing"
    return body


async def test_every_page_renders_for_a_signed_in_shop(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    product = "gid://shopify/Product/4242"
    [job_id] = await create_jobs(client, 1, productId=product, productTitle="Blue mug")
    await create_jobs(client, 2)

    body = assert_page(
        await client.get("/app"),
        200,
        "Dashboard",
        "Total jobs",
        "Success rate",
        "Active jobs",
        "Recent jobs",
        "Blue mug",
        "PikcelAI credits",
    )
    assert 'data-live="/api/events"' in body and "data-last-event-id=" in body
    # PikcelAI is not running in this test: the page says so instead of failing.
    assert "credits balance is unknown" in body

    body = assert_page(await client.get("/app/jobs"), 200, "Filters", "Blue mug", "All 3 matching")
    assert body.count("data-select-row") == 3

    body = assert_page(
        await client.get(f"/app/jobs/{job_id}"),
        200,
        "Blue mug",
        "Before and after",
        "Timeline",
        "Job created",
        "Attempts",
        "Parameters",
        "Cancel job",
    )
    assert "Retry</button>" in body  # rendered for live state changes, hidden while pending
    assert re.search(r'<span data-show-when="failed cancelled" hidden>', body)

    assert_page(
        await client.get("/app/jobs/new"),
        200,
        "New job",
        "Image URLs",
        "Parameters (JSON)",
        "credits estimated",
        "Priority",
        "Start at",
    )
    assert_page(
        await client.get("/app/jobs/new?toolId=upscale&imageUrl=https://x.example/a.png"),
        200,
        "https://x.example/a.png",
    )
    assert_page(
        await client.get("/app/products/4242"),
        200,
        "Blue mug",
        "Job history",
        "New job for this product",
    )
    assert_page(await client.get(f"/app/products/{product}"), 200, "Blue mug")
    assert_page(await client.get("/app/tools"), 200, "Tools", "can't be loaded")
    assert_page(
        await client.get("/app/settings"),
        200,
        "Notification email",
        "Review before publishing",
        "Push to the product when a job completes",
        "Default priority",
    )


async def test_empty_states_for_a_new_shop(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    assert_page(
        await client.get("/app"), 200, "No jobs yet", "Create your first job", "Nothing is running"
    )
    assert_page(await client.get("/app/jobs"), 200, "No jobs yet")
    assert_page(await client.get("/app/jobs?status=failed"), 200, "No jobs match these filters")
    assert_page(await client.get("/app/products/1"), 200, "No jobs for this product yet")


async def test_another_shops_job_is_not_found(
    client_for: Client, shop: str, other_shop: str
) -> None:
    [job_id] = await create_jobs(client_for(other_shop), 1)
    mine = client_for(shop)
    body = assert_page(await mine.get(f"/app/jobs/{job_id}"), 404, "job not found")
    assert "Dashboard" in body  # the menu stays: the merchant is still signed in
    token = csrf_token(await mine.get("/app/jobs"))
    answer = await mine.post(f"/app/jobs/{job_id}/cancel", data={"csrfToken": token})
    assert answer.status_code == 404
    assert (await client_for(other_shop).get(f"/api/jobs/{job_id}")).json()["job"][
        "status"
    ] == "pending"
    assert_page(await mine.get("/app/no/such/page"), 404, "find that page")


async def test_forms_without_a_valid_csrf_token_are_refused(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    [job_id] = await create_jobs(client, 1)
    for path, data in [
        ("/app/settings", {"defaultPriority": "high"}),
        (f"/app/jobs/{job_id}/cancel", {}),
        ("/app/jobs/new", {"toolId": "x", "imageUrls": IMAGE}),
        ("/app/jobs/bulk", {"action": "cancel", "jobIds": job_id}),
    ]:
        body = assert_page(await client.post(path, data=data), 403, "security token")
        assert "reload the page" in body
        answer = await client.post(path, data={**data, "csrfToken": "forged.0000"})
        assert_page(answer, 403, "does not match your session")
    # A token issued to another shop's session does not work here either.
    other = client_for(f"x{shop}")
    foreign = csrf_token(await other.get("/app/settings"))
    client.cookies.set("pikcel_csrf", other.cookies["pikcel_csrf"])
    assert (await client.post("/app/settings", data={"csrfToken": foreign})).status_code == 403
    assert (await client.get(f"/api/jobs/{job_id}")).json()["job"]["status"] == "pending"


async def test_settings_are_saved_and_validated(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    token = csrf_token(await client.get("/app/settings"))
    bad = await client.post("/app/settings", data={"csrfToken": token, "notificationEmail": "nope"})
    assert_page(bad, 400, "Settings were not saved", "Enter an email address")
    answer = await client.post(
        "/app/settings",
        data={
            "csrfToken": token,
            "notificationEmail": "owner@shop.example",
            "reviewBeforePublish": "on",
            "autoPush": "on",
            "defaultToolId": "upscale",
            "defaultPriority": "high",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/app/settings"
    body = assert_page(
        await client.get("/app/settings"), 200, "Settings saved.", "owner@shop.example"
    )
    assert re.search(r'name="reviewBeforePublish" checked', body)
    assert re.search(r'<option value="high" selected>', body)
    # The defaults fill the new-job form.
    new = await client.get("/app/jobs/new")
    assert (
        'name="toolId" value="upscale"' in new.text and '<option value="high" selected>' in new.text
    )


async def test_filters_round_trip_in_the_query_string(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    await create_jobs(client, 3, metadata={"collection": "summer"})
    await create_jobs(client, 2, toolId="upscale")
    cancel_id = (await create_jobs(client, 1, toolId="upscale"))[0]
    assert (await client.post("/api/jobs/cancel", json={"jobId": cancel_id})).status_code == 200

    # What the filter form submits (empty fields, metadata as key + value) becomes the
    # API's own query string, bookmarkable.
    form = "status=pending&toolId=&productId=&batchId=&from=&to=&q=&metaKey=collection&metaValue=summer&limit=25"
    answer = await client.get(f"/app/jobs?{form}")
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert dict(parse_qsl(urlsplit(location).query)) == {
        "status": "pending",
        "meta.collection": "summer",
        "limit": "25",
    }
    body = assert_page(await client.get(location), 200, "All 3 matching")
    api = (await client.get(f"/api/jobs?{urlsplit(location).query}")).json()
    assert api["total"] == 3 and body.count("data-select-row") == 3
    assert 'name="meta.collection" value="summer"' in body
    assert re.search(r'value="pending" checked', body)

    body = assert_page(
        await client.get("/app/jobs?status=pending&status=cancelled&toolId=upscale"), 200
    )
    assert body.count("data-select-row") == 3
    assert re.search(r'value="cancelled" checked', body) and re.search(
        r'value="pending" checked', body
    )
    assert '<input class="input" id="f-tool" name="toolId" value="upscale"' in body

    # A date-only "until" includes that whole day.
    answer = await client.get("/app/jobs?to=2099-12-31")
    assert answer.status_code == 302 and "to=2099-12-31T23%3A59%3A59" in answer.headers["location"]

    # Invalid filters: the page explains, with a way out.
    assert_page(await client.get("/app/jobs?status=lost"), 400, "can't be used", "Clear filters")
    assert_page(await client.get("/app/jobs?from=2030-01-02&to=2030-01-01T00:00:00"), 400, "before")


async def test_keyset_pages_keep_the_filters(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    ids = await create_jobs(client, 30, toolId="upscale")
    await create_jobs(client, 2, toolId="retouch")
    seen: list[str] = []
    url = "/app/jobs?toolId=upscale&limit=25"
    pages = 0
    while url:
        body = assert_page(await client.get(url), 200)
        pages += 1
        seen += re.findall(r'name="jobIds" value="([^"]+)"', body)
        nxt = re.search(r'href="(/app/jobs\?[^"]+)" rel="next"', body)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
        if url:
            assert "toolId=upscale" in url and "limit=25" in url and "cursor=" in url
    assert pages == 2 and seen == list(reversed(ids))  # newest first, nothing twice
    assert 'rel="first"' in body


async def test_new_job_form_creates_jobs_and_batches(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    token = csrf_token(await client.get("/app/jobs/new"))
    base = {"csrfToken": token, "toolId": "background-removal", "priority": "high"}

    bad = await client.post(
        "/app/jobs/new", data={**base, "imageUrls": IMAGE, "parameters": "{quality: high"}
    )
    body = assert_page(bad, 400, "The job was not created", "Parameters are not valid JSON")
    assert "{quality: high" in body  # what the merchant typed is kept
    assert_page(
        await client.post("/app/jobs/new", data={**base, "imageUrls": IMAGE, "parameters": "[1]"}),
        400,
        "must be a JSON object",
    )
    assert_page(
        await client.post("/app/jobs/new", data={**base, "parameters": "{}"}), 400, "Add an image"
    )
    assert_page(
        await client.post("/app/jobs/new", data={**base, "imageUrls": "not a url"}),
        400,
        "An image is not usable",
    )
    preview = await client.post("/app/jobs/new", data={**base, "imageUrls": IMAGE, "preview": "1"})
    assert_page(preview, 200, "credits estimated")

    answer = await client.post(
        "/app/jobs/new",
        data={
            **base,
            "imageUrls": IMAGE,
            "parameters": '{"quality": "high"}',
            "productId": "gid://shopify/Product/7",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/app/jobs/")
    job_id = answer.headers["location"].rsplit("/", 1)[-1]
    job = (await client.get(f"/api/jobs/{job_id}")).json()["job"]
    assert job["parameters"] == {"quality": "high"} and job["priority"] == "high"
    assert job["productId"] == "gid://shopify/Product/7"
    assert_page(await client.get(answer.headers["location"]), 200, "Job created.")

    answer = await client.post(
        "/app/jobs/new",
        data={
            **base,
            "imageUrls": f"{IMAGE}\nhttps://cdn.example.com/b.png",
            "batchName": "Spring",
            "scheduledFor": "2099-01-01T10:00",
            "tzOffset": "-60",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/app/jobs?batchId=")
    listing = (await client.get("/api/jobs?" + answer.headers["location"].split("?", 1)[1])).json()
    assert listing["total"] == 2
    assert {j["status"] for j in listing["jobs"]} == {"scheduled"}
    assert listing["jobs"][0]["scheduledFor"].startswith("2099-01-01T09:00")


async def test_job_actions_work_without_javascript(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    [job_id] = await create_jobs(client, 1)
    token = csrf_token(await client.get(f"/app/jobs/{job_id}"))
    answer = await client.post(f"/app/jobs/{job_id}/cancel", data={"csrfToken": token})
    assert answer.status_code == 303 and answer.headers["location"] == f"/app/jobs/{job_id}"
    body = assert_page(await client.get(f"/app/jobs/{job_id}"), 200, "The job was cancelled.")
    assert 'data-status="cancelled"' in body
    again = await client.post(f"/app/jobs/{job_id}/cancel", data={"csrfToken": token})
    assert_page(await client.get(again.headers["location"]), 200, "already finished")
    answer = await client.post(f"/app/jobs/{job_id}/retry", data={"csrfToken": token})
    assert_page(await client.get(answer.headers["location"]), 200, "Retrying")
    assert (await client.get(f"/api/jobs/{job_id}")).json()["job"]["attempt"] == 2


async def test_bulk_without_javascript_confirms_with_counts(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    ids = await create_jobs(client, 3)
    await client.post("/api/jobs/cancel", json={"jobId": ids[0]})
    token = csrf_token(await client.get("/app/jobs"))
    form = {"csrfToken": token, "action": "retry", "filter": "", "back": "/app/jobs"}
    body = assert_page(
        await client.post("/app/jobs/bulk", data={**form, "jobIds": ids}),
        200,
        "Retry 1 job?",
        "3 jobs selected",
        "only failed or cancelled",
    )
    body = assert_page(
        await client.post(
            "/app/jobs/bulk",
            data={**form, "action": "cancel", "scope": "filter", "filter": "status=pending"},
        ),
        200,
        "Cancel 2 jobs?",
        "All 2 jobs matching the filter",
    )
    assert 'name="confirm" value="1"' in body
    answer = await client.post(
        "/app/jobs/bulk",
        data={
            **form,
            "action": "cancel",
            "scope": "filter",
            "filter": "status=pending",
            "confirm": "1",
        },
    )
    assert answer.status_code == 303
    assert_page(await client.get(answer.headers["location"]), 200, "Cancel started for 2 jobs")
    nothing = await client.post("/app/jobs/bulk", data={**form})
    assert_page(await client.get(nothing.headers["location"]), 200, "Select at least one job")


async def test_sign_in_page_and_session_cookie(api_url: str, app_settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        body = assert_page(
            await anonymous.get("/app/jobs?status=failed"),
            401,
            "Continue as demo-shop.myshopify.com",
        )
        assert 'name="next" value="/app/jobs?status=failed"' in body
        token = csrf_token(await anonymous.get("/app/signin"))
        assert (await anonymous.post("/app/signin", data={"next": "/app"})).status_code == 403
        answer = await anonymous.post(
            "/app/signin", data={"csrfToken": token, "next": "/app/jobs?status=failed"}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/app/jobs?status=failed"
        cookie = answer.headers["set-cookie"]
        assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert_page(
            await anonymous.get("/app/jobs"), 200, "demo-shop.myshopify.com", "Signed in as"
        )
        redirect = await anonymous.post(
            "/app/signin", data={"csrfToken": token, "next": "//evil.example"}
        )
        assert redirect.headers["location"] == "/app"


async def test_embedded_first_load_sets_the_session(
    api_url: str, app_settings: Settings, shop: str
) -> None:
    token = make_session_token(app_settings, shop)
    async with httpx.AsyncClient(base_url=api_url) as browser:
        answer = await browser.get("/app", params={"id_token": token})
        assert_page(answer, 200, shop)
        assert SESSION_COOKIE in browser.cookies
        assert_page(await browser.get("/app/settings"), 200, shop)
        bad = await httpx.AsyncClient(base_url=api_url).get("/app", params={"id_token": "x.y.z"})
        assert_page(bad, 401, "session has expired")


async def test_production_sign_in_points_to_shopify_admin(app_settings: Settings) -> None:
    settings = app_settings.model_copy(
        update={"env": "production", "app_url": "https://jobs.example"}
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="https://jobs.example") as client:
        body = assert_page(await client.get("/app"), 401, "Open this app from your Shopify admin")
        assert "Continue as" not in body
        token = csrf_token(await client.get("/app/signin"))
        refused = await client.post("/app/signin", data={"csrfToken": token})
        assert refused.status_code == 403


async def test_pages_send_security_headers(client_for: Client, shop: str) -> None:
    client = client_for(shop)
    answer = await client.get("/app")
    csp = answer.headers["content-security-policy"]
    assert csp.endswith("frame-ancestors https://admin.shopify.com")  # no *.myshopify.com
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert (
        "<script>" not in answer.text
        and " onclick=" not in answer.text
        and " style=" not in answer.text
    )
    static = await client.get(re.search(r'src="(/static/app\.js\?v=\w+)"', answer.text).group(1))
    assert static.status_code == 200 and "javascript" in static.headers["content-type"]
    assert static.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/static/app.css")).status_code == 200
    # JSON routes keep their own headers.
    assert "content-security-policy" not in (await client.get("/api/jobs")).headers


@pytest.mark.parametrize(
    "path", ["/app", "/app/jobs", "/app/jobs/new", "/app/tools", "/app/settings"]
)
async def test_pages_are_accessible_landmarks(client_for: Client, shop: str, path: str) -> None:
    body = assert_page(await client_for(shop).get(path), 200)
    assert '<html lang="en">' in body and '<main id="main"' in body and 'aria-label="Main"' in body
    assert body.count("<h1") == 1 and 'class="skip-link"' in body
    # Every input has a label (by for=id, wrapping label, or aria-label).
    ids_labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', body))
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", body):
        if 'type="hidden"' in tag or "aria-label" in tag:
            continue
        match = re.search(r'id="([^"]+)"', tag)
        if match and match.group(1) in ids_labelled:
            continue
        before = body[: body.index(tag)]
        assert before.rfind("<label") > before.rfind("</label>"), f"unlabelled: {tag}"


async def test_shopify_buttons_follow_the_push_state(
    client_for: Client, shop: str, sessions: Any
) -> None:
    from sqlalchemy import update

    from pikcel_jobs.jobs.models import Job

    client = client_for(shop)
    [job_id] = await create_jobs(
        client, 1, productId="gid://shopify/Product/9", imageId="gid://shopify/MediaImage/3"
    )

    async def set_state(**values: Any) -> str:
        async with sessions() as session, session.begin():
            await session.execute(update(Job).where(Job.id == job_id).values(**values))
        return (await client.get(f"/app/jobs/{job_id}")).text

    def shown(body: str, label: str) -> bool:
        match = re.search(
            r'<span data-push-when="[^"]*"( hidden)?>\s*<form[^>]*>(?:(?!</form>).)*' + label,
            body,
            re.S,
        )
        assert match, f"{label} not rendered"
        return match.group(1) is None

    body = (await client.get(f"/app/jobs/{job_id}")).text
    assert not shown(body, "Push to Shopify")  # pending: nothing to push yet
    body = await set_state(status="completed", output_image_url=f"/api/jobs/{job_id}/output")
    assert shown(body, "Push to Shopify") and shown(body, "Replace product image")
    assert not shown(body, "Revert push") and not shown(body, "Approve")
    body = await set_state(push_status="awaiting_review")
    assert shown(body, "Approve") and shown(body, "Reject") and not shown(body, "Push to Shopify")
    body = await set_state(push_status="pushed")
    assert shown(body, "Revert push") and not shown(body, "Approve")
    # The no-JavaScript form runs the JSON route and comes back with its answer.
    token = csrf_token(await client.get(f"/app/jobs/{job_id}"))
    answer = await client.post(f"/app/jobs/{job_id}/revert", data={"csrfToken": token})
    assert answer.status_code == 303 and answer.headers["location"] == f"/app/jobs/{job_id}"
    assert 'class="banner' in (await client.get(answer.headers["location"])).text
    unknown = await client.post(f"/app/jobs/{job_id}/explode", data={"csrfToken": token})
    assert unknown.status_code == 404


async def test_embedded_launch_parameters_leave_a_clean_list_url(
    api_url: str, app_settings: Settings, shop: str
) -> None:
    token = make_session_token(app_settings, shop)
    async with httpx.AsyncClient(base_url=api_url) as browser:
        answer = await browser.get(
            "/app/jobs",
            params={
                "status": "failed",
                "shop": shop,
                "host": "YWRtaW4",
                "embedded": "1",
                "id_token": token,
            },
        )
        assert answer.status_code == 302 and answer.headers["location"] == "/app/jobs?status=failed"
        assert SESSION_COOKIE in browser.cookies
        assert_page(await browser.get(answer.headers["location"]), 200, "Filters")
