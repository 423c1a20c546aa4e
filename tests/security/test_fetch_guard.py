"""SSRF guard (`net/fetch.py`) on its own: which addresses may be fetched (after DNS
resolution, and again on every redirect), and the limits on what comes back (size while
streaming, total time, content type). DNS answers are faked, so no lookup leaves the
machine; the HTTP server is an in-memory transport."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from pikcel_jobs.net.fetch import FetchPolicy, UnsafeURL, check_url, fetch_bytes

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
PROD = FetchPolicy()  # production: https only, public addresses only

# Host names of this test and what the fake DNS answers for them.
DNS = {
    "cdn.example.com": ["93.184.216.34"],
    "images.example.com": ["2606:4700::6810:84e5"],
    "metadata.example.com": ["169.254.169.254"],
    "internal.example.com": ["10.1.2.3"],
    "split.example.com": ["93.184.216.34", "127.0.0.1"],  # one bad answer is enough
    "cgnat.example.com": ["100.100.100.200"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "nat64.example.com": ["64:ff9b::a9fe:a9fe"],  # 169.254.169.254 through NAT64
    "sixtofour.example.com": ["2002:c0a8:0101::1"],  # 192.168.1.1 through 6to4
}


@pytest_asyncio.fixture(loop_scope="session")
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Resolve the table above; anything else (and IP literals) the real way, which
    never leaves the machine for a literal or for localhost."""
    asked: list[str] = []
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if host in DNS:
            out = []
            for address in DNS[host]:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                out.append((family, socket.SOCK_STREAM, 6, "", (address, port)))
            return out
        if host.endswith(".invalid"):
            raise socket.gaierror("Name or service not known")
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x.png", "https://127.1.2.3/x.png", "https://localhost/x.png",
        "https://10.0.0.1/x.png", "https://172.16.5.4/x.png", "https://192.168.1.1/x.png",
        "https://169.254.169.254/latest/meta-data/", "https://[::1]/x.png",
        "https://[::ffff:127.0.0.1]/x.png", "https://[fd00:ec2::254]/x.png",
        "https://[fe80::1]/x.png", "https://0.0.0.0/x.png", "https://100.64.0.1/x.png",
        "https://2130706433/x.png",  # 127.0.0.1 as one decimal number
        "https://0x7f000001/x.png", "https://224.0.0.1/x.png", "https://192.0.2.10/x.png",
        "https://metadata.example.com/x.png", "https://internal.example.com/x.png",
        "https://split.example.com/x.png", "https://cgnat.example.com/x.png",
        "https://mapped.example.com/x.png", "https://nat64.example.com/x.png",
        "https://sixtofour.example.com/x.png",
    ],
)  # fmt: skip
async def test_private_addresses_are_refused_after_resolution(
    fake_dns: list[str], url: str
) -> None:
    with pytest.raises(UnsafeURL, match=r"private address|could not be found"):
        await check_url(url, PROD)


@pytest.mark.parametrize(
    "url",
    ["http://cdn.example.com/x.png", "ftp://cdn.example.com/x.png", "file:///etc/passwd",
     "gopher://cdn.example.com/", "javascript:alert(1)", "data:image/png;base64,AAAA",
     "//cdn.example.com/x.png", "cdn.example.com/x.png"],
)  # fmt: skip
async def test_only_https_in_production(fake_dns: list[str], url: str) -> None:
    with pytest.raises(UnsafeURL, match="only https"):
        await check_url(url, PROD)


async def test_public_addresses_pass_and_unknown_hosts_fail(fake_dns: list[str]) -> None:
    await check_url("https://cdn.example.com/x.png", PROD)
    await check_url("https://images.example.com/x.png", PROD)
    await check_url("https://93.184.216.34/x.png", PROD)
    with pytest.raises(UnsafeURL, match="could not be found"):
        await check_url("https://nowhere.invalid/x.png", PROD)
    with pytest.raises(UnsafeURL, match="no host"):
        await check_url("https:///x.png", PROD)
    # The demo and test setting lets the simulators on loopback through, plain http too.
    loopback = FetchPolicy(allow_private=True)
    await check_url("http://127.0.0.1:8001/x.png", loopback)
    with pytest.raises(UnsafeURL):
        await check_url("file:///etc/passwd", loopback)


