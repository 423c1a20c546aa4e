"""Small pieces of the simulator: names, signing, parameters, CLI config, determinism."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import ValidationError

from pikcel_sim.pikcel import FaultConfig, SimConfig, Simulator
from pikcel_sim.pikcel.cli import build_config, parse_api_keys
from pikcel_sim.pikcel.faults import FaultMiddleware, endpoint_name
from pikcel_sim.pikcel.tools import TOOLS, check_parameters
from pikcel_sim.pikcel.webhooks import _corrupt, sign, signing_key


def test_endpoint_names() -> None:
    assert endpoint_name("GET", "/api/jobs/job_abc") == "GET /api/jobs/{id}"
    assert endpoint_name("POST", "/api/jobs/job_abc/cancel") == "POST /api/jobs/{id}/cancel"
    assert endpoint_name("POST", "/api/jobs/dispatch") == "POST /api/jobs/dispatch"
    assert endpoint_name("GET", "/api/jobs") == "GET /api/jobs"


def test_sign_matches_the_contract() -> None:
    key = signing_key("whsec_" + base64.b64encode(b"k3y").decode())
    assert key == b"k3y" and signing_key("plain") == b"plain"
    headers = sign(key, "msg_1", 1700000000, b"{}")
    mac = hmac.new(b"k3y", b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    assert headers["X-Pikcel-Signature"] == hmac.new(b"k3y", b"{}", hashlib.sha256).hexdigest()
    for value in (headers["webhook-signature"], headers["X-Pikcel-Signature"]):
        bad = _corrupt(value)
        assert bad != value and len(bad) == len(value) and bad.lower() != value.lower()
    with pytest.raises(ValueError):
        signing_key("whsec_!!!")


def test_parameter_bounds() -> None:
    assert check_parameters(TOOLS["upscale-2x"], {"scale": 2}) == []
    assert check_parameters(TOOLS["upscale-2x"], {"scale": 9}) == [
        "scale must be between 1 and 4"]
    assert check_parameters(TOOLS["upscale-2x"], {"scale": "big"}) == ["scale must be a number"]
    assert check_parameters(TOOLS["convert-webp"], {"output_format": "bmp"})


def test_cli_config() -> None:
    assert parse_api_keys("") == {}
    assert parse_api_keys("k1, k2=shop-b,") == {"k1": "user-1", "k2": "shop-b"}
    config = build_config(seed=3, api_key="k", time_scale=0.5, public_url="http://x/",
                          error_rate=0.2, retry_after=2)
    assert config.api_keys == {"k": "user-1"} and not config.open_mode
    assert config.public_url == "http://x" and config.faults.error_rate == 0.2
    assert build_config().open_mode
    with pytest.raises(ValidationError):
        build_config(error_rate=3)


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        SimConfig(time_scale=0)
    with pytest.raises(ValidationError):
        FaultConfig(throttle_rate=-0.1)
    with pytest.raises(ValueError):
        Simulator(SimConfig(webhook_secret="whsec_not base64"))
    assert Simulator(SimConfig()).config.seed is not None  # a random seed is drawn


def decisions(seed: int) -> list[tuple[int | None, bool, int | None]]:
    sim = Simulator(SimConfig(seed=seed, faults=FaultConfig(
        error_rate=0.3, throttle_rate=0.0, malformed_rate=0.2, commit_before_error=0.5)))
    middleware = FaultMiddleware(None, sim)
    found = []
    for _ in range(50):
        d = middleware.decide("POST /api/jobs/dispatch", "POST")
        found.append((d.error, d.commit, d.throttle if not d.malformed else -1))
    return found


def test_fault_decisions_repeat_with_the_seed() -> None:
    assert decisions(1) == decisions(1)
    assert decisions(1) != decisions(2)


def test_job_ids_follow_the_seed() -> None:
    def ids(seed: int) -> list[str]:
        sim = Simulator(SimConfig(seed=seed, api_keys={"k": "u"}, auto_progress=False))
        user = sim.users_by_key["k"]
        return [sim.create_job(user, TOOLS["convert-webp"], input_image_url="http://x/y.png",
                               parameters={}, template_id=None, priority="normal",
                               webhook_url=None, metadata=None, origin="http://s/").id
                for _ in range(3)]

    first = ids(5)
    assert first == ids(5) and first != ids(6)
    assert all(i.startswith("job_") and len(i) == 28 for i in first)
