"""Prometheus metrics of this process. Counters and histograms are updated where the
work happens; gauges of database state are read when /metrics is scraped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_CALLS = Counter(
    "pikcel_upstream_calls_total",
    "Calls to PikcelAI by operation and outcome",
    ["operation", "outcome"],
)
UPSTREAM_SECONDS = Histogram(
    "pikcel_upstream_seconds", "Latency of PikcelAI calls", ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip
UPSTREAM_ERRORS = Counter("pikcel_upstream_errors_total", "PikcelAI errors by kind", ["kind"])
WEBHOOKS = Counter(
    "pikcel_webhooks_total", "Webhooks received by source and outcome", ["source", "outcome"]
)
WEBHOOK_SECONDS = Histogram(
    "pikcel_webhook_seconds", "Time to handle a webhook", ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)  # fmt: skip
JOBS_BY_STATUS = Gauge("pikcel_jobs", "Jobs by status (all shops)", ["status"])
QUEUE_LAG = Gauge("pikcel_queue_lag_seconds", "Age of the oldest due, unclaimed work")
QUEUE_DUE = Gauge("pikcel_queue_due", "Due, unclaimed work items")
SSE_CONNECTIONS = Gauge("pikcel_sse_connections", "Open live-update connections in this process")


@contextmanager
def upstream_call(operation: str) -> Iterator[None]:
    """Time a PikcelAI call and count its outcome (`ok` or the error's code)."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        kind = str(getattr(exc, "code", type(exc).__name__)).lower()
        UPSTREAM_CALLS.labels(operation, "error").inc()
        UPSTREAM_ERRORS.labels(kind).inc()
        raise
    else:
        UPSTREAM_CALLS.labels(operation, "ok").inc()
    finally:
        UPSTREAM_SECONDS.labels(operation).observe(time.perf_counter() - start)
