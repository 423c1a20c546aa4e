"""The merchant's pages in a real browser against the running stack: sign in, create a
job and watch it complete live, filter and paginate, bulk retry with a confirmation,
and a screenshot of each page for docs/screenshots/."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import expect

from pikcel_sim.pikcel.config import FaultConfig
from tests.browser.conftest import DEMO_SHOP, DESKTOP, PHONE, screenshot
from tests.support.stack import Stack, finished

LIVE = 20_000  # ms a live update may take at most


async def test_sign_in_and_the_dashboard(browser: Any, stack: Stack) -> None:
    context = await browser.new_context(viewport=DESKTOP, base_url=stack.api_url)
    try:
        await sign_in_and_see_the_dashboard(await context.new_page())
    finally:
        await context.close()


async def sign_in_and_see_the_dashboard(page: Any) -> None:
    await page.goto("/app/jobs?status=failed")
    await screenshot(page, "sign-in")
    await page.get_by_role("button", name=f"Continue as {DEMO_SHOP}").click()
    await page.wait_for_url(re.compile(r"/app/jobs\?status=failed$"))
    await page.get_by_role("link", name="Dashboard", exact=True).click()
    await page.wait_for_url(re.compile(r"/app$"))
    for label in ("Total jobs", "Completed", "Success rate", "Avg. processing time"):
        await page.get_by_text(label, exact=True).first.wait_for()
    # The simulator answers: the PikcelAI credits balance is shown.
    await page.locator("[data-credits-balance]").wait_for()
    live = page.locator("[data-live-toggle]")
    await live.wait_for()
    await page.locator('[data-live-toggle][data-state="live"]').wait_for()


async def test_create_a_job_and_watch_it_complete_without_reloading(
    page: Any, stack: Stack
) -> None:
    await page.goto("/app/jobs/new")
    await page.locator('input[name="toolId"][value="background-removal"]').check()
    await page.locator("[data-image-urls]").fill(stack.image_url)
    estimate = page.locator("[data-estimate]")
    assert (await estimate.inner_text()).strip() not in ("", "—")
    await page.locator("[data-parameters]").fill('{"tolerance": 30}')
    await page.get_by_label("Priority").select_option("high")
    await screenshot(page, "new-job")
    await page.get_by_role("button", name="Create job").click()
    await page.wait_for_url(re.compile(r"/app/jobs/[0-9a-f-]{36}$"))
    await page.evaluate("window.__notReloaded = true")
    tracker = page.locator("[data-tracker]")
    await page.get_by_text("Job created. It starts in a moment.").wait_for()
    finished_tracker = page.locator(
        '[data-tracker][data-status="completed"], [data-tracker][data-status="failed"]'
    )
    await finished_tracker.wait_for(timeout=LIVE)
    assert await tracker.get_attribute("data-status") == "completed"
    assert await page.evaluate("window.__notReloaded === true")  # updated in place, over SSE
    badge = page.locator("header, .page__header").locator('[data-field="status"]').first
    assert (await badge.inner_text()).strip() == "Completed"
    # The output arrived live: the comparison slider replaces the two images.
    await page.locator(".slider .slider__range").wait_for()
    await page.locator(".slider__range").fill("30")
    assert await tracker.locator('[data-field="progress-card"]').is_hidden()
    await page.get_by_role("link", name="Download").wait_for()
    timeline = await page.locator("[data-timeline]").inner_text()
    assert "processing → completed" in timeline or "pending → completed" in timeline
    await screenshot(page, "job-detail")


async def test_filter_and_paginate(page: Any, stack: Stack) -> None:
    client = stack.client(DEMO_SHOP)
    later = {"scheduledFor": "2099-01-01T09:00:00Z"}  # they wait: no upstream work needed
    await stack.create_jobs(client, 27, toolId="upscale-2x", productId="gid://shopify/Product/77",
                            productTitle="Ceramic mug", **later)  # fmt: skip
    await stack.create_jobs(client, 2, toolId="background-removal", **later)
    await page.goto("/app/jobs")
    await page.get_by_label("Tool").select_option("upscale-2x")
    await page.get_by_label("Per page").select_option("25")
    await page.get_by_role("button", name="Apply filters").click()
    await page.wait_for_url(re.compile(r"toolId=upscale-2x"))
    assert "limit=25" in page.url and "metaKey" not in page.url  # the API's own query string
    rows = page.locator("tbody tr[data-job-id]")
    assert await rows.count() == 25
    await screenshot(page, "jobs")
    first_page = [await r.get_attribute("data-job-id") for r in await rows.all()]
    await page.get_by_role("link", name="Next page").click()
    await page.wait_for_url(re.compile(r"cursor="))
    assert "toolId=upscale-2x" in page.url
    second = [await r.get_attribute("data-job-id") for r in await rows.all()]
    assert len(second) == 2 and not set(second) & set(first_page)
    await page.get_by_role("link", name="First page").click()
    await page.wait_for_url(re.compile(r"^(?!.*cursor=).*toolId=upscale-2x"))
    # Status chips: several at once, kept in the URL.
    await page.get_by_label("Scheduled").check()
    await page.get_by_label("Completed").check()
    await page.get_by_role("button", name="Apply filters").click()
    await page.wait_for_url(re.compile(r"status=scheduled.*status=completed"))
    assert await rows.count() == 25
    await page.set_viewport_size(PHONE)
    await page.goto("/app/jobs")
    await screenshot(page, "jobs-phone", full_page=False)
    await page.set_viewport_size(DESKTOP)
    await page.goto("/app/products/77")
    await page.get_by_text("Job history").wait_for()
    await screenshot(page, "product")


async def test_bulk_retry_with_confirmation(page: Any, stack: Stack) -> None:
    client = stack.client(DEMO_SHOP)
    await stack.set_faults(**FaultConfig(job_failure_rate=1.0).model_dump())
    ids = await stack.create_jobs(client, 3, toolId="auto-enhance")
    await stack.wait_for(client, ids, finished)
    await stack.set_faults()
    await page.goto("/app/jobs?status=failed&toolId=auto-enhance")
    await page.evaluate("window.__notReloaded = true")
    await page.get_by_label("All 3 matching this filter").check()
    await page.locator('[data-bulk-action="retry"]').click()
    dialog = page.locator("dialog[data-confirm-dialog]")
    await dialog.wait_for()
    assert "Retry 3 jobs?" in await dialog.inner_text()
    await screenshot(page, "bulk-confirm", full_page=False)
    await dialog.get_by_role("button", name="Retry 3 jobs").click()
    progress = page.locator("[data-bulk-progress]")
    await progress.get_by_text(re.compile(r"Done: 3 jobs retried")).wait_for(timeout=LIVE)
    # The rows follow the retried jobs live: none is still shown as failed.
    await expect(page.locator('tbody tr[data-status="failed"]')).to_have_count(0, timeout=LIVE)
    assert await page.evaluate("window.__notReloaded === true")
    jobs = await stack.wait_for(client, ids, finished)
    assert {job["attempt"] for job in jobs} == {2}
    await screenshot(page, "jobs-after-bulk-retry")


async def test_pause_holds_live_updates(page: Any, stack: Stack) -> None:
    client = stack.client(DEMO_SHOP)
    await page.goto("/app")
    await page.locator('[data-live-toggle][data-state="live"]').wait_for()
    await page.locator("[data-live-toggle]").click()  # pause
    assert await page.locator("[data-live-toggle]").get_attribute("data-state") == "paused"
    [job_id] = await stack.create_jobs(client, 1)
    await stack.wait_for(client, [job_id], finished)
    await page.locator(".live-toggle__label", has_text="waiting").wait_for()
    assert await page.locator(f'[data-job-id="{job_id}"]').count() == 0
    await page.locator("[data-live-toggle]").click()  # resume: held updates are applied
    banner = page.locator("[data-new-jobs-banner]")
    await banner.wait_for()
    assert "1 new job" in await banner.inner_text()
    assert await page.locator('[data-live-toggle][data-state="live"]').count() == 1
    await page.evaluate("localStorage.removeItem('pikcel.livePaused')")
    await screenshot(page, "dashboard")


async def test_other_pages_screenshots(page: Any, stack: Stack) -> None:
    await page.goto("/app/tools")
    await page.get_by_role("link", name="New job with this tool").first.wait_for()
    await screenshot(page, "tools")
    await page.goto("/app/settings")
    await page.get_by_label("Notification email").fill("owner@demo-shop.example")
    await page.get_by_role("button", name="Save settings").click()
    await page.get_by_text("Settings saved.").wait_for()
    await screenshot(page, "settings")
    await page.goto("/app/jobs/not-a-job")
    await page.get_by_text("job not found").wait_for()
