"""Browser tests: Debian's Chromium driven by Playwright's async API (never a downloaded
browser), against a running stack (our app + PikcelAI simulator + a worker) on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pikcel_jobs.config import load_settings
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session
from pikcel_sim.pikcel.config import SimConfig
from tests.conftest import TEST_SECRETS
from tests.support.databases import database
from tests.support.stack import Stack, running_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DEMO_SHOP = "demo-shop.myshopify.com"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.path):
            item.add_marker(pytest.mark.browser)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("browser")
    with database("sqlite", tmp) as url:
        upgrade(url)
        settings = load_settings(
            env="test", database_url=url, storage_dir=tmp / "storage", allow_private_urls=True,
            _env_file=None, **TEST_SECRETS,
        )  # fmt: skip
        async with running_stack(settings, sim=SimConfig(seed=11, time_scale=0.05)) as running:
            yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(stack: Stack) -> AsyncIterator[object]:
    """Closed before the stack stops, so no live stream holds the server's shutdown."""
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: object, stack: Stack) -> AsyncIterator[object]:
    """A page signed in as the demo shop (the sign-in form is tested on its own)."""
    context = await browser.new_context(viewport=DESKTOP, base_url=stack.api_url)  # type: ignore[attr-defined]
    await context.add_cookies([{
        "name": SESSION_COOKIE, "value": sign_session(stack.settings, DEMO_SHOP),
        "url": stack.api_url, "httpOnly": True, "sameSite": "Lax",
    }])  # fmt: skip
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    await context.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors


async def screenshot(page: object, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # From the top, nothing focused: sticky parts and focus rings stay where a reader expects.
    await page.evaluate("window.scrollTo(0, 0); document.activeElement?.blur()")  # type: ignore[attr-defined]
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)  # type: ignore[attr-defined]
