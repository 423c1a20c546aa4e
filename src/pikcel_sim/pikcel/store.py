"""In-memory state of the simulator: users, jobs, bulk jobs, files, counters."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

TERMINAL = frozenset({"completed", "failed", "cancelled"})
ACTIVE = frozenset({"pending", "processing"})
STATUSES = ("pending", "processing", "completed", "failed", "cancelled")


def iso(ts: float | None) -> str | None:
    """Unix seconds -> ISO-8601 UTC with milliseconds and a Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def digest(*parts: object) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


@dataclass
class SimUser:
    label: str
    id: str
    email: str
    credits_balance: int
    created_at: float
    updated_at: float
    credits_included: int
    credits_spent: int = 0
    total_jobs_processed: int = 0
    jobs_failed: int = 0
    jobs_cancelled: int = 0
    job_ids: list[str] = field(default_factory=list)  # creation order
    reserved: int = 0  # credits of this user's active jobs

    @property
    def available(self) -> int:
        return self.credits_balance - self.reserved

    def profile(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "full_name": self.label.replace("-", " ").title(),
            "credits_balance": self.credits_balance,
            "subscription": {
                "plan": "pro",
                "status": "active",
                "credits_included": self.credits_included,
                "renewal_date": iso(self.created_at + timedelta(days=30).total_seconds()),
            },
            "total_jobs_processed": self.total_jobs_processed,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def ledger(self) -> dict[str, Any]:
        return {
            "user_id": self.id,
            "email": self.email,
            "credits_balance": self.credits_balance,
            "credits_reserved": self.reserved,
            "credits_spent": self.credits_spent,
            "jobs_created": len(self.job_ids),
            "jobs_completed": self.total_jobs_processed,
            "jobs_failed": self.jobs_failed,
            "jobs_cancelled": self.jobs_cancelled,
        }


@dataclass
class SimJob:
    id: str
    seq: int
    user_id: str
    tool_id: str
    tool_name: str
    cost: int
    priority: str
    input_image_url: str
    parameters: dict[str, Any]
    template_id: str | None
    webhook_url: str | None
    metadata: dict[str, Any] | None
    origin: str  # base URL the job was dispatched through (for absolute file URLs)
    created_at: float
    updated_at: float
    will_fail: bool = False
    idempotency_key: str | None = None
    bulk_id: str | None = None
    status: str = "pending"
    progress: int = 0
    output_path: str | None = None
    thumbnail_path: str | None = None
    error_message: str | None = None
    credits_used: int = 0
    processing_time_ms: int | None = None
    started_at: float | None = None
    completed_at: float | None = None
    tick: int = 0  # bumped on every transition; stale scheduler entries are ignored

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self, base_url: str | None = None) -> dict[str, Any]:
        base = (base_url or self.origin).rstrip("/")
        return {
            "id": self.id,
            "user_id": self.user_id,
            "tool_id": self.tool_id,
            "tool_name": self.tool_name,
            "status": self.status,
            "priority": self.priority,
            "progress": self.progress,
            "input_image_url": self.input_image_url,
            "output_image_url": f"{base}/files/{self.output_path}" if self.output_path else None,
            "thumbnail_url": f"{base}/files/{self.thumbnail_path}"
            if self.thumbnail_path else None,
            "parameters": self.parameters,
            "template_id": self.template_id,
            "error_message": self.error_message,
            "credits_used": self.credits_used,
            "processing_time_ms": self.processing_time_ms,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "metadata": self.metadata,
        }


@dataclass
class SimBulk:
    id: str
    user_id: str
    job_ids: list[str]
    created_at: float


class FileStore:
    """Output, thumbnail and upload bytes by path; the oldest go beyond `retention`."""

    def __init__(self, retention: int) -> None:
        self.retention = retention
        self._files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    def put(self, path: str, data: bytes, mime: str) -> None:
        self._files[path] = (data, mime)
        self._files.move_to_end(path)
        while len(self._files) > self.retention:
            self._files.popitem(last=False)

    def get(self, path: str) -> tuple[bytes, str] | None:
        return self._files.get(path)

    def clear(self) -> None:
        self._files.clear()

    def __len__(self) -> int:
        return len(self._files)


class Counters:
    """What tests and benchmarks read from `GET /_sim/counters`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.time()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.idempotency_requests: Counter[str] = Counter()
        self.idempotency_jobs: Counter[str] = Counter()
        self.jobs_created = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_rps = 0
        self._window: deque[float] = deque()
        self.webhooks_sent = 0
        self.webhooks_delivered = 0
        self.webhooks_failed = 0
        self.webhooks_gave_up = 0
        self.webhook_log: deque[dict[str, Any]] = deque(maxlen=2000)

    def on_request(self, endpoint: str, idempotency_key: str | None) -> None:
        self.requests[endpoint] += 1
        if idempotency_key is not None:
            self.idempotency_requests[idempotency_key] += 1
        now = time.monotonic()
        window = self._window
        window.append(now)
        while window[0] <= now - 1.0:
            window.popleft()
        if len(window) > self.max_rps:
            self.max_rps = len(window)
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def on_response(self, status: int) -> None:
        self.in_flight = max(0, self.in_flight - 1)  # a reset may have zeroed it meanwhile
        self.statuses[str(status)] += 1

    def snapshot(self) -> dict[str, Any]:
        keys = set(self.idempotency_requests) | set(self.idempotency_jobs)
        return {
            "since": iso(self.started),
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "statuses": dict(self.statuses),
            "faults": dict(self.faults),
            "idempotency": {
                key: {
                    "requests": self.idempotency_requests[key],
                    "jobs": self.idempotency_jobs[key],
                }
                for key in sorted(keys)
            },
            "jobs_created": self.jobs_created,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "max_rps": self.max_rps,
            "webhooks": {
                "sent": self.webhooks_sent,
                "delivered": self.webhooks_delivered,
                "failed": self.webhooks_failed,
                "gave_up": self.webhooks_gave_up,
            },
        }
