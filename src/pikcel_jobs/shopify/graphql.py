"""Admin GraphQL client that paces itself from Shopify's cost extension.

Shopify meters GraphQL by calculated cost in a per-(app, shop) leaky bucket and reports
`extensions.cost.throttleStatus` on every answer. The client keeps an estimate of each
shop's bucket (shared by every client in the process) and, before a query, waits until
the query's expected cost is available; so a worker that paces never sees THROTTLED
unless another process spends the same bucket. THROTTLED (HTTP 200) and 429/502/503/504
are still retried a bounded number of times, honouring `Retry-After`; durable retries
belong to the caller (the job's next_attempt_at), not to a sleeping process.

`shopifyapp.admin_graphql_request` is not used here: it does not retry THROTTLED, it
exposes no pacing, and after its last 429 it hands back a made-up response without
`Retry-After`. It is exercised against the simulator in the tests instead.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)

from .errors import (
    ShopifyAuthError,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyNotFound,
    ShopifyThrottledError,
    ShopifyTransientError,
    ShopifyUserError,
)
from .hosts import validate_shop_domain

RETRY_STATUSES = frozenset({429, 502, 503, 504})
CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
Sleep = Callable[[float], Awaitable[None]]


# ---- pacing ----------------------------------------------------------------------------


@dataclass
class BucketEstimate:
    maximum: float
    available: float
    restore_rate: float
    stamp: float
    in_flight: float = 0.0


class ThrottlePacer:
    """Per-shop estimate of Shopify's cost bucket; `acquire` waits for enough points."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_single_wait: float = 60.0,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.max_single_wait = max_single_wait
        self._buckets: dict[str, BucketEstimate] = {}

    def _refill(self, bucket: BucketEstimate) -> None:
        now = self._clock()
        bucket.available = min(
            bucket.maximum, bucket.available + (now - bucket.stamp) * bucket.restore_rate
        )
        bucket.stamp = now

    def estimate(self, shop: str) -> BucketEstimate | None:
        bucket = self._buckets.get(shop)
        if bucket is not None:
            self._refill(bucket)
        return bucket

    async def acquire(self, shop: str, cost: float) -> float:
        """Wait until `cost` points are expected to be available; returns the reservation."""
        while True:
            bucket = self._buckets.get(shop)
            if bucket is None:  # first request for this shop: learn from the answer
                return 0.0
            self._refill(bucket)
            need = max(0.0, min(float(cost), bucket.maximum))
            if bucket.available >= need:
                bucket.available -= need
                bucket.in_flight += need
                return need
            wait = (need - bucket.available) / max(bucket.restore_rate, 0.001)
            await self._sleep(min(wait + 0.005, self.max_single_wait))

    def release(
        self,
        shop: str,
        reserved: float,
        throttle_status: Mapping[str, Any] | None,
    ) -> None:
        """Settle a reservation with the server's `throttleStatus` (None: nothing charged)."""
        bucket = self._buckets.get(shop)
        if bucket is not None:
            bucket.in_flight = max(0.0, bucket.in_flight - reserved)
        if not throttle_status:
            if bucket is not None:
                self._refill(bucket)
                bucket.available = min(bucket.maximum, bucket.available + reserved)
            return
        try:
            maximum = float(throttle_status["maximumAvailable"])
            current = float(throttle_status["currentlyAvailable"])
            rate = float(throttle_status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        if bucket is None:
            bucket = BucketEstimate(maximum, current, rate, self._clock())
            self._buckets[shop] = bucket
        bucket.maximum, bucket.restore_rate, bucket.stamp = maximum, rate, self._clock()
        bucket.available = min(maximum, current - bucket.in_flight)


DEFAULT_PACER = ThrottlePacer()


# ---- cost estimate ---------------------------------------------------------------------

_DOCUMENTS: OrderedDict[str, DocumentNode] = OrderedDict()
_LEARNED: OrderedDict[tuple[str, str], int] = OrderedDict()
_CACHE_SIZE = 256


def _document(query: str) -> DocumentNode:
    document = _DOCUMENTS.get(query)
    if document is None:
        document = parse(query, no_location=True)
        _DOCUMENTS[query] = document
        if len(_DOCUMENTS) > _CACHE_SIZE:
            _DOCUMENTS.popitem(last=False)
    return document


def estimate_query_cost(query: str, variables: Mapping[str, Any] | None = None) -> int:
    """Shopify-like static cost without the schema: a field with a selection is an object
    (1), one with `first`/`last` a connection (2 + size x node), a mutation field 10."""
    try:
        document = _document(query)
    except GraphQLError:
        return 1
    fragments = {
        d.name.value: d.selection_set
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    operation = next(
        (d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None
    )
    if operation is None:
        return 1
    values = dict(variables or {})

    def fields(selection_set: SelectionSetNode | None) -> list[FieldNode]:
        out: list[FieldNode] = []
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                out.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                out.extend(fields(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                out.extend(fields(fragments.get(selection.name.value)))
        return out

    def size(node: FieldNode) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value in ("first", "last"):
                try:
                    return int(value_from_ast_untyped(argument.value, values) or 0)
                except (TypeError, ValueError):
                    return 10
        return None

    def cost(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for node in fields(selection_set):
            if node.selection_set is None or node.name.value.startswith("__"):
                continue
            n = size(node)
            if n is None:
                total += 1 + cost(node.selection_set)
                continue
            per_node = 0
            for child in fields(node.selection_set):
                if child.name.value == "nodes":
                    per_node = max(per_node, 1 + cost(child.selection_set))
                elif child.name.value == "edges":
                    for inner in fields(child.selection_set):
                        if inner.name.value == "node":
                            per_node = max(per_node, 1 + cost(inner.selection_set))
            total += 2 + n * per_node
        return total

    if operation.operation == OperationType.MUTATION:
        return 10 * len(
            [f for f in fields(operation.selection_set) if not f.name.value.startswith("__")]
        )
    return max(1, cost(operation.selection_set))


def _learn_key(query: str, variables: Mapping[str, Any] | None) -> tuple[str, str]:
    sizes = {k: v for k, v in (variables or {}).items() if isinstance(v, int)}
    return query, json.dumps(sizes, sort_keys=True)


# ---- helpers -----------------------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def raise_for_user_errors(
    payload: Mapping[str, Any] | None,
    *,
    mutation: str | None = None,
) -> None:
    """Raise `ShopifyUserError` when a mutation payload has `userErrors` (or
    `mediaUserErrors`)."""
    if payload is None:
        return
    errors = list(payload.get("userErrors") or []) + list(payload.get("mediaUserErrors") or [])
    if errors:
        raise ShopifyUserError(errors, mutation)


# ---- client ------------------------------------------------------------------------------


class ShopifyGraphQL:
    """One shop's Admin GraphQL endpoint at a pinned API version."""

    def __init__(
        self,
        shop: str,
        access_token: str,
        api_version: str,
        http_client: httpx.AsyncClient,
        *,
        pacer: ThrottlePacer | None = None,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.shop = validate_shop_domain(shop)
        self.api_version = api_version
        self.url = f"https://{self.shop}/admin/api/{api_version}/graphql.json"
        self._token = access_token
        self.http = http_client
        self.pacer = pacer or DEFAULT_PACER
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self.last_cost: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ShopifyGraphQL(shop={self.shop!r}, api_version={self.api_version!r})"

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))

    def expected_cost(self, query: str, variables: Mapping[str, Any] | None) -> int:
        learned = _LEARNED.get(_learn_key(query, variables))
        return learned if learned is not None else estimate_query_cost(query, variables)

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """The `data` of a successful answer; raises the errors of `errors.py`."""
        payload = await self.request(query, variables, operation_name=operation_name)
        data = payload.get("data")
        return data if isinstance(data, dict) else {}

    async def mutate(
        self, query: str, variables: Mapping[str, Any] | None, *, payload_key: str
    ) -> dict[str, Any]:
        """Run a mutation and return its payload; raises `ShopifyUserError` on userErrors."""
        data = await self.execute(query, variables)
        payload = data.get(payload_key)
        if not isinstance(payload, dict):
            raise ShopifyError(f"{payload_key} returned no payload")
        raise_for_user_errors(payload, mutation=payload_key)
        return payload

    async def request(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """The whole JSON answer (data, extensions) after pacing and bounded retries."""
        body: dict[str, Any] = {"query": query}
        if variables:
            body["variables"] = dict(variables)
        if operation_name:
            body["operationName"] = operation_name
        headers = {"X-Shopify-Access-Token": self._token, "Accept": "application/json"}
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.max_attempts
            reserved = await self.pacer.acquire(self.shop, self.expected_cost(query, variables))
            try:
                response = await self.http.post(self.url, json=body, headers=headers)
            except httpx.TransportError as exc:
                self.pacer.release(self.shop, reserved, None)
                if isinstance(exc, CONNECT_ERRORS) and not last:
                    await self._sleep(self._backoff(attempt))
                    continue
                raise ShopifyTransientError(
                    f"Shopify request failed: {type(exc).__name__}"
                ) from exc

            status = response.status_code
            if status != 200:
                self.pacer.release(self.shop, reserved, None)
                self._raise_or_wait_http(status, response)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if last or (retry_after is not None and retry_after > self.max_retry_after):
                    raise ShopifyTransientError(
                        f"Shopify answered HTTP {status}", status=status, retry_after=retry_after
                    )
                await self._sleep(
                    retry_after if retry_after is not None else self._backoff(attempt)
                )
                continue

            try:
                payload = response.json()
            except ValueError:
                self.pacer.release(self.shop, reserved, None)
                raise ShopifyTransientError(
                    "Shopify answered with invalid JSON", status=status
                ) from None
            cost = (
                (payload.get("extensions") or {}).get("cost") if isinstance(payload, dict) else None
            )
            self.pacer.release(
                self.shop, reserved, cost.get("throttleStatus") if isinstance(cost, dict) else None
            )
            if isinstance(cost, dict):
                self.last_cost = cost
                if isinstance(cost.get("requestedQueryCost"), int | float):
                    key = _learn_key(query, variables)
                    _LEARNED[key] = int(cost["requestedQueryCost"])
                    if len(_LEARNED) > _CACHE_SIZE:
                        _LEARNED.popitem(last=False)

            errors = payload.get("errors") if isinstance(payload, dict) else None
            if not errors:
                return payload if isinstance(payload, dict) else {}
            if not isinstance(errors, list):
                raise ShopifyGraphQLError([{"message": str(errors)}], payload.get("data"))
            if any(
                (e.get("extensions") or {}).get("code") == "THROTTLED"
                for e in errors
                if isinstance(e, dict)
            ):
                wait = self._throttle_wait(cost)
                if last:
                    raise ShopifyThrottledError(
                        "Shopify kept answering THROTTLED", retry_after=wait
                    )
                # The pacer now knows the bucket; when it thinks there is room anyway
                # (another process spent it), back off before asking again.
                estimate = self.pacer.estimate(self.shop)
                if estimate is None or estimate.available >= self.expected_cost(query, variables):
                    await self._sleep(max(wait, self._backoff(attempt)))
                continue
            raise ShopifyGraphQLError(errors, payload.get("data"))

    @staticmethod
    def _throttle_wait(cost: Any) -> float:
        try:
            status = cost["throttleStatus"]
            deficit = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
            return max(0.0, deficit / float(status["restoreRate"]))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return 1.0

    @staticmethod
    def _raise_or_wait_http(status: int, response: httpx.Response) -> None:
        """Raise for statuses that are not worth retrying here."""
        if status in RETRY_STATUSES:
            return
        if status in (401, 403):
            raise ShopifyAuthError(
                "Shopify rejected the access token (invalid, expired or revoked)"
                if status == 401
                else "The access token lacks a required scope",
                status=status,
            )
        if status == 404:
            raise ShopifyNotFound("Shopify answered 404 (unknown shop or API version)")
        if 400 <= status < 500:
            raise ShopifyGraphQLError([{"message": f"HTTP {status}: {response.text[:300]}"}])
        raise ShopifyTransientError(f"Shopify answered HTTP {status}", status=status)
