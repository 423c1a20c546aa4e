"""Pushing an image onto a product, as separate steps the worker checkpoints between.

    resource_url = await staged_upload(gql, http, data, filename, mime)
    media_id = await find_media_by_alt(gql, product_id, marker) \
        or await attach_media(gql, product_id, resource_url, alt)
    state = await wait_media_ready(gql, media_id, timeout=...)
    # replace: only once READY
    await remove_media_from_product(gql, product_id, old_media_id)
    # revert: add_media_reference(gql, product_id, old_media_id), then remove ours

Each step is safe to repeat after a crash: an upload is only a temporary object, and
`find_media_by_alt` (our alt text carries `pikcel:<job-id>`) tells whether the attach
already happened, so a product gets exactly one new media per job.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from .errors import ShopifyError, ShopifyTransientError, StagedUploadError
from .graphql import ShopifyGraphQL

MediaStatus = Literal["UPLOADED", "PROCESSING", "READY", "FAILED"]
TERMINAL = ("READY", "FAILED")
MARKER_PREFIX = "pikcel:"

STAGED_UPLOADS_CREATE = """
mutation PikcelStagedUpload($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}
"""

PRODUCT_UPDATE_MEDIA = """
mutation PikcelAttachMedia($product: ProductUpdateInput!, $media: [CreateMediaInput!]) {
  productUpdate(product: $product, media: $media) {
    product { id media(last: 20) { nodes { id alt status } } }
    userErrors { field message }
  }
}
"""

PRODUCT_MEDIA = """
query PikcelProductMedia($id: ID!, $first: Int!, $after: String) {
  product(id: $id) {
    id
    media(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id alt status
        mediaErrors { code message }
        ... on MediaImage { image { url width height } }
      }
    }
  }
}
"""

MEDIA_NODE = """
query PikcelMedia($id: ID!) {
  node(id: $id) {
    id
    ... on MediaImage {
      alt status
      mediaErrors { code message details }
      image { url width height }
    }
  }
}
"""

FILE_UPDATE = """
mutation PikcelFileUpdate($files: [FileUpdateInput!]!) {
  fileUpdate(files: $files) {
    files { id }
    userErrors { field message code }
  }
}
"""

FILE_DELETE = """
mutation PikcelFileDelete($ids: [ID!]!) {
  fileDelete(fileIds: $ids) {
    deletedFileIds
    userErrors { field message code }
  }
}
"""


@dataclass(frozen=True)
class MediaState:
    """A MediaImage as Shopify reports it."""

    id: str
    status: MediaStatus
    alt: str | None = None
    url: str | None = None
    width: int | None = None
    height: int | None = None
    errors: tuple[str, ...] = field(default_factory=tuple)
    error_codes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ready(self) -> bool:
        return self.status == "READY"

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"

    @property
    def message(self) -> str | None:
        """Shopify's reason for a FAILED media, as one line."""
        if not self.errors:
            return "Shopify could not process the image" if self.failed else None
        return "; ".join(self.errors)


def alt_marker(job_id: object) -> str:
    """The marker our alt text carries for a job: `pikcel:<job-id>`."""
    return f"{MARKER_PREFIX}{job_id}"


def alt_with_marker(text: str | None, job_id: object) -> str:
    """Alt text that keeps the merchant-facing `text` and ends with the job's marker."""
    marker = alt_marker(job_id)
    text = (text or "").strip()
    return f"{text} [{marker}]" if text else f"[{marker}]"


def _has_marker(alt: str | None, marker: str) -> bool:
    if not alt:
        return False
    return re.search(rf"(?<![\w:-]){re.escape(marker)}(?![\w:-])", alt) is not None


def _state(node: dict[str, Any]) -> MediaState:
    image = node.get("image") or {}
    errors = node.get("mediaErrors") or []
    return MediaState(
        id=str(node["id"]),
        status=node.get("status") or "PROCESSING",
        alt=node.get("alt"),
        url=image.get("url"),
        width=image.get("width"),
        height=image.get("height"),
        errors=tuple(str(e.get("message") or e.get("code")) for e in errors if e),
        error_codes=tuple(str(e.get("code")) for e in errors if e and e.get("code")),
    )


async def staged_upload(
    gql: ShopifyGraphQL,
    http_client: httpx.AsyncClient,
    data: bytes,
    filename: str,
    mime: str,
) -> str:
    """Upload `data` to a staged target (stagedUploadsCreate + multipart POST, file last,
    201 expected) and return its `resourceUrl` for `attach_media`."""
    payload = await gql.mutate(
        STAGED_UPLOADS_CREATE,
        {
            "input": [
                {
                    "resource": "IMAGE",
                    "filename": filename,
                    "mimeType": mime,
                    "httpMethod": "POST",
                    "fileSize": str(len(data)),
                }
            ]
        },
        payload_key="stagedUploadsCreate",
    )
    targets = payload.get("stagedTargets") or []
    if not targets:
        raise ShopifyError("stagedUploadsCreate returned no target")
    target = targets[0]
    fields = [(p["name"], p["value"]) for p in target.get("parameters") or []]
    try:
        # httpx writes `data` fields before `files`, so the file goes last as required.
        response = await http_client.post(
            target["url"],
            data=dict(fields),
            files={"file": (filename, data, mime)},
        )
    except httpx.TransportError as exc:
        raise ShopifyTransientError(f"staged upload failed: {type(exc).__name__}") from exc
    if response.status_code in (429, 500, 502, 503, 504):
        raise ShopifyTransientError(
            f"staged upload answered HTTP {response.status_code}", status=response.status_code
        )
    if response.status_code not in (200, 201, 204):
        raise StagedUploadError(response.status_code, response.text)
    return str(target["resourceUrl"])


