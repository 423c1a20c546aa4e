"""The PikcelAI HTTP client (DESIGN §3): async, typed, bounded retries, rate limited.

Retries happen inside one call only where they are safe and only for a bounded number of
attempts and seconds (durable retries are the worker's, through `next_attempt_at`):

* network errors and timeouts, 408, 502, 503, 504 and unreadable bodies: always;
* 500: for idempotent calls only (GETs, cancel, and dispatches, which always carry an
  `Idempotency-Key`, reused on every attempt so a retry can never create a second job);
* 429: after the server's `Retry-After`; if that is beyond the call's budget the
  `PikcelRateLimited` is raised at once, carrying `retry_after` for the worker.

Backoff is exponential with jitter. Every attempt takes a slot of the shared limiter.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import BaseModel, ValidationError

from .errors import (
    PikcelAPIError,
    PikcelBadResponse,
    PikcelError,
    PikcelNetworkError,
    PikcelRateLimited,
    api_error,
)
from .limiter import RateLimiter
from .schemas import BulkImage, BulkJob, Job, JobPage, Profile, Template, Tool, Upload

log = logging.getLogger("pikcel_jobs.pikcel")

M = TypeVar("M", bound=BaseModel)

USER_AGENT = "pikcel-jobs/0.1 (+PikcelAI Shopify app)"
_ALWAYS_RETRY = frozenset({408, 502, 503, 504})


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delay-seconds or an HTTP-date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class _ToolsCache:
    """Tool lists by (base URL, key), shared by every client of the process."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, list[Tool]]] = {}
        self.inflight: dict[str, asyncio.Future[list[Tool]]] = {}


_TOOLS_CACHE = _ToolsCache()


