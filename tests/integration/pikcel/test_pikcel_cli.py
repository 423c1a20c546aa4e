"""`python -m pikcel_sim.pikcel.cli` serves the API standalone, keys from PIKCEL_API_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from pikcel_sim.serve import free_port


@pytest.fixture
def cli_sim() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PIKCEL_API_KEY": "cli-key=shop-cli", "PIKCEL_WEBHOOK_SECRET": "s"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pikcel_sim.pikcel.cli", "--port", str(port), "--seed", "3",
         "--time-scale", "0.01", "--error-rate", "0.25", "--no-webhooks"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/_sim/config", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stdout.read() if process.stdout else b"") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_runs_the_simulator_with_flags_and_env(cli_sim: str) -> None:
    with httpx.Client(base_url=cli_sim, timeout=5) as http:
        config = http.get("/_sim/config").json()
        assert config["seed"] == 3 and config["time_scale"] == 0.01
        assert config["api_keys"] == {"cli-key": "shop-cli"}
        assert config["webhook_secret"] == "s" and config["send_webhooks"] is False
        assert config["faults"]["error_rate"] == 0.25
        http.patch("/_sim/faults", json={"error_rate": 0})
        ok = http.get("/api/profiles/me", headers={"Authorization": "Bearer cli-key"})
        assert ok.status_code == 200 and ok.json()["data"]["email"] == "shop-cli@pikcel.test"
        assert http.get("/api/profiles/me",
                        headers={"Authorization": "Bearer other"}).status_code == 401
