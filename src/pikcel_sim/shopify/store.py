"""In-memory state of the Shopify simulator: shops, products, media, tokens, uploads.

Everything runs on the server's one event loop; the few things touched from worker
threads (photo rendering, CDN reads) only read immutable data or go through a lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from PIL import Image

from .catalogue import PhotoCache, ProductSpec, product_specs
from .config import ShopifySimConfig
from .throttle import LeakyBucket

MediaStatus = Literal["UPLOADED", "PROCESSING", "READY", "FAILED"]

MIME_BY_FORMAT = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}

# Shopify's wording for the two failures the simulator produces.
FAILED_PROCESSING = (
    "IMAGE_PROCESSING_FAILURE",
    "Media failed to process because the image could not be processed",
)
FAILED_DOWNLOAD = (
    "IMAGE_DOWNLOAD_FAILURE",
    "Media failed to process because the image could not be downloaded",
)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_int(*parts: object, modulo: int) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulo


def inspect_image(data: bytes) -> tuple[int, int, str] | None:
    """(width, height, mime) when `data` decodes as an image, else None."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mime = MIME_BY_FORMAT.get(image.format or "", "application/octet-stream")
            return image.width, image.height, mime
    except Exception:
        return None


@dataclass
class Media:
    """A MediaImage: a File that may be referenced by products."""

    id: int
    shop: str
    alt: str
    filename: str
    created_at: float  # wall clock
    started: float  # monotonic, for the processing timeline
    processing_seconds: float
    outcome: MediaStatus | None = None  # READY/FAILED once known; None while fetching
    error: tuple[str, str] | None = None
    width: int | None = None
    height: int | None = None
    mime: str = "image/png"
    data: bytes | None = None  # uploaded content; None for catalogue photos
    spec: ProductSpec | None = None  # catalogue photo source
    image_index: int = 0
    version: int = 0
    updated_at: float = 0.0

    @property
    def gid(self) -> str:
        return f"gid://shopify/MediaImage/{self.id}"

    def status(self, now: float | None = None) -> MediaStatus:
        now = time.monotonic() if now is None else now
        elapsed = now - self.started
        if elapsed < self.processing_seconds * 0.25:
            return "UPLOADED"
        if self.outcome is None or elapsed < self.processing_seconds:
            return "PROCESSING"
        return self.outcome


@dataclass
class Product:
    id: int
    title: str
    handle: str
    vendor: str
    product_type: str
    tags: tuple[str, ...]
    created_at: float
    updated_at: float
    media_ids: list[int] = field(default_factory=list)
    status: str = "ACTIVE"

    @property
    def gid(self) -> str:
        return f"gid://shopify/Product/{self.id}"


@dataclass
class Shop:
    domain: str
    id: int
    bucket: LeakyBucket
    products: dict[int, Product] = field(default_factory=dict)
    media: dict[int, Media] = field(default_factory=dict)
    files_by_name: dict[str, int] = field(default_factory=dict)
    next_media_id: int = 0

    @property
    def name(self) -> str:
        return self.domain.removesuffix(".myshopify.com")


