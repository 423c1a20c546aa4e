"""A process-wide cap on PikcelAI requests: a token bucket (per second) and a semaphore.

Every HTTP attempt, retries included, goes through `async with limiter.slot():`. The
semaphore is taken first, then a token, then the request is sent at once, so tokens are
never spent by requests still queued for a connection. The bucket holds `burst` tokens
(by default 2 ms worth, at least one: `BURST_SECONDS`). With `burst=1` consecutive grants
are at least `1/rate` apart (a late wake-up is not caught up, an early one is slept
out), so any 1-second window sees at most `rate` requests; in general at most
`rate + burst - 1`. Tokens come at `PACING` x `rate`: requests leave the process a
little unevenly (a busy event loop sends two grants back to back), and PikcelAI counts
arrivals; at 202/s, paced at the full rate, the simulator once counted 211 in a second.
And at most at `rate - burst`: a 1-second window holds at most `burst + floor(pace)`
grants, which must stay within `rate` for the shares of several workers
(worker/membership.py) to add up to no more than the global cap: three workers sharing
20/s paced at 95% of 6.67 could each grant 7 in one window, 21 in all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

PACING = 0.95
# Tokens the bucket holds by default: what accrues in this long, at least one. Timers
# tick in milliseconds, so above ~500/s one grant per wake-up could not keep up (the
# worker's limiter delivered 56-61% of a 1,300/s cap with a bucket of one).
BURST_SECONDS = 0.002


class RateLimiter:
    def __init__(self, rate: float, *, concurrency: int = 10, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        if concurrency < 1 or (burst is not None and burst < 1):
            raise ValueError("concurrency and burst must be >= 1")
        self.concurrency = concurrency
        self._fixed_burst = burst
        self.burst = self._burst_for(float(rate))
        self.rate = float(rate)
        self._pace = self._pace_for(self.rate)
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = asyncio.Lock()
        self._semaphore = asyncio.Semaphore(concurrency)
        self.granted = 0
        self.waited_seconds = 0.0
        self._open = asyncio.Event()
        self._open.set()
        self._held = False
        # Monotonic time after which nothing is granted until `renew` (a worker whose
        # place among the workers is not refreshed must stop: the others stop counting it).
        self.expires_at: float | None = None

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (a worker's share of the global cap changed)."""
        if rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self._pace)
        self._last = now
        self.rate = float(rate)
        self.burst = self._burst_for(self.rate)
        self._pace = self._pace_for(self.rate)

    def _burst_for(self, rate: float) -> int:
        if self._fixed_burst is not None:
            return self._fixed_burst
        return max(1, int(rate * BURST_SECONDS))

    def _pace_for(self, rate: float) -> float:
        if rate > self.burst:
            return min(rate * PACING, rate - self.burst)
        return rate * PACING  # under one request a second: a window may hold `burst`

    def hold(self) -> None:
        """Grant nothing until `release` (a joining worker waits for the others to
        count it before it spends its share: worker/membership.py)."""
        self._held = True
        self._open.clear()

    def release(self) -> None:
        self._held = False
        self._open.set()

    def renew(self, until: float) -> None:
        """Grant until monotonic time `until` (and again if expired meanwhile)."""
        self.expires_at = until
        if not self._held:
            self._open.set()

    async def acquire_token(self) -> None:
        """Wait for one token (FIFO among waiters)."""
        while not self._open.is_set() or (
            self.expires_at is not None and time.monotonic() > self.expires_at
        ):
            self._open.clear()  # held, or expired: wait for `release` / `renew`
            await self._open.wait()
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self._pace)
                self._last = now
                if self._tokens >= 1:
                    break
                # Sleep again if woken early (event loops round timers to the
                # millisecond): granting on an early wake-up would exceed the rate.
                wait = (1 - self._tokens) / self._pace
                await asyncio.sleep(wait)
                self.waited_seconds += wait
            self._tokens -= 1
            self.granted += 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one concurrent request slot, having taken a token to send it."""
        async with self._semaphore:
            await self.acquire_token()
            yield


_shared: dict[tuple[float, int, int | None], RateLimiter] = {}


def shared_limiter(rate: float, concurrency: int, burst: int | None = None) -> RateLimiter:
    """The process's one limiter for these settings (every client made with it shares it)."""
    key = (float(rate), concurrency, burst)
    limiter = _shared.get(key)
    if limiter is None:
        limiter = _shared[key] = RateLimiter(rate, concurrency=concurrency, burst=burst)
    return limiter
