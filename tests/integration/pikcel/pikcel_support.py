"""Helpers for the PikcelAI integration tests: the simulator handle, test images, an image
origin and a webhook receiver. The fixtures that start them are in conftest.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image, ImageDraw
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pikcel_jobs.pikcel import PikcelClient
from pikcel_sim.pikcel import SimConfig, create_app
from pikcel_sim.serve import ThreadedServer

KEY_A = "sk_test_shop_a"
KEY_B = "sk_test_shop_b"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"pikcel-test-signing-key-0123456789").decode()
SIM_DEFAULTS: dict[str, Any] = {
    "seed": 7,
    "time_scale": 0.004,
    "api_keys": {KEY_A: "shop-a", KEY_B: "shop-b"},
    "webhook_secret": WEBHOOK_SECRET,
    "webhook_retry_seconds": 0.05,
    "webhook_max_attempts": 3,
    "webhook_concurrency": 1,
}


async def wait_until(predicate: Callable[[], Any], within: float = 5.0,
                     what: str = "condition") -> Any:
    """Poll `predicate` (sync) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class SimHandle:
    url: str
    app: Any
    admin: httpx.Client

    @property
    def state(self) -> Any:
        return self.app.state.sim

    def counters(self) -> dict[str, Any]:
        return self.admin.get("/_sim/counters").raise_for_status().json()

    def reset(self, **config: Any) -> SimHandle:
        """Forget all state; `config` overrides the start config until the next reset."""
        self.admin.post("/_sim/reset", json={"config": config}).raise_for_status()
        return self

    def reset_counters(self) -> None:
        self.admin.post("/_sim/counters/reset").raise_for_status()

    def faults(self, **changes: Any) -> dict[str, Any]:
        return self.admin.patch("/_sim/faults", json=changes).raise_for_status().json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.admin.patch("/_sim/config", json=changes).raise_for_status().json()

    def ledger(self) -> dict[str, Any]:
        return self.admin.get("/_sim/ledger").raise_for_status().json()

    def force(self, job_id: str, action: str, **body: Any) -> dict[str, Any]:
        return self.admin.post(f"/_sim/jobs/{job_id}/{action}", json=body).raise_for_status().json()

    def peek(self, job_id: str) -> dict[str, Any]:
        return self.admin.get(f"/_sim/jobs/{job_id}").raise_for_status().json()

    def webhook_log(self) -> list[dict[str, Any]]:
        return self.admin.get("/_sim/webhooks").raise_for_status().json()

    def api(self, key: str | None = KEY_A) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    async def wait_job(self, job_id: str, status: str | tuple[str, ...] = ("completed", "failed"),
                       within: float = 5.0) -> dict[str, Any]:
        wanted = (status,) if isinstance(status, str) else status

        def done() -> dict[str, Any] | None:
            job = self.peek(job_id)
            return job if job["status"] in wanted else None

        return await wait_until(done, within, f"job {job_id} to be {wanted}")


def fast_client(url: str, key: str = KEY_A, **kwargs: Any) -> PikcelClient:
    options: dict[str, Any] = {"timeout": 5.0, "max_attempts": 4, "max_retry_seconds": 10.0,
                               "backoff_base": 0.01, "backoff_max": 0.05}
    options.update(kwargs)
    return PikcelClient(url, key, **options)


# -- test images ------------------------------------------------------------------------------

def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def red_square_on_blue(size: tuple[int, int] = (80, 60)) -> Image.Image:
    image = Image.new("RGB", size, (20, 40, 220))
    w, h = size
    ImageDraw.Draw(image).rectangle((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(230, 20, 20))
    return image


@dataclass
class Origin:
    """Serves registered bytes at /img/<name>; anything else is a 404."""

    url: str
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def add(self, name: str, data: bytes, mime: str = "image/png") -> str:
        self.files[name] = (data, mime)
        return f"{self.url}/img/{name}"

    def add_image(self, name: str, image: Image.Image) -> str:
        return self.add(name, png(image))


# -- webhook receiver -----------------------------------------------------------------------

@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    """Records every POST to /hook/<token>; `rule(headers, body)` may return a status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.rule: Callable[[dict[str, str], bytes], int | None] | None = None

    def record(self, headers: dict[str, str], body: bytes) -> int:
        status = (self.rule(headers, body) if self.rule else None) or 204
        with self.lock:
            self.deliveries.append(Delivery(headers, body, status, time.monotonic()))
        return status

    def accepted(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if 200 <= d.status < 300]

    def all(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)


class ReceiverServer:
    """One loopback server for every test's Receiver (each gets its own path)."""

    def __init__(self) -> None:
        self.receivers: dict[str, Receiver] = {}
        app = Starlette(routes=[Route("/hook/{token}", self.hook, methods=["POST"])])
        self.server = ThreadedServer(app).start()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        receiver = self.receivers.get(request.path_params["token"])
        if receiver is None:
            return Response(status_code=410)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return Response(status_code=receiver.record(headers, body))

    def new(self) -> Receiver:
        token = secrets.token_hex(6)
        receiver = self.receivers[token] = Receiver(f"{self.server.url}/hook/{token}")
        return receiver

    def stop(self) -> None:
        self.server.stop()


def start_origin() -> tuple[Origin, ThreadedServer]:
    holder: dict[str, Origin] = {}

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        holder["o"].hits.append(name)
        found = holder["o"].files.get(name)
        if found is None:
            return Response(b"not found", status_code=404)
        return Response(found[0], media_type=found[1])

    server = ThreadedServer(Starlette(routes=[Route("/img/{name}", serve)])).start()
    origin = holder["o"] = Origin(server.url)
    origin.add_image("red-on-blue.png", red_square_on_blue())
    origin.add("not-an-image.png", b"this is plain text, not a PNG", "image/png")
    return origin, server


def start_sim(**overrides: Any) -> tuple[SimHandle, ThreadedServer]:
    app = create_app(SimConfig(**{**SIM_DEFAULTS, **overrides}))
    server = ThreadedServer(app).start()
    return SimHandle(server.url, app, httpx.Client(base_url=server.url, timeout=10)), server