async def attach_media(
    gql: ShopifyGraphQL,
    product_id: str,
    resource_url: str,
    alt: str,
) -> str:
    """Add an image to the product (productUpdate with media) and return the new
    MediaImage id. Not idempotent on its own: call `find_media_by_alt` first."""
    payload = await gql.mutate(
        PRODUCT_UPDATE_MEDIA,
        {
            "product": {"id": product_id},
            "media": [{"originalSource": resource_url, "alt": alt, "mediaContentType": "IMAGE"}],
        },
        payload_key="productUpdate",
    )
    nodes = ((payload.get("product") or {}).get("media") or {}).get("nodes") or []
    for node in reversed(nodes):
        if node and node.get("alt") == alt:
            return str(node["id"])
    found = await find_media_by_alt(gql, product_id, alt)  # more than 20 added meanwhile
    if found is None:
        raise ShopifyError("productUpdate succeeded but the new media was not found")
    return found


async def list_product_media(
    gql: ShopifyGraphQL,
    product_id: str,
    *,
    page_size: int = 50,
) -> list[MediaState] | None:
    """Every media on the product, in order; None when the product does not exist."""
    out: list[MediaState] = []
    after: str | None = None
    while True:
        data = await gql.execute(
            PRODUCT_MEDIA, {"id": product_id, "first": page_size, "after": after}
        )
        product = data.get("product")
        if product is None:
            return None
        connection = product.get("media") or {}
        out.extend(_state(n) for n in connection.get("nodes") or [] if n)
        page = connection.get("pageInfo") or {}
        if not page.get("hasNextPage"):
            return out
        after = page.get("endCursor")


async def find_media_by_alt(
    gql: ShopifyGraphQL,
    product_id: str,
    alt_marker: str,
) -> str | None:
    """The id of the product's (latest) media whose alt text carries `alt_marker`
    (a whole `pikcel:<job-id>` token, or the exact alt), else None."""
    media = await list_product_media(gql, product_id)
    for item in reversed(media or []):
        if item.alt == alt_marker or _has_marker(item.alt, alt_marker):
            return item.id
    return None


async def get_media(gql: ShopifyGraphQL, media_id: str) -> MediaState | None:
    data = await gql.execute(MEDIA_NODE, {"id": media_id})
    node = data.get("node")
    return _state(node) if node else None


async def wait_media_ready(
    gql: ShopifyGraphQL,
    media_id: str,
    timeout: float = 60.0,
    *,
    poll_interval: float = 0.5,
    max_interval: float = 5.0,
) -> MediaState:
    """Poll the media until READY or FAILED (`message` holds Shopify's reason).

    After `timeout` seconds the last non-terminal state is returned (UPLOADED or
    PROCESSING): the caller reschedules rather than sleeping longer.
    Raises `ShopifyError` when the media does not exist (deleted).
    """
    deadline = time.monotonic() + timeout
    interval = poll_interval
    while True:
        state = await get_media(gql, media_id)
        if state is None:
            raise ShopifyError(f"media {media_id} does not exist")
        remaining = deadline - time.monotonic()
        if state.status in TERMINAL or remaining <= 0:
            return state
        await asyncio.sleep(min(interval, remaining))
        interval = min(max_interval, interval * 1.5)


async def remove_media_from_product(
    gql: ShopifyGraphQL,
    product_id: str,
    media_id: str,
) -> None:
    """Detach the media from the product (fileUpdate referencesToRemove); the file stays
    in the shop's Files, so a revert can add it back. Idempotent."""
    await gql.mutate(
        FILE_UPDATE,
        {"files": [{"id": media_id, "referencesToRemove": [product_id]}]},
        payload_key="fileUpdate",
    )


async def add_media_reference(gql: ShopifyGraphQL, product_id: str, media_id: str) -> None:
    """Attach an existing (READY) file to the product (fileUpdate referencesToAdd).
    Idempotent."""
    await gql.mutate(
        FILE_UPDATE,
        {"files": [{"id": media_id, "referencesToAdd": [product_id]}]},
        payload_key="fileUpdate",
    )


async def delete_file(gql: ShopifyGraphQL, media_id: str) -> None:
    """Delete the file everywhere (fileDelete); e.g. to clean up a FAILED media, which
    `fileUpdate` refuses because it is not READY."""
    await gql.mutate(FILE_DELETE, {"ids": [media_id]}, payload_key="fileDelete")
