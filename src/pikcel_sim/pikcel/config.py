"""Settings of the PikcelAI simulator: what it accepts, how fast it works, which faults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaultConfig(BaseModel):
    """Faults injected into `/api/*` requests and into webhook deliveries.

    Rates are probabilities in [0, 1], drawn from the simulator's seeded generator.
    The `force_*` counters inject the fault into the next N matching requests
    (deterministic tests); they count down as they are used.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: float = Field(0.0, ge=0, description="fixed delay added to every request")
    jitter_ms: float = Field(0.0, ge=0, description="extra uniform random delay in [0, jitter_ms]")
    error_rate: float = Field(0.0, ge=0, le=1, description="share of 5xx answers")
    error_statuses: list[int] = Field(
        default_factory=lambda: [500, 502, 503], description="5xx statuses drawn from"
    )
    commit_before_error: float = Field(
        0.5, ge=0, le=1,
        description="chance that a faulted POST was carried out before the 5xx/timeout",
    )
    timeout_rate: float = Field(0.0, ge=0, le=1, description="share of requests held too long")
    timeout_seconds: float = Field(
        30.0, ge=0, description="how long a timed-out request is held (then 504)"
    )
    throttle_rate: float = Field(0.0, ge=0, le=1, description="chance a request starts a 429 burst")
    retry_after: int = Field(1, ge=0, description="429 burst length, sent as Retry-After (s)")
    malformed_rate: float = Field(0.0, ge=0, le=1, description="share of truncated JSON bodies")
    job_failure_rate: float = Field(0.0, ge=0, le=1, description="share of jobs that fail")
    webhook_duplicate_rate: float = Field(0.0, ge=0, le=1)
    webhook_reorder_rate: float = Field(
        0.0, ge=0, le=1, description="chance a delivery is held back behind the job's next one"
    )
    webhook_reorder_hold_seconds: float = Field(
        1.0, ge=0, description="longest a reordered delivery waits for the next one"
    )
    webhook_corrupt_rate: float = Field(0.0, ge=0, le=1, description="share of bad signatures")
    force_errors: int = Field(0, ge=0)
    force_timeouts: int = Field(0, ge=0)
    force_throttles: int = Field(0, ge=0)
    force_malformed: int = Field(0, ge=0)
    endpoints: list[str] = Field(
        default_factory=list,
        description='endpoints the request faults apply to, e.g. "POST /api/jobs/dispatch"; '
        "empty = every /api endpoint",
    )


class SimConfig(BaseModel):
    """Everything the simulator needs; every field has a demo-friendly default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int | None = Field(None, description="None draws a random seed at start")
    id_namespace: str = Field(
        "", max_length=40,
        description="mixed into job ids: simulators sharing a seed but feeding one database "
        "(tests) still issue distinct ids, as real PikcelAI accounts do",
    )
    time_scale: float = Field(1.0, gt=0, description="multiplies every job duration")
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description="API key -> user label; empty = open mode (any non-empty key is a user)",
    )
    default_credits: int = Field(1000, ge=0, description="starting balance of each user")
    credits: dict[str, int] = Field(
        default_factory=dict, description="user label -> starting balance (overrides)"
    )
    webhook_secret: str = Field("", description="whsec_<base64> or a plain secret")
    send_webhooks: bool = True
    auto_progress: bool = Field(True, description="False: jobs move only via /_sim/jobs/...")
    public_url: str | None = Field(None, description="base of file URLs; default: request's")
    inactive_tools: list[str] = Field(default_factory=list)
    admin_enabled: bool = True
    max_input_bytes: int = Field(20 * 1024 * 1024, gt=0)
    fetch_timeout: float = Field(10.0, gt=0)
    image_workers: int = Field(4, ge=1, description="jobs fetched/processed at once")
    file_retention: int = Field(5000, ge=1, description="files kept before the oldest go (404)")
    webhook_timeout: float = Field(5.0, gt=0)
    webhook_max_attempts: int = Field(6, ge=1)
    webhook_retry_seconds: float = Field(1.0, ge=0, description="first redelivery delay, doubles")
    webhook_concurrency: int = Field(4, ge=1)
    faults: FaultConfig = Field(default_factory=FaultConfig)

    @property
    def open_mode(self) -> bool:
        return not self.api_keys
