"""A real SMTP server (aiosmtpd) and a real HTTP webhook receiver for notification tests.

The receiver checks the Standard Webhooks signature itself (HMAC-SHA256 over
"{webhook-id}.{webhook-timestamp}.{body}" with the base64 key of a `whsec_` secret), so
it does not trust our own signing code."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pikcel_sim.serve import free_port, serve_in_thread

T = TypeVar("T")


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def mail_settings(port: int) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False,
        "mail_from": "PikcelAI <notifications@pikcel.test>",
        "notification_backoff_seconds": 0.3, "notification_backoff_max_seconds": 2.0,
        "digest_hour_utc": 0,
    }  # fmt: skip


@dataclass
class Call:
    at: float
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool
    answered: int


def signature_ok(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
    if not msg_id or abs(time.time() - int(stamp)) > 300:
        return False
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + raw, hashlib.sha256).digest()
    ).decode()
    given = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if "," in s]
    return any(hmac.compare_digest(expected, g) for g in given)


@dataclass
class Receiver:
    """POST /hooks/{name}: answers 500 to the first `fail_first[name]` calls, then 204
    (401 if the signature is wrong); records every call."""

    url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)
    calls: dict[str, list[Call]] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            name = request.path_params["name"]
            raw = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            verified = signature_ok(self.secrets.get(name, "whsec_"), headers, raw)
            calls = self.calls.setdefault(name, [])
            status = 500 if len(calls) < self.fail_first.get(name, 0) else 204
            if status == 204 and not verified:
                status = 401
            calls.append(Call(time.monotonic(), headers, json.loads(raw), verified, status))
            return Response(status_code=status)

        return Starlette(routes=[Route("/hooks/{name}", hook, methods=["POST"])])

    def hook_url(self, name: str) -> str:
        return f"{self.url}/hooks/{name}"


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serve_in_thread(receiver.app()) as url:
        receiver.url = url
        yield receiver


async def eventually(probe: Callable[[], T], *, within: float = 15.0, what: str = "") -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())
