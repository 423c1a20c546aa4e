"""Counting and fault injection for `/api/*`, as a pure ASGI middleware (cheap per request)."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Simulator

Scope = dict[str, Any]
Message = dict[str, Any]

_ID_SEGMENT = re.compile(r"^/api/jobs/(?!dispatch$)[^/]+")


def endpoint_name(method: str, path: str) -> str:
    """`GET /api/jobs/job_abc` -> `GET /api/jobs/{id}` (the counters' key)."""
    if path.startswith("/api/jobs/"):
        path = _ID_SEGMENT.sub("/api/jobs/{id}", path)
    return f"{method} {path}"


def _json_error(status: int, code: str, message: str,
                extra_headers: list[tuple[bytes, bytes]] | None = None) -> tuple[Message, Message]:
    body = json.dumps(
        {"success": False, "error": {"code": code, "message": message}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


@dataclass
class Decision:
    latency: float = 0.0
    throttle: int | None = None  # Retry-After seconds
    error: int | None = None  # 5xx status
    timeout: bool = False
    malformed: bool = False
    commit: bool = False  # carry the request out before answering with the fault


class FaultMiddleware:
    def __init__(self, app: Any, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    def decide(self, endpoint: str, method: str) -> Decision:
        faults = self.sim.config.faults
        counters = self.sim.counters
        rng = self.sim.fault_rng
        decision = Decision()
        if faults.endpoints and endpoint not in faults.endpoints:
            return decision
        if faults.latency_ms or faults.jitter_ms:
            decision.latency = (faults.latency_ms + rng.random() * faults.jitter_ms) / 1000
        now = time.monotonic()
        if now < self.sim.throttle_until:
            decision.throttle = max(1, math.ceil(self.sim.throttle_until - now))
            counters.faults["throttle"] += 1
            return decision
        if faults.force_throttles or (faults.throttle_rate and rng.random() < faults.throttle_rate):
            if faults.force_throttles:
                faults.force_throttles -= 1
            self.sim.throttle_until = now + faults.retry_after
            decision.throttle = faults.retry_after
            counters.faults["throttle"] += 1
            return decision
        mutating = method in ("POST", "PUT", "PATCH", "DELETE")
        if faults.force_errors or (faults.error_rate and rng.random() < faults.error_rate):
            if faults.force_errors:
                faults.force_errors -= 1
            decision.error = rng.choice(faults.error_statuses or [500])
            decision.commit = mutating and rng.random() < faults.commit_before_error
            counters.faults["error_after_commit" if decision.commit else "error"] += 1
            return decision
        if faults.force_timeouts or (faults.timeout_rate and rng.random() < faults.timeout_rate):
            if faults.force_timeouts:
                faults.force_timeouts -= 1
            decision.timeout = True
            decision.commit = mutating and rng.random() < faults.commit_before_error
            counters.faults["timeout_after_commit" if decision.commit else "timeout"] += 1
            return decision
        if faults.force_malformed or (
            faults.malformed_rate and rng.random() < faults.malformed_rate
        ):
            if faults.force_malformed:
                faults.force_malformed -= 1
            decision.malformed = True
            counters.faults["malformed"] += 1
        return decision

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.sim.started:  # mounted in another app, whose lifespan does not run ours
            await self.sim.start()
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        endpoint = endpoint_name(method, path)
        key: str | None = None
        if method == "POST" and endpoint.endswith("dispatch"):
            for name, value in scope["headers"]:
                if name == b"idempotency-key":
                    key = value.decode("latin-1")
                    break
        counters = self.sim.counters
        counters.on_request(endpoint, key)
        status = 0

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            decision = self.decide(endpoint, method)
            if decision.latency:
                await asyncio.sleep(decision.latency)
            if decision.throttle is not None:
                for message in _json_error(
                    429, "RATE_LIMITED",
                    f"Too many requests; retry after {decision.throttle} s.",
                    [(b"retry-after", str(decision.throttle).encode())],
                ):
                    await counting_send(message)
            elif decision.error is not None:
                if decision.commit:
                    await self.app(scope, receive, _discard)
                for message in _json_error(
                    decision.error, "INTERNAL_ERROR" if decision.error == 500 else
                    "SERVICE_UNAVAILABLE", "The server had a problem (injected fault).",
                ):
                    await counting_send(message)
            elif decision.timeout:
                if decision.commit:
                    await self.app(scope, receive, _discard)
                try:
                    await asyncio.wait_for(_disconnected(receive),
                                           self.sim.config.faults.timeout_seconds)
                    status = 499  # the client gave up first
                except TimeoutError:
                    for message in _json_error(504, "GATEWAY_TIMEOUT",
                                               "The request timed out (injected fault)."):
                        await counting_send(message)
            elif decision.malformed:
                await self._malformed(scope, receive, counting_send)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            counters.on_response(status or 500)

    async def _malformed(self, scope: Scope, receive: Any, send: Any) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        assert start is not None
        body = b"".join(chunks)
        broken = body[: max(1, len(body) // 2)] + b'<html>\x00"'
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(broken)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": broken})


async def _discard(message: Message) -> None:
    return None


async def _disconnected(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
