"""Per-shop rate limits on the expensive actions (creating jobs and batches, bulk
actions, exports): a token bucket per (shop, action), answering 429 with `Retry-After`
and the error envelope when it is empty.

Process-local on purpose: no shared store to run or to fail, and a bucket costs a few
bytes. With N web processes a shop can reach N times the rate, which still bounds it;
the limits are sized for a merchant clicking (and the pages' own calls), not for a
script hammering one shop. `app.state.rate_limits` may replace the defaults (tests)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request

from pikcel_jobs.core.errors import AppError
from pikcel_jobs.shops.auth import ShopDomain


class RateLimited(AppError):
    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}


@dataclass(frozen=True)
class Limit:
    burst: float  # requests allowed at once
    per_second: float  # refill rate


DEFAULT_LIMITS = {
    "create": Limit(burst=600, per_second=20),  # POST /api/jobs, /api/batches, the form
    "bulk": Limit(burst=60, per_second=1),
    "export": Limit(burst=20, per_second=0.2),
}
WHAT = {"create": "new jobs", "bulk": "bulk actions", "export": "exports"}
MAX_BUCKETS = 50_000


@dataclass
class RateLimiter:
    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    buckets: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def take(self, shop: str, action: str, now: float | None = None) -> float:
        """Take one token; 0 when allowed, else the seconds until one is there."""
        limit = self.limits[action]
        now = time.monotonic() if now is None else now
        tokens, last = self.buckets.get((shop, action), (limit.burst, now))
        tokens = min(limit.burst, tokens + (now - last) * limit.per_second)
        if tokens < 1:
            self.buckets[(shop, action)] = (tokens, now)
            return (1 - tokens) / limit.per_second
        if len(self.buckets) >= MAX_BUCKETS:
            self._prune(now)
        self.buckets[(shop, action)] = (tokens - 1, now)
        return 0.0

    def _prune(self, now: float) -> None:
        """Forget buckets that are full again (they hold nothing a new one would not)."""
        for key, (tokens, last) in list(self.buckets.items()):
            limit = self.limits[key[1]]
            if tokens + (now - last) * limit.per_second >= limit.burst:
                del self.buckets[key]


def limiter_of(request: Request) -> RateLimiter:
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = RateLimiter(dict(getattr(request.app.state, "rate_limits", DEFAULT_LIMITS)))
        request.app.state.rate_limiter = limiter
    return limiter


def rate_limit(action: str) -> Any:
    """A route dependency: `dependencies=[rate_limit("bulk")]`."""
    if action not in DEFAULT_LIMITS:
        raise ValueError(f"unknown rate-limited action {action!r}")

    async def check(request: Request, shop: ShopDomain) -> None:
        wait = limiter_of(request).take(shop, action)
        if wait > 0:
            raise RateLimited(
                f"too many {WHAT[action]} from this shop just now; try again in "
                f"{max(1, math.ceil(wait))} s",
                wait,
            )

    return Depends(check)
