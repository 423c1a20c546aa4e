"""Fetching a URL someone else gave us, safely: scheme and address checks (after DNS
and on every redirect), a size limit enforced while streaming, a time limit and a
content-type check. Used for input images, PikcelAI outputs and merchant webhooks."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
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


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (
        address.is_private or address.is_loopback or address.is_link_local
        or address.is_multicast or address.is_reserved or address.is_unspecified
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


async def fetch_bytes(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy
) -> tuple[bytes, str]:
    """GET `url` under `policy`; returns (body, content type)."""
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