@dataclass
class AccessTokenRecord:
    token: str
    shop: str
    scope: str
    mode: Literal["offline", "online"]
    expires_at: float | None  # wall clock; None = non-expiring
    user_id: int | None = None

    def valid(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.expires_at is None or now < self.expires_at


@dataclass
class RefreshTokenRecord:
    token: str
    shop: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class AuthCode:
    code: str
    shop: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class StagedTarget:
    id: str
    shop: str
    filename: str
    mime: str
    method: str  # POST (form fields + file) or PUT (raw body, signed query string)
    parameters: list[tuple[str, str]]
    created_at: float
    query_string: str = ""
    file_size: int | None = None
    data: bytes | None = None
    uploaded_at: float | None = None


@dataclass
class Faults:
    """Fault injection; counts are 'the next N GraphQL requests' (-1 = until cleared)."""

    force_status: int | None = None
    force_status_count: int = 0
    retry_after: int = 1
    force_throttled_count: int = 0
    media_failure_rate: float = 0.0
    shop: str | None = None  # restrict GraphQL faults to one shop

    def as_dict(self) -> dict[str, Any]:
        return {
            "force_status": self.force_status,
            "force_status_count": self.force_status_count,
            "retry_after": self.retry_after,
            "force_throttled_count": self.force_throttled_count,
            "media_failure_rate": self.media_failure_rate,
            "shop": self.shop,
        }


class SimState:
    """All of the simulator's state, one instance per app."""

    def __init__(self, config: ShopifySimConfig) -> None:
        self.config = config
        self.shops: dict[str, Shop] = {}
        self.access_tokens: dict[str, AccessTokenRecord] = {}
        self.refresh_tokens: dict[str, RefreshTokenRecord] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.staged: dict[str, StagedTarget] = {}
        self.faults = Faults()
        self.photos = PhotoCache()
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)
        self._signing_key = secrets.token_bytes(32)
        self.counters: dict[str, Counter[str]] = {
            "requests": Counter(),  # GraphQL requests per shop
            "throttled": Counter(),  # THROTTLED answers per shop
            "mutations": Counter(),  # per mutation field name
            "queries": Counter(),  # per root query field name
            "forced_status": Counter(),  # per forced HTTP status
            "unauthorized": Counter(),  # 401 per shop
            "token_requests": Counter(),  # per grant type
            "staged_uploads": Counter(),  # per shop
            "webhooks": Counter(),  # per topic
        }
        for domain in config.shops:
            self.create_shop(domain)

    # ---- shops and catalogue -------------------------------------------------------

    def create_shop(self, domain: str, products: int | None = None) -> Shop:
        with self.lock:
            if domain in self.shops:
                return self.shops[domain]
            seed = self.config.seed
            shop_num = stable_int(seed, domain, modulo=90_000) + 10_000
            shop = Shop(
                domain=domain,
                id=60_000_000_000 + shop_num,
                bucket=LeakyBucket(self.config.bucket_size, self.config.restore_rate),
                next_media_id=30_000_000_000_000 + shop_num * 1_000_000,
            )
            count = self.config.products_per_shop if products is None else products
            created = time.time() - 30 * 24 * 3600
            for spec in product_specs(seed, domain, count):
                product = Product(
                    id=7_000_000_000_000 + shop_num * 100_000 + spec.index + 1,
                    title=spec.title,
                    handle=spec.handle,
                    vendor=spec.vendor,
                    product_type=spec.product_type,
                    tags=spec.tags,
                    created_at=created + spec.index * 3600,
                    updated_at=created + spec.index * 3600,
                )
                for image_index, (width, height, fmt) in enumerate(spec.images):
                    media = self._new_media(
                        shop,
                        alt=f"{spec.title} — view {image_index + 1}",
                        filename=f"{spec.handle}-{image_index + 1}.{fmt}",
                        processing_seconds=0.0,
                        created_at=product.created_at,
                    )
                    media.outcome = "READY"
                    media.width, media.height = width, height
                    media.mime = "image/jpeg" if fmt == "jpg" else "image/png"
                    media.spec, media.image_index = spec, image_index
                    media.started = -1e9
                    product.media_ids.append(media.id)
                shop.products[product.id] = product
            self.shops[domain] = shop
            return shop

    def _new_media(
        self,
        shop: Shop,
        *,
        alt: str,
        filename: str,
        processing_seconds: float,
        created_at: float | None = None,
    ) -> Media:
        shop.next_media_id += 1
        now = time.time() if created_at is None else created_at
        name = self._unique_name(shop, filename)
        media = Media(
            id=shop.next_media_id,
            shop=shop.domain,
            alt=alt,
            filename=name,
            created_at=now,
            started=time.monotonic(),
            processing_seconds=processing_seconds,
            updated_at=now,
        )
        shop.media[media.id] = media
        shop.files_by_name[name] = media.id
        return media

    @staticmethod
    def _unique_name(shop: Shop, filename: str) -> str:
        """Shopify appends a random suffix when a file name is taken."""
        filename = filename.replace("/", "_").strip() or "image"
        if filename not in shop.files_by_name:
            return filename
        stem, dot, ext = filename.rpartition(".")
        if not dot:
            stem, ext = filename, ""
        return f"{stem}_{uuid.uuid4().hex[:8]}{dot}{ext}"

    def rename_file(self, shop: Shop, media: Media, filename: str) -> str:
        with self.lock:
            if shop.files_by_name.get(media.filename) == media.id:
                del shop.files_by_name[media.filename]
            name = self._unique_name(shop, filename)
            shop.files_by_name[name] = media.id
            return name

    def delete_media(self, shop: Shop, media: Media) -> None:
        with self.lock:
            for product in shop.products.values():
                if media.id in product.media_ids:
                    product.media_ids.remove(media.id)
            shop.media.pop(media.id, None)
            if shop.files_by_name.get(media.filename) == media.id:
                del shop.files_by_name[media.filename]

    def new_staged_target(
        self,
        shop: Shop,
        *,
        filename: str,
        mime: str,
        method: str,
        file_size: int | None,
    ) -> StagedTarget:
        """A signed upload target shaped like Shopify's (Google Cloud Storage) ones."""
        target_id = uuid.uuid4().hex
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC)
        key = f"tmp/{shop.id}/products/{target_id}/{filename}"
        credential = (
            f"pikcel-sim-signer@shopify-staged-uploads.iam.gserviceaccount.com/"
            f"{stamp:%Y%m%d}/auto/storage/goog4_request"
        )
        policy = base64.b64encode(
            json.dumps(
                {
                    "conditions": [
                        {"Content-Type": mime},
                        {"success_action_status": "201"},
                        {"acl": "private"},
                        ["content-length-range", 1, 20 * 1024 * 1024],
                        {"bucket": "shopify-staged-uploads"},
                        {"key": key},
                    ],
                    "expiration": iso(now + 7 * 24 * 3600),
                },
                separators=(",", ":"),
            ).encode()
        ).decode()
        signature = hmac.new(self._signing_key, policy.encode(), hashlib.sha256).hexdigest()
        if method == "POST":
            parameters = [
                ("Content-Type", mime),
                ("success_action_status", "201"),
                ("acl", "private"),
                ("key", key),
                ("x-goog-date", f"{stamp:%Y%m%dT%H%M%SZ}"),
                ("x-goog-credential", credential),
                ("x-goog-algorithm", "GOOG4-RSA-SHA256"),
                ("x-goog-signature", signature),
                ("policy", policy),
            ]
            query = ""
        else:
            parameters = [("content_type", mime), ("acl", "private")]
            query = urlencode(
                {
                    "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
                    "X-Goog-Credential": credential,
                    "X-Goog-Date": f"{stamp:%Y%m%dT%H%M%SZ}",
                    "X-Goog-Expires": "604800",
                    "X-Goog-SignedHeaders": "content-type;host;x-goog-acl",
                    "X-Goog-Signature": signature,
                }
            )
        target = StagedTarget(
            id=target_id,
            shop=shop.domain,
            filename=filename,
            mime=mime,
            method=method,
            parameters=parameters,
            created_at=now,
            query_string=query,
            file_size=file_size,
        )
        with self.lock:
            self.staged[target_id] = target
        return target

    def new_upload_media(self, shop: Shop, *, alt: str, filename: str) -> Media:
        return self._new_media(
            shop,
            alt=alt,
            filename=filename,
            processing_seconds=self.config.media_processing_seconds,
        )

    def settle_media(
        self, media: Media, data: bytes | None, *, download_failed: bool, failure_roll: float
    ) -> None:
        """Decide how a new media ends: READY with its size, or FAILED with a reason."""
        if download_failed or data is None:
            media.outcome, media.error = "FAILED", FAILED_DOWNLOAD
            return
        info = inspect_image(data)
        if info is None or failure_roll < self.faults.media_failure_rate:
            media.outcome, media.error = "FAILED", FAILED_PROCESSING
            return
        media.width, media.height, media.mime = info
        media.data = data
        media.outcome = "READY"

    def media_bytes(self, media: Media) -> bytes | None:
        if media.data is not None:
            return media.data
        if media.spec is not None:
            return self.photos.get_or_make(
                self.config.seed, media.shop, media.spec, media.image_index
            )
        return None

    # ---- tokens --------------------------------------------------------------------

    def issue_access_token(
        self,
        shop: str,
        *,
        mode: Literal["offline", "online"],
        expiring: bool,
        scope: str | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        now = time.time()
        scope = scope or self.config.scopes
        prefix = "shpua_" if mode == "online" else "shpat_"
        token = prefix + secrets.token_hex(16)
        if mode == "online":
            ttl: int | None = self.config.online_token_ttl
        else:
            ttl = self.config.access_token_ttl if expiring else None
        record = AccessTokenRecord(
            token=token,
            shop=shop,
            scope=scope,
            mode=mode,
            expires_at=None if ttl is None else now + ttl,
            user_id=user_id,
        )
        with self.lock:
            self.access_tokens[token] = record
        answer: dict[str, Any] = {"access_token": token, "scope": scope}
        if ttl is not None:
            answer["expires_in"] = ttl
        if mode == "offline" and expiring:
            refresh = "shprt_" + secrets.token_hex(16)
            with self.lock:
                self.refresh_tokens[refresh] = RefreshTokenRecord(
                    token=refresh,
                    shop=shop,
                    scope=scope,
                    expires_at=now + self.config.refresh_token_ttl,
                )
            answer["refresh_token"] = refresh
            answer["refresh_token_expires_in"] = self.config.refresh_token_ttl
        return answer

    def expire_tokens(self, shop: str) -> int:
        """Make every access token of `shop` expired (tests of the 401 path)."""
        count = 0
        with self.lock:
            for record in self.access_tokens.values():
                if record.shop == shop:
                    record.expires_at = time.time() - 1
                    count += 1
        return count

    def check_access_token(self, shop: str, token: str | None) -> AccessTokenRecord | None:
        if not token:
            return None
        record = self.access_tokens.get(token)
        if record is None or record.shop != shop or not record.valid():
            return None
        return record

    # ---- counters ------------------------------------------------------------------

    def count(self, name: str, key: str, amount: int = 1) -> None:
        with self.lock:
            self.counters[name][key] += amount

    def counters_json(self) -> dict[str, Any]:
        with self.lock:
            data: dict[str, Any] = {k: dict(v) for k, v in self.counters.items()}
        data["requests_total"] = sum(data["requests"].values())
        data["throttled_total"] = sum(data["throttled"].values())
        return data

    def reset_counters(self) -> None:
        with self.lock:
            for counter in self.counters.values():
                counter.clear()
