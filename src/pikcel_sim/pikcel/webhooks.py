"""Signed webhook deliveries with redelivery, plus the delivery faults."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import random
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from .store import iso

if TYPE_CHECKING:
    from .app import Simulator

USER_AGENT = "PikcelAI-Webhooks/1.0 (simulator)"


def signing_key(secret: str) -> bytes:
    """`whsec_<base64>` -> the decoded bytes; anything else -> its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("webhook secret starts with whsec_ but is not base64") from None
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Both signature schemes of the PikcelAI webhook contract, as headers."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    v1 = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    legacy = hmac.new(key, body, hashlib.sha256).hexdigest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{v1}",
        "X-Pikcel-Signature": legacy,
    }


def _corrupt(value: str) -> str:
    """Change one character so the value stays well-formed (hex/base64) but is wrong."""
    head, last = value[:-2], value[-2]
    return head + ("0" if last != "0" else "1") + value[-1]


@dataclass
class Delivery:
    msg_id: str
    job_id: str
    event: str
    url: str
    body: bytes
    corrupt: bool = False
    attempt: int = 0
    duplicate: bool = False


class WebhookSender:
    """A queue of deliveries worked by a few tasks; failures come back after a backoff."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.client: httpx.AsyncClient | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.held: dict[str, tuple[Delivery, asyncio.TimerHandle]] = {}
        self.pending = 0  # queued, held or waiting for a retry
        self.retries: dict[str, asyncio.TimerHandle] = {}

    async def start(self) -> None:
        self.client = httpx.AsyncClient(
            timeout=self.sim.config.webhook_timeout,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=self.sim.config.webhook_concurrency * 2),
        )
        self.tasks = [
            asyncio.create_task(self._worker(), name=f"pikcel-sim-webhooks-{n}")
            for n in range(self.sim.config.webhook_concurrency)
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        self.clear()
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def clear(self) -> None:
        """Drop everything queued, held or waiting for a retry (reset)."""
        for _, handle in self.held.values():
            handle.cancel()
        self.held.clear()
        for handle in self.retries.values():
            handle.cancel()
        self.retries.clear()
        while not self.queue.empty():
            self.queue.get_nowait()
        self.pending = 0

    def emit(self, event: str, job_dict: dict[str, Any]) -> None:
        """Queue `event` for the job's webhook_url (the caller checked there is one)."""
        sim = self.sim
        url = sim.jobs[job_dict["id"]].webhook_url
        if not url or not sim.config.send_webhooks:
            return
        body = json.dumps(
            {"event": event, "job_id": job_dict["id"], "job": job_dict,
             "timestamp": iso(time.time())},
            separators=(",", ":"),
        ).encode()
        faults = sim.config.faults
        rng = sim.fault_rng
        delivery = Delivery(
            msg_id="msg_" + secrets.token_hex(12), job_id=job_dict["id"], event=event, url=url,
            body=body, corrupt=rng.random() < faults.webhook_corrupt_rate,
        )
        if delivery.corrupt:
            sim.counters.faults["webhook_corrupt"] += 1
        copies = [delivery]
        if rng.random() < faults.webhook_duplicate_rate:
            sim.counters.faults["webhook_duplicate"] += 1
            copies.append(Delivery(**{**delivery.__dict__, "duplicate": True}))
        held = self.held.pop(delivery.job_id, None)
        if held is not None:
            # A delivery was held back for this one: send this one first, then it.
            held[1].cancel()
            self.pending -= 1
            copies.append(held[0])
        elif rng.random() < faults.webhook_reorder_rate:
            sim.counters.faults["webhook_reorder"] += 1
            handle = asyncio.get_running_loop().call_later(
                faults.webhook_reorder_hold_seconds, self._release, delivery.job_id
            )
            self.held[delivery.job_id] = (copies.pop(0), handle)
            self.pending += 1
        for copy in copies:
            self._put(copy)

    def _release(self, job_id: str) -> None:
        held = self.held.pop(job_id, None)
        if held is not None:
            self.pending -= 1
            self._put(held[0])

    def _put(self, delivery: Delivery) -> None:
        self.pending += 1
        self.queue.put_nowait(delivery)

    def _retry_later(self, delivery: Delivery, token: str) -> None:
        self.retries.pop(token, None)
        self.queue.put_nowait(delivery)

    async def _worker(self) -> None:
        while True:
            delivery = await self.queue.get()
            try:
                await self._attempt(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one delivery kill the worker
                self.pending -= 1
                self.sim.counters.webhooks_gave_up += 1

    async def _attempt(self, delivery: Delivery) -> None:
        sim = self.sim
        assert self.client is not None
        delivery.attempt += 1
        timestamp = int(time.time())
        headers = sign(signing_key(sim.config.webhook_secret), delivery.msg_id, timestamp,
                       delivery.body)
        if delivery.corrupt:
            headers["webhook-signature"] = _corrupt(headers["webhook-signature"])
            headers["X-Pikcel-Signature"] = _corrupt(headers["X-Pikcel-Signature"])
        headers["webhook-attempt"] = str(delivery.attempt)
        status: int | None = None
        error: str | None = None
        sim.counters.webhooks_sent += 1
        try:
            response = await self.client.post(delivery.url, content=delivery.body,
                                              headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        sim.counters.webhook_log.append({
            "webhook_id": delivery.msg_id, "event": delivery.event, "job_id": delivery.job_id,
            "url": delivery.url, "attempt": delivery.attempt, "status": status, "error": error,
            "corrupt": delivery.corrupt, "duplicate": delivery.duplicate, "at": iso(time.time()),
        })
        if ok:
            sim.counters.webhooks_delivered += 1
            self.pending -= 1
            return
        sim.counters.webhooks_failed += 1
        if delivery.attempt >= sim.config.webhook_max_attempts:
            sim.counters.webhooks_gave_up += 1
            self.pending -= 1
            return
        base = sim.config.webhook_retry_seconds * 2 ** (delivery.attempt - 1)
        delay = base * (0.8 + 0.4 * random.random())
        token = secrets.token_hex(8)
        self.retries[token] = asyncio.get_running_loop().call_later(
            delay, self._retry_later, delivery, token
        )