class PikcelClient:
    """One PikcelAI account (API key) over one pooled async HTTP client.

    Use as `async with PikcelClient(url, key, limiter=...) as client:` or call `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        max_attempts: int = 4,
        max_retry_seconds: float = 30.0,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        tools_ttl: float = 300.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        base = base_url.rstrip("/")
        if base.endswith("/api"):
            base = base[: -len("/api")]
        self.base_url = base
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.tools_ttl = tools_ttl
        self.attempts = 0  # HTTP attempts made, retries included
        self.retries = 0
        self._random = random.Random()
        self._cache_key = base + "|" + hashlib.sha256(api_key.encode()).hexdigest()
        self._connections = max(limiter.concurrency if limiter else 0, 20)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        # Like httpx.Timeout(timeout): each phase (waiting for a pooled connection,
        # connecting, every read) may take `timeout`; there is no total.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        # HTTP(S)_PROXY / NO_PROXY, as httpx honoured them, read once: aiohttp's
        # `trust_env` reads them, and ~/.netrc in a thread, on every request.
        self._proxy = _env_proxy(base)

    def _open_session(self) -> aiohttp.ClientSession:
        """The pooled session, made in the running loop on first use (aiohttp binds a
        session to its loop): aiohttp costs a quarter of httpx's CPU per request, which
        is what bounds one worker's polls per second (docs/benchmarks.md)."""
        session, loop = self._session, asyncio.get_running_loop()
        if session is None or session.closed or self._session_loop is not loop:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers=self._headers,
                timeout=self._timeout,
            )
            self._session, self._session_loop = session, loop
        return session

    async def __aenter__(self) -> PikcelClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- endpoints ------------------------------------------------------------------------

    async def list_tools(self, *, refresh: bool = False) -> list[Tool]:
        """The tool catalogue, cached `tools_ttl` seconds; concurrent callers share one request."""
        cache = _TOOLS_CACHE
        key = self._cache_key
        if not refresh:
            entry = cache.entries.get(key)
            if entry is not None and entry[0] > time.monotonic():
                return list(entry[1])
        loop = asyncio.get_running_loop()
        future = cache.inflight.get(key)
        if future is None or future.done() or future.get_loop() is not loop:
            future = loop.create_task(self._fetch_tools())
            cache.inflight[key] = future

            def _forget(done: asyncio.Future[list[Tool]], key: str = key) -> None:
                if cache.inflight.get(key) is done:
                    del cache.inflight[key]
                if not done.cancelled():
                    done.exception()  # retrieved: no "never retrieved" warning

            future.add_done_callback(_forget)
        return list(await asyncio.shield(future))

    async def _fetch_tools(self) -> list[Tool]:
        envelope = await self._call("GET", "/api/ai-models")
        tools = self._models(Tool, envelope["data"], "tool list")
        _TOOLS_CACHE.entries[self._cache_key] = (time.monotonic() + self.tools_ttl, tools)
        return tools

    def invalidate_tools(self) -> None:
        _TOOLS_CACHE.entries.pop(self._cache_key, None)

    async def get_tool(self, tool_id: str) -> Tool | None:
        return next((t for t in await self.list_tools() if t.id == tool_id), None)

    async def dispatch(
        self,
        tool_id: str,
        input_image_url: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        template_id: str | None = None,
        priority: str | None = None,
        webhook_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Start a job. Always idempotent: pass the job's own key so retries (ours, or the
        worker's after a crash) return the same remote job instead of creating another."""
        body: dict[str, Any] = {"tool_id": tool_id, "input_image_url": input_image_url}
        optional = {
            "parameters": dict(parameters) if parameters is not None else None,
            "template_id": template_id,
            "priority": priority,
            "webhook_url": webhook_url,
            "metadata": dict(metadata) if metadata is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        key = idempotency_key or new_idempotency_key()
        envelope = await self._call(
            "POST",
            "/api/jobs/dispatch",
            json=body,
            headers={"Idempotency-Key": key},
            retry_500=True,
        )
        return self._model(Job, envelope["data"], "job")

    async def get_job(self, job_id: str) -> Job:
        envelope = await self._call("GET", f"/api/jobs/{_segment(job_id)}")
        return self._model(Job, envelope["data"], "job")

    async def list_jobs(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        status: str | Iterable[str] | None = None,
        tool_id: str | None = None,
        from_date: datetime | date | str | None = None,
        to_date: datetime | date | str | None = None,
    ) -> JobPage:
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if offset is not None:
            params["offset"] = offset
        if status is not None:
            params["status"] = status if isinstance(status, str) else ",".join(status)
        if tool_id is not None:
            params["tool_id"] = tool_id
        for name, value in (("from_date", from_date), ("to_date", to_date)):
            if value is not None:
                params[name] = value if isinstance(value, str) else value.isoformat()
        envelope = await self._call("GET", "/api/jobs", params=params)
        data = envelope.get("data")
        page = {
            "data": data,
            "count": envelope.get("count", len(data) if isinstance(data, list) else 0),
            "total": envelope.get("total"),
            "has_more": envelope.get("has_more", False),
        }
        return self._model(JobPage, page, "job list")

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a pending/processing job; a terminal job comes back unchanged."""
        envelope = await self._call("POST", f"/api/jobs/{_segment(job_id)}/cancel", retry_500=True)
        return self._model(Job, envelope["data"], "job")

    async def get_profile(self) -> Profile:
        envelope = await self._call("GET", "/api/profiles/me")
        return self._model(Profile, envelope["data"], "profile")

    async def upload(
        self,
        data: bytes,
        filename: str,
        content_type: str = "application/octet-stream",
        folder: str | None = None,
    ) -> Upload:
        files = {"file": (filename, data, content_type)}
        form = {"folder": folder} if folder else None
        envelope = await self._call("POST", "/api/upload", files=files, data=form, retry_500=False)
        return self._model(Upload, envelope["data"], "upload")

    async def list_templates(
        self,
        *,
        category: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Template]:
        params = {
            k: v
            for k, v in (
                ("category", category),
                ("search", search),
                ("limit", limit),
                ("offset", offset),
            )
            if v is not None
        }
        envelope = await self._call("GET", "/api/enterprise/bulk/templates", params=params)
        return self._models(Template, envelope["data"], "template list")

    async def bulk_dispatch(
        self,
        tool_id: str,
        input_images: Sequence[BulkImage | Mapping[str, Any] | str],
        *,
        parameters: Mapping[str, Any] | None = None,
        template_id: str | None = None,
        priority: str | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> BulkJob:
        images: list[dict[str, Any]] = []
        for image in input_images:
            if isinstance(image, str):
                images.append({"url": image})
            elif isinstance(image, BulkImage):
                images.append(image.model_dump(exclude_none=True))
            else:
                images.append({k: v for k, v in dict(image).items() if v is not None})
        body: dict[str, Any] = {"tool_id": tool_id, "input_images": images}
        optional = {
            "parameters": dict(parameters) if parameters is not None else None,
            "template_id": template_id,
            "priority": priority,
            "webhook_url": webhook_url,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        key = idempotency_key or new_idempotency_key()
        envelope = await self._call(
            "POST",
            "/api/enterprise/bulk/dispatch",
            json=body,
            headers={"Idempotency-Key": key},
            retry_500=True,
        )
        return self._model(BulkJob, envelope["data"], "bulk job")

    # -- the retry loop -------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_500: bool | None = None,
    ) -> dict[str, Any]:
        """Send with retries; the parsed success envelope, or the last error raised."""
        if retry_500 is None:
            retry_500 = method == "GET"
        deadline = time.monotonic() + self.max_retry_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(
                    method, path, params=params, json=json, files=files, data=data, headers=headers
                )
            except PikcelError as exc:
                delay = self._retry_delay(exc, attempt, retry_500)
                if delay is None or attempt >= self.max_attempts:
                    raise
                if time.monotonic() + delay > deadline:
                    raise
                self.retries += 1
                log.info(
                    "pikcel %s %s failed (%s: %s); retry %d in %.2fs",
                    method,
                    path,
                    type(exc).__name__,
                    exc.message,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)

    def _retry_delay(self, exc: PikcelError, attempt: int, retry_500: bool) -> float | None:
        """Seconds to wait before retrying after `exc`, or None if it must not be retried."""
        if isinstance(exc, PikcelRateLimited):
            if exc.retry_after is not None:
                return exc.retry_after + self._random.uniform(0, min(0.25, exc.retry_after / 10))
            return self._backoff(attempt)
        if isinstance(exc, PikcelNetworkError):
            return self._backoff(attempt)
        if isinstance(exc, PikcelBadResponse):
            return self._backoff(attempt) if retry_500 or exc.status in _ALWAYS_RETRY else None
        if isinstance(exc, PikcelAPIError) and (
            exc.status in _ALWAYS_RETRY or (exc.status == 500 and retry_500)
        ):
            return max(self._backoff(attempt), exc.retry_after or 0.0)
        return None

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body: aiohttp.FormData | None = None
        if files or data:
            body = aiohttp.FormData()
            for name, value in (data or {}).items():
                body.add_field(name, str(value))
            for name, (filename, content, content_type) in (files or {}).items():
                body.add_field(name, content, filename=filename, content_type=content_type)
        slot: AbstractAsyncContextManager[None] = (
            self.limiter.slot() if self.limiter is not None else nullcontext()
        )
        async with slot:
            self.attempts += 1
            try:
                async with self._open_session().request(
                    method, self.base_url + path, params=params, json=json, data=body,
                    headers=headers, proxy=self._proxy,
                ) as response:  # fmt: skip
                    answer = Answer(
                        response.status, response.reason or "", response.headers,
                        await response.read(),
                    )  # fmt: skip
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _network_error(exc, method, path) from exc
        return _envelope(answer)

    # -- models ---------------------------------------------------------------------------

    @staticmethod
    def _model(model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise PikcelBadResponse(f"unexpected {what} shape: {_first_error(exc)}") from None

    @staticmethod
    def _models(model: type[M], data: Any, what: str) -> list[M]:
        if not isinstance(data, list):
            raise PikcelBadResponse(f"expected a list for the {what}, got {type(data).__name__}")
        try:
            return [model.model_validate(item) for item in data]
        except ValidationError as exc:
            raise PikcelBadResponse(f"unexpected {what} shape: {_first_error(exc)}") from None


def _segment(value: str) -> str:
    if not value:
        raise ValueError("an id is required")
    return quote(value, safe="")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _env_proxy(base_url: str) -> str | None:
    parts = urlsplit(base_url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _network_error(exc: Exception, method: str, path: str) -> PikcelNetworkError:
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are asyncio's (builtin) TimeoutError
        return PikcelNetworkError(f"{name} on {method} {path}", timeout=True)
    return PikcelNetworkError(f"{name} on {method} {path}: {exc}")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole (PikcelAI's answers are small JSON documents)."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    content: bytes


def _envelope(response: Answer) -> dict[str, Any]:
    """The success envelope of `response`, or the matching PikcelError raised."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    try:
        payload = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        payload = None
        if 200 <= status < 300:
            raise PikcelBadResponse(
                f"the body is not valid JSON ({_snippet(response)})", status
            ) from None
    if 200 <= status < 300:
        if not isinstance(payload, dict) or "data" not in payload:
            raise PikcelBadResponse("the body is not a {success, data} envelope", status)
        if payload.get("success") is False:
            raise PikcelBadResponse(
                "a 2xx answer carries success: false", status, payload.get("error")
            )
        return payload
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"HTTP_{status}")
        message = str(error.get("message") or response.reason_phrase or "error")
        details = error.get("details")
    else:
        code = f"HTTP_{status}"
        message = f"HTTP {status} {response.reason_phrase}".strip() + (
            f" ({_snippet(response)})" if payload is None and response.content else ""
        )
        details = None
    raise api_error(status, code, message, details, retry_after)


def _snippet(response: Answer, size: int = 80) -> str:
    text = response.content[:size].decode("utf-8", "replace")
    return repr(text) + ("…" if len(response.content) > size else "")
