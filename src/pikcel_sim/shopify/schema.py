"""The executable schema: SDL plus resolvers over the in-memory store."""

from __future__ import annotations

import base64
import json
import os.path
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema, build_schema

from .sdl import SDL
from .store import Media, Product, Shop, SimState, StagedTarget, iso

MAX_PAGE = 250
IMAGE_MAX_BYTES = 20 * 1024 * 1024
IMAGE_RESOURCES = {"IMAGE", "PRODUCT_IMAGE", "COLLECTION_IMAGE", "SHOP_IMAGE", "FILE"}
_GID = re.compile(r"^gid://shopify/([A-Za-z0-9]+)/(\d+)(\?.*)?$")


@dataclass
class Ctx:
    """Per-request context: the shop from the Host header and a fixed clock."""

    state: SimState
    shop: Shop
    public_url: str
    now: float = field(default_factory=time.monotonic)
    # External sources to fetch after the response (media id, url).
    fetches: list[tuple[Media, str]] = field(default_factory=list)


def _ctx(info: GraphQLResolveInfo) -> Ctx:
    ctx: Ctx = info.context
    return ctx


# ---- ids and cursors -------------------------------------------------------------------


def parse_gid(value: Any, expected: str | Iterable[str]) -> tuple[str, int] | None:
    """(type, number) of a GID; None for a well-formed GID of another type.

    A malformed value is a top-level GraphQL error, as on Shopify.
    """
    match = _GID.match(str(value))
    if not match:
        raise GraphQLError(
            f"Invalid global id '{value}'",
            extensions={"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"},
        )
    kinds = {expected} if isinstance(expected, str) else set(expected)
    if match.group(1) not in kinds:
        return None
    return match.group(1), int(match.group(2))


def encode_cursor(item_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"last_id": item_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["last_id"])
    except Exception:
        raise GraphQLError(
            "Invalid cursor for current pagination sort.",
            extensions={"code": "BAD_USER_INPUT"},
        ) from None