def server(
    routes: dict[str, Callable[[httpx.Request], httpx.Response]],
) -> tuple[httpx.AsyncClient, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return routes[str(request.url)](request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle)), seen


async def test_redirects_are_checked_at_every_hop(fake_dns: list[str]) -> None:
    def to(location: str) -> Callable[[httpx.Request], httpx.Response]:
        return lambda _: httpx.Response(302, headers={"location": location})

    client, seen = server({
        "https://cdn.example.com/a.png": to("https://metadata.example.com/latest/meta-data/"),
        "https://cdn.example.com/b.png": to("https://169.254.169.254/latest/"),
        "https://cdn.example.com/c.png": to("http://cdn.example.com/c.png"),  # downgrade
        "https://cdn.example.com/d.png": to("/e.png"),
        "https://cdn.example.com/e.png": lambda _: httpx.Response(200, content=PNG, headers={"content-type": "image/png"}),
        "https://cdn.example.com/loop.png": to("https://cdn.example.com/loop.png"),
    })  # fmt: skip
    async with client:
        for path in ("a", "b"):
            with pytest.raises(UnsafeURL, match="private"):
                await fetch_bytes(client, f"https://cdn.example.com/{path}.png", PROD)
        with pytest.raises(UnsafeURL, match="only https"):
            await fetch_bytes(client, "https://cdn.example.com/c.png", PROD)
        with pytest.raises(UnsafeURL, match="too many redirects"):
            await fetch_bytes(client, "https://cdn.example.com/loop.png", PROD)
        data, ctype = await fetch_bytes(client, "https://cdn.example.com/d.png", PROD)
        assert data == PNG and ctype == "image/png"
    # The refused targets were never requested.
    assert not [u for u in seen if "169.254" in u or "metadata" in u or u.startswith("http:")]


async def test_size_is_limited_while_streaming(fake_dns: list[str]) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            sent.append(1)
            yield b"\x00" * 65536

    policy = FetchPolicy(max_bytes=1024 * 1024)
    client, _ = server({
        "https://cdn.example.com/declared.png": lambda _: httpx.Response(
            200, content=PNG, headers={"content-type": "image/png", "content-length": str(50 * 1024 * 1024)}),
        "https://cdn.example.com/stream.png": lambda _: httpx.Response(
            200, content=endless(), headers={"content-type": "image/png"}),
    })  # fmt: skip
    async with client:
        with pytest.raises(UnsafeURL, match="larger than"):
            await fetch_bytes(client, "https://cdn.example.com/declared.png", policy)
        with pytest.raises(UnsafeURL, match="larger than"):
            await fetch_bytes(client, "https://cdn.example.com/stream.png", policy)
    # It stopped reading just past the limit: 1 MB is 16 chunks of 64 KB.
    assert len(sent) <= 20, len(sent)


async def test_a_trickling_server_hits_the_total_time_limit(fake_dns: list[str]) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(1000):
            await asyncio.sleep(0.05)  # each read is quick: only a total deadline stops it
            yield b"\x00"

    client, _ = server({
        "https://cdn.example.com/slow.png": lambda _: httpx.Response(
            200, content=trickle(), headers={"content-type": "image/png"}),
    })  # fmt: skip
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with client:
        with pytest.raises(UnsafeURL, match="longer than"):
            await fetch_bytes(client, "https://cdn.example.com/slow.png", FetchPolicy(timeout=0.5))
    assert loop.time() - start < 5


@pytest.mark.parametrize(
    ("status", "ctype", "match"),
    [(200, "text/html", "did not return an image"), (200, "", "did not return an image"),
     (200, "image/svg+xml", "did not return an image"), (404, "image/png", "HTTP 404"),
     (500, "image/png", "HTTP 500")],
)  # fmt: skip
async def test_answers_that_are_not_images_are_refused(
    fake_dns: list[str], status: int, ctype: str, match: str
) -> None:
    client, _ = server({
        "https://cdn.example.com/x.png": lambda _: httpx.Response(
            status, content=b"<html>", headers={"content-type": ctype} if ctype else {}),
    })  # fmt: skip
    async with client:
        with pytest.raises(UnsafeURL, match=match):
            await fetch_bytes(client, "https://cdn.example.com/x.png", PROD)
