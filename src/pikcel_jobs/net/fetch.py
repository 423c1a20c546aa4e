"""Fetching a URL someone else gave us, safely: scheme and address checks (after DNS
and on every redirect), a size limit enforced while streaming, a time limit and a
content-type check. Used for input images, PikcelAI outputs and merchant webhooks."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

MAX_IMAGE_BYTES = 25 * 1024 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/avif", "image/tiff")


class UnsafeURL(ValueError):
    """The URL points somewhere we refuse to fetch, or its answer breaks our limits."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False  # demo and tests reach the simulators on loopback
    allow_http: bool = False
    max_bytes: int = MAX_IMAGE_BYTES
    timeout: float = 30.0
    max_redirects: int = 3
    content_types: tuple[str, ...] = IMAGE_TYPES


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything but a public unicast address: private, loopback, link-local (cloud
    metadata at 169.254.169.254), shared/CGNAT (100.64/10, Alibaba's metadata at
    100.100.100.200), documentation, reserved, multicast; IPv4 inside IPv6 (mapped,
    6to4, NAT64) is judged by its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            address = address.ipv4_mapped
        elif address.sixtofour:
            address = address.sixtofour
        elif address in NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return (
        not address.is_global or address.is_private or address.is_loopback
        or address.is_link_local or address.is_multicast or address.is_reserved
        or address.is_unspecified
    )  # fmt: skip


async def check_url(url: str, policy: FetchPolicy) -> None:
    parts = urlsplit(url)
    allowed = ("https", "http") if policy.allow_http or policy.allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeURL(f"only {' and '.join(allowed)} addresses can be fetched")
    if not parts.hostname:
        raise UnsafeURL("the address has no host name")
    if policy.allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise UnsafeURL(f"the host {parts.hostname} could not be found") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _refused(address):
            raise UnsafeURL(f"the host {parts.hostname} resolves to a private address")


async def check_input_urls(urls: Iterable[str], policy: FetchPolicy) -> None:
    """The image URLs a new job or batch hands to PikcelAI, which fetches them for us:
    the same rules as our own fetches, checked once per distinct host."""
    seen: set[tuple[str, str | None, int | None]] = set()
    for url in urls:
        parts = urlsplit(url)
        try:
            key = (parts.scheme, parts.hostname, parts.port)
        except ValueError as exc:  # a port out of range
            raise UnsafeURL(f"the address is not valid: {exc}") from None
        if key not in seen:
            seen.add(key)
            await check_url(url, policy)


async def fetch_bytes(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy
) -> tuple[bytes, str]:
    """GET `url` under `policy`; returns (body, content type). `policy.timeout` bounds
    the whole fetch (redirects and a slowly trickling body included), not each read."""
    try:
        async with asyncio.timeout(policy.timeout):
            return await _fetch(client, url, policy)
    except TimeoutError:
        raise UnsafeURL(f"the image server took longer than {policy.timeout:g} s") from None


async def _fetch(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> tuple[bytes, str]:
    for _ in range(policy.max_redirects + 1):
        await check_url(url, policy)
        async with client.stream("GET", url, timeout=policy.timeout, follow_redirects=False) as rsp:
            if rsp.is_redirect and "location" in rsp.headers:
                url = urljoin(url, rsp.headers["location"])
                continue
            if rsp.status_code != 200:
                raise UnsafeURL(f"the image server answered HTTP {rsp.status_code}")
            ctype = rsp.headers.get("content-type", "").split(";")[0].strip().lower()
            if policy.content_types and ctype not in policy.content_types:
                raise UnsafeURL(f"the address did not return an image (got '{ctype or 'nothing'}')")
            declared = rsp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise UnsafeURL("the image is larger than the allowed size")
            chunks: list[bytes] = []
            size = 0
            async for chunk in rsp.aiter_bytes():
                size += len(chunk)
                if size > policy.max_bytes:
                    raise UnsafeURL("the image is larger than the allowed size")
                chunks.append(chunk)
            return b"".join(chunks), ctype
    raise UnsafeURL("too many redirects")
