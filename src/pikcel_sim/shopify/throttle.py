"""Per-shop leaky bucket of GraphQL cost points, as Shopify's calculated query cost."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any


class LeakyBucket:
    """`size` points, refilled continuously at `rate` points per second."""

    def __init__(
        self, size: float, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = float(size)
        self.rate = float(rate)
        self._clock = clock
        self._available = float(size)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._available = min(self.size, self._available + elapsed * self.rate)
        self._stamp = now

    @property
    def available(self) -> float:
        self._refill()
        return self._available

    def try_take(self, cost: float) -> bool:
        self._refill()
        if cost > self._available:
            return False
        self._available -= cost
        return True

    def refund(self, points: float) -> None:
        self._refill()
        self._available = min(self.size, self._available + max(0.0, points))

    def drain(self, points: float | None = None) -> None:
        """Remove points (all when None); used by fault injection."""
        self._refill()
        self._available = 0.0 if points is None else max(0.0, self._available - points)

    def status(self) -> dict[str, Any]:
        """The `throttleStatus` object of a response."""
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": math.floor(self.available),
            "restoreRate": self.rate,
        }
