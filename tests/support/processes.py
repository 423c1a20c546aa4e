"""Real `pikcel-jobs` processes for topology and crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pikcel_jobs.config import Settings

BIN = Path(sys.executable).parent / "pikcel-jobs"
STARTUP_SECONDS = 2.0


def process_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The environment a separate process needs to join the same system."""
    values = {
        "DATABASE_URL": settings.database_url, "APP_URL": settings.app_url, "ENV": settings.env,
        "PIKCEL_API_URL": settings.pikcel_api_url,
        "PIKCEL_API_KEY": settings.pikcel_api_key.get_secret_value(),
        "PIKCEL_WEBHOOK_SECRET": settings.pikcel_webhook_secret.get_secret_value(),
        "SHOPIFY_API_KEY": settings.shopify_api_key,
        "SHOPIFY_API_SECRET": settings.shopify_api_secret.get_secret_value(),
        "SESSION_SECRET": settings.session_secret.get_secret_value(),
        "STORAGE_DIR": str(settings.storage_dir), "ALLOW_PRIVATE_URLS": "true",
        "POLL_INITIAL_SECONDS": settings.poll_initial_seconds,
        "POLL_MAX_SECONDS": settings.poll_max_seconds,
        "LEASE_SECONDS": settings.lease_seconds, "UPSTREAM_RPS": settings.upstream_rps,
        "UPSTREAM_CONCURRENCY": settings.upstream_concurrency,
        "WORKER_IDLE_SLEEP_SECONDS": settings.worker_idle_sleep_seconds,
        "LOG_LEVEL": "WARNING", **extra,
    }  # fmt: skip
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIKCEL_", "SHOPIFY_", "DATABASE_"))
    }
    env.update({k: str(v) for k, v in values.items()})
    return env


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.popen: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Proc:
        self.started = time.monotonic()
        handle = self.log.open("ab")
        self.popen = subprocess.Popen(
            [str(BIN), *self.args], env=self.env, stdout=handle, stderr=handle
        )
        return self

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            # A process a few milliseconds old is still importing Python and has no
            # handler yet: SIGTERM would kill it outright. Let it finish starting.
            time.sleep(max(0.0, STARTUP_SECONDS - (time.monotonic() - self.started)))
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode


def wait_http(url: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")