def paginate(
    items: Sequence[Any],
    key: Callable[[Any], int],
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    reverse: bool = False,
) -> dict[str, Any]:
    if first is None and last is None:
        raise GraphQLError(
            "you must provide one of first or last", extensions={"code": "BAD_USER_INPUT"}
        )
    for size in (first, last):
        if size is not None and not 0 <= size <= MAX_PAGE:
            raise GraphQLError(
                f"The maximum page size is {MAX_PAGE}", extensions={"code": "BAD_USER_INPUT"}
            )
    seq = list(reversed(items)) if reverse else list(items)
    keys = [key(x) for x in seq]
    start, end = 0, len(seq)
    if after:
        wanted = decode_cursor(after)
        start = keys.index(wanted) + 1 if wanted in keys else len(seq)
    if before:
        wanted = decode_cursor(before)
        end = keys.index(wanted) if wanted in keys else end
    window = seq[start:end]
    has_next = end < len(seq)
    has_previous = start > 0
    if first is not None:
        has_next = has_next or len(window) > first
        window = window[:first]
    if last is not None:
        has_previous = has_previous or len(window) > last
        window = window[-last:] if last else []
    cursors = [encode_cursor(key(x)) for x in window]
    return {
        "edges": [{"cursor": c, "node": x} for c, x in zip(cursors, window, strict=True)],
        "nodes": window,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


# ---- product search --------------------------------------------------------------------

_TOKEN = re.compile(r'(-?)(?:(\w+):)?(?:"([^"]*)"|(\S+))')


def _text_match(haystack: str, needle: str) -> bool:
    haystack, needle = haystack.lower(), needle.lower()
    if needle.startswith("*") and needle.endswith("*"):
        return needle.strip("*") in haystack
    if needle.endswith("*"):
        stem = needle.rstrip("*")
        return any(
            word.startswith(stem) for word in re.split(r"\W+", haystack)
        ) or haystack.startswith(stem)
    if needle.startswith("*"):
        return haystack.endswith(needle.lstrip("*"))
    return needle in haystack


def _term_matches(product: Product, name: str | None, value: str) -> bool:
    if name is None:
        return any(
            _text_match(text, value)
            for text in (product.title, product.vendor, product.product_type, *product.tags)
        )
    name = name.lower()
    if name == "title":
        return _text_match(product.title, value)
    if name == "handle":
        return product.handle == value.lower() or _text_match(product.handle, value)
    if name == "vendor":
        return _text_match(product.vendor, value)
    if name in ("product_type", "producttype"):
        return _text_match(product.product_type, value)
    if name in ("tag", "tags"):
        return any(tag.lower() == value.lower() for tag in product.tags)
    if name == "status":
        return product.status.lower() in {v.strip().lower() for v in value.split(",")}
    if name == "id":
        return str(product.id) == value
    if name in ("created_at", "updated_at"):
        return _date_matches(product.created_at, value)
    return False


def _date_matches(stamp: float, value: str) -> bool:
    """`created_at:>=2026-12-01` (also >, <, <=, or a bare date for that day), in UTC."""
    match = re.fullmatch(r"(>=|<=|>|<)?(\d{4}-\d{2}-\d{2})(?:T[\d:.]+Z?)?", value.strip("'\""))
    if not match:
        return False
    op, day = match.groups()
    start = datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()
    if op == ">=":
        return stamp >= start
    if op == ">":
        return stamp >= start + 86400
    if op == "<":
        return stamp < start
    if op == "<=":
        return stamp < start + 86400
    return start <= stamp < start + 86400


def product_matches(product: Product, query: str | None) -> bool:
    """A useful subset of Shopify's search syntax: terms ANDed, `OR`, `-negation`,
    `field:value` for title, handle, vendor, product_type, tag, status, id, and `*`."""
    if not query or not query.strip():
        return True
    for group in re.split(r"\s+OR\s+", query.strip()):
        ok = True
        for negate, name, quoted, bare in _TOKEN.findall(group):
            value = quoted if quoted else bare
            if not name and value.upper() in ("AND", "NOT"):
                continue
            hit = _term_matches(product, name or None, value)
            if bool(negate) == hit:
                ok = False
                break
        if ok:
            return True
    return False


# ---- views -----------------------------------------------------------------------------


def media_url(ctx: Ctx, media: Media) -> str:
    return (
        f"{ctx.public_url}/cdn/{ctx.shop.domain}/files/{quote(media.filename)}"
        f"?v={int(media.updated_at)}"
    )


def _image_view(ctx: Ctx, media: Media) -> dict[str, Any] | None:
    if media.status(ctx.now) != "READY":
        return None
    return {
        "id": f"gid://shopify/ImageSource/{media.id}",
        "url": media_url(ctx, media),
        "altText": media.alt,
        "width": media.width,
        "height": media.height,
    }


def _errors_view(ctx: Ctx, media: Media) -> list[dict[str, Any]]:
    if media.status(ctx.now) != "FAILED" or media.error is None:
        return []
    code, message = media.error
    return [{"code": code, "details": None, "message": message}]


def _media_resolvers() -> dict[str, Callable[..., Any]]:
    def status(m: Media, info: GraphQLResolveInfo) -> str:
        return m.status(_ctx(info).now)

    return {
        "id": lambda m, info: m.gid,
        "alt": lambda m, info: m.alt,
        "mediaContentType": lambda m, info: "IMAGE",
        "status": status,
        "fileStatus": status,
        "mediaErrors": lambda m, info: _errors_view(_ctx(info), m),
        "fileErrors": lambda m, info: _errors_view(_ctx(info), m),
        "mediaWarnings": lambda m, info: [],
        "image": lambda m, info: _image_view(_ctx(info), m),
        "preview": lambda m, info: {
            "image": _image_view(_ctx(info), m),
            "status": m.status(_ctx(info).now),
        },
        "mimeType": lambda m, info: m.mime,
        "createdAt": lambda m, info: iso(m.created_at),
        "updatedAt": lambda m, info: iso(m.updated_at),
    }


def _product_media(p: Product, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = _ctx(info).shop
    items = [shop.media[i] for i in p.media_ids if i in shop.media]
    return paginate(
        items,
        lambda m: m.id,
        first=args.get("first"),
        after=args.get("after"),
        last=args.get("last"),
        before=args.get("before"),
        reverse=bool(args.get("reverse")),
    )


def _product_resolvers() -> dict[str, Callable[..., Any]]:
    def featured(p: Product, info: GraphQLResolveInfo) -> Media | None:
        shop = _ctx(info).shop
        return next((shop.media[i] for i in p.media_ids if i in shop.media), None)

    return {
        "id": lambda p, info: p.gid,
        "productType": lambda p, info: p.product_type,
        "tags": lambda p, info: list(p.tags),
        "createdAt": lambda p, info: iso(p.created_at),
        "updatedAt": lambda p, info: iso(p.updated_at),
        "onlineStoreUrl": lambda p, info: None,
        "featuredMedia": featured,
        "mediaCount": lambda p, info: {"count": len(p.media_ids), "precision": "EXACT"},
        "media": _product_media,
    }


def _shop_view(shop: Shop) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Shop/{shop.id}",
        "name": shop.name.replace("-", " ").title(),
        "myshopifyDomain": shop.domain,
        "email": f"owner@{shop.domain}",
        "url": f"https://{shop.domain}",
    }


# ---- queries ---------------------------------------------------------------------------


def _find_node(ctx: Ctx, gid: Any) -> Any:
    parsed = parse_gid(gid, ("Product", "MediaImage", "Shop"))
    if parsed is None:
        return None
    kind, number = parsed
    if kind == "Product":
        return ctx.shop.products.get(number)
    if kind == "MediaImage":
        return ctx.shop.media.get(number)
    return _shop_view(ctx.shop) if number == ctx.shop.id else None


def _q_product(_: Any, info: GraphQLResolveInfo, id: str) -> Product | None:
    parsed = parse_gid(id, "Product")
    return None if parsed is None else _ctx(info).shop.products.get(parsed[1])


_SORT_KEYS: dict[str, Callable[[Product], Any]] = {
    "ID": lambda p: p.id,
    "TITLE": lambda p: (p.title.lower(), p.id),
    "CREATED_AT": lambda p: (p.created_at, p.id),
    "UPDATED_AT": lambda p: (p.updated_at, p.id),
    "PRODUCT_TYPE": lambda p: (p.product_type, p.id),
    "VENDOR": lambda p: (p.vendor, p.id),
    "RELEVANCE": lambda p: p.id,
}


def _q_products(_: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = _ctx(info).shop
    items = sorted(
        (p for p in shop.products.values() if product_matches(p, args.get("query"))),
        key=_SORT_KEYS[args.get("sortKey") or "ID"],
    )
    return paginate(
        items,
        lambda p: p.id,
        first=args.get("first"),
        after=args.get("after"),
        last=args.get("last"),
        before=args.get("before"),
        reverse=bool(args.get("reverse")),
    )


# ---- mutations -------------------------------------------------------------------------


def _user_error(
    field_path: Sequence[Any],
    message: str,
    code: str | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"field": [str(x) for x in field_path], "message": message}
    if code is not None:
        error["code"] = code
    return error


def _staged_target_id(ctx: Ctx, url: str) -> str | None:
    parts = urlsplit(url)
    public = urlsplit(ctx.public_url)
    if parts.netloc != public.netloc or not parts.path.startswith("/staged-uploads/"):
        return None
    return parts.path.removeprefix("/staged-uploads/").split("/", 1)[0]


def _cdn_media(ctx: Ctx, url: str) -> Media | None:
    parts = urlsplit(url)
    if parts.netloc != urlsplit(ctx.public_url).netloc or not parts.path.startswith("/cdn/"):
        return None
    pieces = parts.path.split("/")
    if len(pieces) < 5:
        return None
    shop = ctx.state.shops.get(pieces[2])
    if shop is None:
        return None
    media_id = shop.files_by_name.get(unquote(pieces[4]))
    return None if media_id is None else shop.media.get(media_id)


def _valid_source(url: Any) -> bool:
    parts = urlsplit(str(url))
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _create_media_from_source(ctx: Ctx, source: str, alt: str | None) -> Media:
    """A new MediaImage whose outcome depends on what `source` holds."""
    state = ctx.state
    filename = os.path.basename(urlsplit(source).path) or "image"
    media = state.new_upload_media(ctx.shop, alt=alt or "", filename=unquote(filename))
    roll = state.rng.random()
    target_id = _staged_target_id(ctx, source)
    if target_id is not None:
        target: StagedTarget | None = state.staged.get(target_id)
        ok = target is not None and target.shop == ctx.shop.domain and target.data is not None
        if target is not None:
            media.filename = state.rename_file(ctx.shop, media, target.filename)
        state.settle_media(
            media, target.data if ok and target else None, download_failed=not ok, failure_roll=roll
        )
        return media
    cdn = _cdn_media(ctx, source)
    if cdn is not None:
        state.settle_media(media, state.media_bytes(cdn), download_failed=False, failure_roll=roll)
        return media
    ctx.fetches.append((media, source))
    return media


def _m_staged_uploads_create(
    _: Any,
    info: GraphQLResolveInfo,
    input: list[dict[str, Any]],
) -> dict[str, Any]:
    ctx = _ctx(info)
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(input):
        if item["resource"] not in IMAGE_RESOURCES:
            errors.append(
                _user_error(
                    ["input", i, "resource"], f"Resource {item['resource']} is not supported"
                )
            )
        if not item["filename"].strip():
            errors.append(_user_error(["input", i, "filename"], "Filename can't be blank"))
        if item["resource"] != "FILE" and not str(item["mimeType"]).startswith("image/"):
            errors.append(
                _user_error(
                    ["input", i, "mimeType"], f"Mime type {item['mimeType']} is not an image type"
                )
            )
        size = item.get("fileSize")
        if size is not None and int(size) > IMAGE_MAX_BYTES:
            errors.append(
                _user_error(["input", i, "fileSize"], "File size must be less than 20 MB")
            )
    if errors:
        return {"stagedTargets": None, "userErrors": errors}
    targets = []
    for item in input:
        target = ctx.state.new_staged_target(
            ctx.shop,
            filename=item["filename"],
            mime=item["mimeType"],
            method=item.get("httpMethod") or "PUT",
            file_size=int(item["fileSize"]) if item.get("fileSize") is not None else None,
        )
        ctx.state.count("staged_uploads", ctx.shop.domain)
        base = f"{ctx.public_url}/staged-uploads/{target.id}"
        url = base if target.method == "POST" else f"{base}?{target.query_string}"
        targets.append(
            {
                "url": url,
                "resourceUrl": f"{base}/{quote(target.filename)}",
                "parameters": [{"name": n, "value": v} for n, v in target.parameters],
            }
        )
    return {"stagedTargets": targets, "userErrors": []}


def _m_product_update(
    _: Any,
    info: GraphQLResolveInfo,
    product: dict[str, Any] | None = None,
    media: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    ctx = _ctx(info)
    product = product or {}
    if not product.get("id"):
        return {"product": None, "userErrors": [_user_error(["id"], "Product id is required")]}
    parsed = parse_gid(product["id"], "Product")
    target = None if parsed is None else ctx.shop.products.get(parsed[1])
    if target is None:
        return {"product": None, "userErrors": [_user_error(["id"], "Product does not exist")]}
    errors = []
    for i, item in enumerate(media or []):
        if item["mediaContentType"] != "IMAGE":
            errors.append(
                _user_error(
                    ["media", i, "mediaContentType"], "Only IMAGE media is supported by this store"
                )
            )
        if not _valid_source(item["originalSource"]):
            errors.append(_user_error(["media", i, "originalSource"], "Image URL is invalid"))
    if errors:
        return {"product": target, "userErrors": errors}
    for name, attr in (
        ("title", "title"),
        ("handle", "handle"),
        ("vendor", "vendor"),
        ("productType", "product_type"),
        ("status", "status"),
    ):
        if product.get(name) is not None:
            setattr(target, attr, product[name])
    if product.get("tags") is not None:
        target.tags = tuple(product["tags"])
    for item in media or []:
        created = _create_media_from_source(ctx, item["originalSource"], item.get("alt"))
        target.media_ids.append(created.id)
    target.updated_at = time.time()
    return {"product": target, "userErrors": []}


def _m_file_create(
    _: Any,
    info: GraphQLResolveInfo,
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    ctx = _ctx(info)
    errors = []
    for i, item in enumerate(files):
        content_type = item.get("contentType") or "IMAGE"
        if content_type != "IMAGE":
            errors.append(
                _user_error(
                    ["files", i, "contentType"],
                    "Only IMAGE files are supported by this store",
                    "INVALID",
                )
            )
        if not _valid_source(item["originalSource"]):
            errors.append(
                _user_error(
                    ["files", i, "originalSource"],
                    "Image URL is invalid",
                    "INVALID_IMAGE_SOURCE_URL",
                )
            )
    if errors:
        return {"files": None, "userErrors": errors}
    created = []
    for item in files:
        media = _create_media_from_source(ctx, item["originalSource"], item.get("alt"))
        if item.get("filename"):
            media.filename = ctx.state.rename_file(ctx.shop, media, item["filename"])
        created.append(media)
    return {"files": created, "userErrors": []}


def _m_file_update(
    _: Any,
    info: GraphQLResolveInfo,
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    ctx = _ctx(info)
    shop = ctx.shop
    errors = []
    plan: list[tuple[Media, dict[str, Any], list[Product], list[Product]]] = []
    for i, item in enumerate(files):
        parsed = parse_gid(item["id"], "MediaImage")
        media = None if parsed is None else shop.media.get(parsed[1])
        if media is None:
            errors.append(
                _user_error(
                    ["files", i, "id"],
                    f"File id {item['id']} does not exist.",
                    "FILE_DOES_NOT_EXIST",
                )
            )
            continue
        if media.status(ctx.now) != "READY":
            errors.append(
                _user_error(
                    ["files", i, "id"], "Non-ready files cannot be updated.", "NON_READY_STATE"
                )
            )
            continue
        if item.get("originalSource") or item.get("previewImageSource"):
            errors.append(
                _user_error(
                    ["files", i, "originalSource"],
                    "Replacing file content is not supported by this store",
                    "INVALID",
                )
            )
            continue
        resolved: dict[str, list[Product]] = {"referencesToAdd": [], "referencesToRemove": []}
        for key, products in resolved.items():
            for ref in item.get(key) or []:
                ref_parsed = parse_gid(ref, "Product")
                target = None if ref_parsed is None else shop.products.get(ref_parsed[1])
                if target is None:
                    errors.append(
                        _user_error(
                            ["files", i, key],
                            f"The reference target {ref} does not exist.",
                            "REFERENCE_TARGET_DOES_NOT_EXIST",
                        )
                    )
                else:
                    products.append(target)
        plan.append((media, item, resolved["referencesToAdd"], resolved["referencesToRemove"]))
    if errors:
        return {"files": None, "userErrors": errors}
    now = time.time()
    for media, item, add, remove in plan:
        if item.get("alt") is not None:
            media.alt = item["alt"]
        if item.get("filename"):
            media.filename = ctx.state.rename_file(shop, media, item["filename"])
        for target in add:
            if media.id not in target.media_ids:
                target.media_ids.append(media.id)
                target.updated_at = now
        for target in remove:
            if media.id in target.media_ids:
                target.media_ids.remove(media.id)
                target.updated_at = now
        media.updated_at = now
    return {"files": [m for m, *_ in plan], "userErrors": []}


def _m_file_delete(_: Any, info: GraphQLResolveInfo, fileIds: list[str]) -> dict[str, Any]:
    ctx = _ctx(info)
    shop = ctx.shop
    found: list[Media] = []
    errors = []
    for i, gid in enumerate(fileIds):
        parsed = parse_gid(gid, "MediaImage")
        media = None if parsed is None else shop.media.get(parsed[1])
        if media is None:
            errors.append(
                _user_error(["fileIds", i], f"File id {gid} does not exist.", "FILE_DOES_NOT_EXIST")
            )
        else:
            found.append(media)
    if errors:
        return {"deletedFileIds": None, "userErrors": errors}
    for media in found:
        ctx.state.delete_media(shop, media)
    return {"deletedFileIds": [m.gid for m in found], "userErrors": []}


# ---- assembly --------------------------------------------------------------------------


def _resolve_type(obj: Any, info: GraphQLResolveInfo, abstract: Any) -> str | None:
    if isinstance(obj, Media):
        return "MediaImage"
    if isinstance(obj, Product):
        return "Product"
    if isinstance(obj, dict) and str(obj.get("id", "")).startswith("gid://shopify/Shop/"):
        return "Shop"
    return None


def build_sim_schema() -> GraphQLSchema:
    schema = build_schema(SDL)

    def attach(type_name: str, resolvers: dict[str, Callable[..., Any]]) -> None:
        graphql_type = schema.get_type(type_name)
        for name, fn in resolvers.items():
            graphql_type.fields[name].resolve = fn  # type: ignore[union-attr]

    attach("MediaImage", _media_resolvers())
    attach("Product", _product_resolvers())
    attach(
        "Query",
        {
            "product": _q_product,
            "products": _q_products,
            "node": lambda _, info, id: _find_node(_ctx(info), id),
            "nodes": lambda _, info, ids: [_find_node(_ctx(info), i) for i in ids],
            "shop": lambda _, info: _shop_view(_ctx(info).shop),
        },
    )
    attach(
        "Mutation",
        {
            "stagedUploadsCreate": _m_staged_uploads_create,
            "productUpdate": _m_product_update,
            "fileUpdate": _m_file_update,
            "fileCreate": _m_file_create,
            "fileDelete": _m_file_delete,
        },
    )
    for name in ("Node", "Media", "File"):
        schema.get_type(name).resolve_type = _resolve_type  # type: ignore[union-attr]
    return schema
