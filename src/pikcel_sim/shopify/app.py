"""The Shopify simulator as an ASGI app: Admin GraphQL, OAuth, staged uploads, CDN, admin.

Shops are told apart by the Host header (`name.myshopify.com`), as on Shopify, so a
client that connects to the simulator but keeps the shop's host works unchanged.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any
from xml.sax.saxutils import escape

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from graphql import (
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from starlette.datastructures import UploadFile

from .config import ShopifySimConfig
from .cost import CostCalculator
from .hosts import SHOP_DOMAIN, shop_from_host
from .oauth import NOT_FOUND, register_oauth
from .schema import Ctx, build_sim_schema, media_url, parse_gid
from .store import Media, Shop, SimState
from .webhooks import TOPICS, send_webhook

UNAUTHORIZED = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}
THROTTLED_DOC = "https://shopify.dev/api/usage/rate-limits"


def _public_url(state: SimState, request: Request) -> str:
    if state.config.public_url:
        return state.config.public_url.rstrip("/")
    server = request.scope.get("server")
    if server:
        host, port = server[0], server[1]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"
    return str(request.base_url).rstrip("/")


def _cost(requested: int, actual: int | None, shop: Shop) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": shop.bucket.status(),
        }
    }


def _xml_error(code: str, message: str, status: int) -> Response:
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def create_app(config: ShopifySimConfig | None = None) -> FastAPI:
    config = config or ShopifySimConfig()
    state = SimState(config)
    schema = build_sim_schema()
    background: set[asyncio.Task[None]] = set()
    app = FastAPI(title="Shopify simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = state

    register_oauth(app, state)

    # ---- Admin GraphQL -------------------------------------------------------------

    def _take_forced(shop: str) -> tuple[int | None, bool]:
        """(forced HTTP status, forced THROTTLED) for this request, consuming counts."""
        faults = state.faults
        if faults.shop and faults.shop != shop:
            return None, False
        status = None
        with state.lock:
            if faults.force_status and faults.force_status_count != 0:
                status = faults.force_status
                if faults.force_status_count > 0:
                    faults.force_status_count -= 1
            throttled = False
            if status is None and faults.force_throttled_count != 0:
                throttled = True
                if faults.force_throttled_count > 0:
                    faults.force_throttled_count -= 1
        return status, throttled

    async def _fetch_external(media: Media, url: str) -> None:
        data = None
        try:
            async with httpx.AsyncClient(timeout=config.fetch_timeout) as client:
                response = await client.get(url, follow_redirects=True)
            if response.status_code == 200:
                data = response.content
        except httpx.HTTPError:
            data = None
        state.settle_media(
            media, data, download_failed=data is None, failure_roll=state.rng.random()
        )

    @app.post("/admin/api/{version}/graphql.json")
    async def admin_graphql(version: str, request: Request) -> Response:
        domain = shop_from_host(request.headers.get("host"))
        shop = state.shops.get(domain) if domain else None
        if shop is None:
            return JSONResponse(NOT_FOUND, status_code=404)
        headers = {"X-Shopify-API-Version": version, "X-Request-Id": f"sim-{time.monotonic_ns():x}"}
        state.count("requests", shop.domain)

        forced_status, forced_throttle = _take_forced(shop.domain)
        if forced_status is not None:
            state.count("forced_status", str(forced_status))
            message = (
                (
                    "Exceeded 2 calls per second for api client. Reduce request rates to "
                    "resume uninterrupted service."
                )
                if forced_status == 429
                else "Service Unavailable"
            )
            return JSONResponse(
                {"errors": message},
                status_code=forced_status,
                headers={**headers, "Retry-After": str(state.faults.retry_after)},
            )

        if (
            state.check_access_token(shop.domain, request.headers.get("x-shopify-access-token"))
            is None
        ):
            state.count("unauthorized", shop.domain)
            return JSONResponse(UNAUTHORIZED, status_code=401, headers=headers)

        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        try:
            if "application/graphql" in content_type:
                body: Any = {"query": raw.decode()}
            else:
                body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("query"), str)
            or not body["query"].strip()
        ):
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}},
                status_code=400,
                headers=headers,
            )
        variables = body.get("variables") or {}
        operation_name = body.get("operationName")

        try:
            document = parse(body["query"])
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]}, headers=headers)
        problems = validate(schema, document)
        if problems:
            return JSONResponse({"errors": [p.formatted for p in problems]}, headers=headers)
        operation = get_operation_ast(document, operation_name)
        if (
            not isinstance(operation, OperationDefinitionNode)
            or operation.operation == OperationType.SUBSCRIPTION
        ):
            return JSONResponse(
                {"errors": [{"message": "An operation name is required"}]}, headers=headers
            )

        calculator = CostCalculator(schema, document, operation, variables)
        try:
            requested = calculator.requested()
        except (GraphQLError, TypeError, ValueError):
            requested = 1
        if requested > config.max_query_cost:
            error = {
                "message": (
                    f"Query cost is {requested}, which exceeds the single query max "
                    f"cost limit ({config.max_query_cost}).\n\nSee {THROTTLED_DOC} for "
                    "more information on how the cost of a query is calculated."
                ),
                "extensions": {
                    "code": "MAX_COST_EXCEEDED",
                    "cost": requested,
                    "maxCost": config.max_query_cost,
                },
            }
            return JSONResponse(
                {"errors": [error], "extensions": _cost(requested, None, shop)}, headers=headers
            )
        if forced_throttle or not shop.bucket.try_take(requested):
            state.count("throttled", shop.domain)
            error = {
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": THROTTLED_DOC},
            }
            return JSONResponse(
                {"errors": [error], "extensions": _cost(requested, None, shop)}, headers=headers
            )

        ctx = Ctx(state=state, shop=shop, public_url=_public_url(state, request))
        result = execute_sync(
            schema,
            document,
            context_value=ctx,
            variable_values=variables,
            operation_name=operation_name,
        )
        actual = min(requested, calculator.actual(result.data))
        shop.bucket.refund(requested - actual)

        kind = "mutations" if operation.operation == OperationType.MUTATION else "queries"
        for selection in operation.selection_set.selections:
            name = getattr(getattr(selection, "name", None), "value", None)
            if name and not name.startswith("__"):
                state.count(kind, name)
        for media, url in ctx.fetches:
            task = asyncio.create_task(_fetch_external(media, url))
            background.add(task)
            task.add_done_callback(background.discard)

        payload: dict[str, Any] = {}
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
        payload["data"] = result.data
        payload["extensions"] = _cost(requested, actual, shop)
        return JSONResponse(payload, headers=headers)

    # ---- staged uploads (the Google Cloud Storage side) ------------------------------

    @app.post("/staged-uploads/{target_id}")
    async def staged_upload_post(target_id: str, request: Request) -> Response:
        target = state.staged.get(target_id)
        if target is None:
            return _xml_error("NoSuchUpload", "The upload target does not exist.", 404)
        if target.method != "POST":
            return _xml_error("MethodNotAllowed", "This target takes a signed PUT.", 405)
        try:
            form = await request.form(max_part_size=1024 * 1024)
        except Exception:
            return _xml_error("InvalidArgument", "The body is not multipart/form-data.", 400)
        try:
            items = list(form.multi_items())
            if not items or items[-1][0] != "file" or not isinstance(items[-1][1], UploadFile):
                return _xml_error(
                    "InvalidArgument",
                    "Cannot find the file: it must be the last form field "
                    "(fields after the file are ignored).",
                    400,
                )
            fields = {k: v for k, v in items[:-1] if isinstance(v, str)}
            for name, value in target.parameters:
                if fields.get(name) != value:
                    return _xml_error(
                        "AccessDenied",
                        f"Invalid according to Policy: Policy Condition failed: "
                        f'["eq", "${name}", "{value}"]',
                        403,
                    )
            upload = items[-1][1]
            assert isinstance(upload, UploadFile)
            data = await upload.read()
        finally:
            await form.close()
        if not 1 <= len(data) <= 20 * 1024 * 1024:
            return _xml_error(
                "EntityTooLarge" if data else "EntityTooSmall",
                "Your proposed upload is outside the allowed size range.",
                400,
            )
        target.data, target.uploaded_at = data, time.time()
        key = dict(target.parameters)["key"]
        location = f"{_public_url(state, request)}/staged-uploads/{target.id}/{target.filename}"
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><PostResponse>"
            f"<Location>{escape(location)}</Location><Bucket>shopify-staged-uploads</Bucket>"
            f'<Key>{escape(key)}</Key><ETag>"{target.id[:32]}"</ETag></PostResponse>'
        )
        return Response(body, status_code=201, media_type="application/xml")

    @app.put("/staged-uploads/{target_id}")
    async def staged_upload_put(target_id: str, request: Request) -> Response:
        target = state.staged.get(target_id)
        if target is None:
            return _xml_error("NoSuchUpload", "The upload target does not exist.", 404)
        if target.method != "PUT" or request.url.query != target.query_string:
            return _xml_error("SignatureDoesNotMatch", "The request signature does not match.", 403)
        data = await request.body()
        if not 1 <= len(data) <= 20 * 1024 * 1024:
            return _xml_error("EntityTooLarge", "Upload outside the allowed size range.", 400)
        target.data, target.uploaded_at = data, time.time()
        return Response(status_code=200)

    @app.get("/staged-uploads/{target_id}/{filename}")
    async def staged_resource(target_id: str, filename: str) -> Response:
        target = state.staged.get(target_id)
        if target is None or target.data is None:
            return _xml_error("NoSuchKey", "The specified key does not exist.", 404)
        return Response(target.data, media_type=target.mime)

    # ---- CDN -------------------------------------------------------------------------

    @app.get("/cdn/{shop}/files/{filename}")
    def cdn(shop: str, filename: str) -> Response:
        record = state.shops.get(shop)
        media_id = record.files_by_name.get(filename) if record else None
        media = record.media.get(media_id) if record and media_id is not None else None
        data = state.media_bytes(media) if media else None
        if media is None or data is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        return Response(
            data, media_type=media.mime, headers={"Cache-Control": "public, max-age=31536000"}
        )

    # ---- admin (tests and the demo) --------------------------------------------------

    def _media_json(request: Request, shop: Shop, media: Media) -> dict[str, Any]:
        now = time.monotonic()
        status = media.status(now)
        ctx = Ctx(state=state, shop=shop, public_url=_public_url(state, request), now=now)
        return {
            "id": media.gid,
            "alt": media.alt,
            "status": status,
            "filename": media.filename,
            "url": media_url(ctx, media) if status == "READY" else None,
            "width": media.width,
            "height": media.height,
            "mimeType": media.mime,
            "error": (
                {"code": media.error[0], "message": media.error[1]}
                if status == "FAILED" and media.error
                else None
            ),
            "products": [p.gid for p in shop.products.values() if media.id in p.media_ids],
        }

    def _shop_or_404(shop: str) -> Shop | JSONResponse:
        record = state.shops.get(shop)
        return record if record else JSONResponse({"error": "unknown shop"}, status_code=404)

    @app.get("/_sim/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "shops": len(state.shops)}

    @app.get("/_sim/counters")
    async def counters() -> dict[str, Any]:
        return state.counters_json()

    @app.post("/_sim/counters/reset")
    async def reset_counters() -> dict[str, Any]:
        state.reset_counters()
        return state.counters_json()

    @app.get("/_sim/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults.as_dict()

    @app.put("/_sim/faults")
    async def put_faults(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        unknown = set(body) - set(state.faults.as_dict())
        if unknown:
            return JSONResponse(
                {"error": f"unknown fault fields: {sorted(unknown)}"}, status_code=400
            )
        with state.lock:
            for key, value in body.items():
                setattr(state.faults, key, value)
        return JSONResponse(state.faults.as_dict())

    @app.delete("/_sim/faults")
    async def clear_faults() -> dict[str, Any]:
        with state.lock:
            state.faults.__init__()  # type: ignore[misc]
        return state.faults.as_dict()

    @app.get("/_sim/shops")
    async def list_shops() -> list[dict[str, Any]]:
        return [
            {"shop": s.domain, "id": s.id, "products": len(s.products)}
            for s in state.shops.values()
        ]

    @app.post("/_sim/shops")
    async def create_shop(request: Request) -> Response:
        body = await request.json()
        domain = str(body.get("shop", "")).lower()
        if not SHOP_DOMAIN.match(domain):
            return JSONResponse({"error": "shop must be name.myshopify.com"}, status_code=400)
        shop = state.create_shop(domain, body.get("products"))
        return JSONResponse(
            {"shop": shop.domain, "id": shop.id, "products": len(shop.products)}, status_code=201
        )

    @app.get("/_sim/shops/{shop}/products/{product_id}")
    async def product_state(shop: str, product_id: str, request: Request) -> Response:
        record = _shop_or_404(shop)
        if isinstance(record, JSONResponse):
            return record
        try:
            number = (
                int(product_id)
                if product_id.isdigit()
                else (parse_gid(product_id, "Product") or ("", -1))[1]
            )
        except GraphQLError:
            number = -1
        product = record.products.get(number)
        if product is None:
            return JSONResponse({"error": "unknown product"}, status_code=404)
        media = [
            _media_json(request, record, record.media[i])
            for i in product.media_ids
            if i in record.media
        ]
        return JSONResponse(
            {"id": product.gid, "title": product.title, "handle": product.handle, "media": media}
        )

    @app.get("/_sim/shops/{shop}/files")
    async def shop_files(shop: str, request: Request) -> Response:
        record = _shop_or_404(shop)
        if isinstance(record, JSONResponse):
            return record
        return JSONResponse(
            [_media_json(request, record, m) for m in record.media.values() if m.spec is None]
        )

    @app.post("/_sim/shops/{shop}/expire-tokens")
    async def expire_tokens(shop: str) -> dict[str, Any]:
        return {"expired": state.expire_tokens(shop)}

    @app.post("/_sim/webhooks/send")
    async def webhooks_send(request: Request) -> Response:
        body = await request.json()
        shop = str(body.get("shop", "")).lower()
        topic = str(body.get("topic", ""))
        address = str(body.get("address", ""))
        if not SHOP_DOMAIN.match(shop) or topic not in TOPICS or not address.startswith("http"):
            return JSONResponse(
                {"error": f"need shop (name.myshopify.com), topic in {list(TOPICS)}, address"},
                status_code=400,
            )
        result = await send_webhook(
            state,
            shop=shop,
            topic=topic,
            address=address,
            payload=body.get("payload"),
            api_version=str(body.get("api_version") or "2025-10"),
            secret=body.get("secret"),
        )
        return JSONResponse(result)

    @app.get("/_sim/bucket/{shop}")
    async def bucket(shop: str) -> Response:
        record = _shop_or_404(shop)
        if isinstance(record, JSONResponse):
            return record
        status = record.bucket.status()
        status["currentlyAvailable"] = math.floor(record.bucket.available)
        return JSONResponse(status)

    return app
