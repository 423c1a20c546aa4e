"""httpx transports that send `https://{shop}/...` to another address, keeping the Host.

In demo and tests the Shopify simulator listens on loopback; these transports connect
there while the request keeps its original URL host in the `Host` header, so the
production clients (ours and Shopify's own `shopifyapp`) run unchanged.
"""

from __future__ import annotations

from typing import Any

import httpx


def _target(connect_url: str) -> httpx.URL:
    url = httpx.URL(connect_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"connect URL must be http(s)://host[:port], got {connect_url!r}")
    return url


def _redirect(request: httpx.Request, target: httpx.URL) -> None:
    if request.url.scheme != "https":
        return
    # The Host header was set from the original URL when the request was built.
    request.headers.setdefault("Host", request.url.netloc.decode("ascii"))
    request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)


class ConnectOverrideTransport(httpx.AsyncBaseTransport):
    """Async transport: every https:// request connects to `connect_url` instead."""

    def __init__(self, connect_url: str, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.target = _target(connect_url)
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _redirect(request, self.target)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class SyncConnectOverrideTransport(httpx.BaseTransport):
    """Sync twin of `ConnectOverrideTransport` (parts of `shopifyapp` take httpx.Client)."""

    def __init__(self, connect_url: str, inner: httpx.BaseTransport | None = None) -> None:
        self.target = _target(connect_url)
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _redirect(request, self.target)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def make_async_client(
    connect_url: str | None, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, **kwargs: Any
) -> httpx.AsyncClient:
    """An AsyncClient for Shopify; with `connect_url`, https requests go there instead."""
    if connect_url:
        kwargs["transport"] = ConnectOverrideTransport(connect_url)
    return httpx.AsyncClient(timeout=timeout, **kwargs)


def make_sync_client(
    connect_url: str | None, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, **kwargs: Any
) -> httpx.Client:
    """A Client for Shopify; with `connect_url`, https requests go there instead."""
    if connect_url:
        kwargs["transport"] = SyncConnectOverrideTransport(connect_url)
    return httpx.Client(timeout=timeout, **kwargs)
