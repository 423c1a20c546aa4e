"""`pikcel-jobs sim pikcel`: run the PikcelAI simulator standalone.

Also runnable as `python -m pikcel_sim.pikcel.cli --port 8001`.
"""

import typer
import uvicorn

from .app import create_app
from .config import FaultConfig, SimConfig


def parse_api_keys(value: str) -> dict[str, str]:
    """`"k1,k2=shop-b"` -> {"k1": "user-1", "k2": "shop-b"}; empty -> {} (open mode)."""
    keys: dict[str, str] = {}
    for n, item in enumerate((part.strip() for part in value.split(",")), start=1):
        if not item:
            continue
        key, _, label = item.partition("=")
        keys[key.strip()] = label.strip() or f"user-{n}"
    return keys


def build_config(
    *, seed: int | None = None, time_scale: float = 1.0, webhook_secret: str = "",
    api_key: str = "", credits: int = 1000, public_url: str | None = None,
    send_webhooks: bool = True, auto_progress: bool = True, admin: bool = True,
    **faults: float,
) -> SimConfig:
    return SimConfig(
        seed=seed, time_scale=time_scale, webhook_secret=webhook_secret,
        api_keys=parse_api_keys(api_key), default_credits=credits,
        public_url=public_url.rstrip("/") if public_url else None,
        send_webhooks=send_webhooks, auto_progress=auto_progress, admin_enabled=admin,
        faults=FaultConfig.model_validate(faults),
    )


def main(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8001, help="Port to listen on."),
    seed: int | None = typer.Option(None, help="Seed for repeatable runs (default: random)."),
    time_scale: float = typer.Option(
        1.0, help="Multiplies job durations (0.01 = a hundred times faster)."),
    webhook_secret: str = typer.Option(
        "", envvar="PIKCEL_WEBHOOK_SECRET", help="Signing secret (whsec_<base64> or plain)."),
    api_key: str = typer.Option(
        "", envvar="PIKCEL_API_KEY",
        help="Accepted keys, comma-separated, each KEY or KEY=USER; empty = open mode "
             "(any non-empty key is its own user)."),
    credits: int = typer.Option(1000, help="Starting credits of each user."),
    public_url: str | None = typer.Option(
        None, help="Base of output URLs (default: the URL each request came in on)."),
    send_webhooks: bool = typer.Option(True, "--send-webhooks/--no-webhooks"),
    auto_progress: bool = typer.Option(
        True, "--auto-progress/--no-auto-progress",
        help="Off: jobs move only through POST /_sim/jobs/{id}/start|progress|complete|fail."),
    admin: bool = typer.Option(True, "--admin/--no-admin", help="Serve the /_sim/* endpoints."),
    latency_ms: float = typer.Option(0.0, help="Fault: fixed delay per request."),
    jitter_ms: float = typer.Option(0.0, help="Fault: extra random delay up to this."),
    error_rate: float = typer.Option(0.0, help="Fault: share of 5xx answers."),
    commit_before_error: float = typer.Option(
        0.5, help="Fault: chance a faulted POST was carried out before its 5xx/timeout."),
    timeout_rate: float = typer.Option(0.0, help="Fault: share of requests held too long."),
    timeout_seconds: float = typer.Option(30.0, help="Fault: how long they are held."),
    throttle_rate: float = typer.Option(0.0, help="Fault: chance a request starts a 429 burst."),
    retry_after: int = typer.Option(1, help="Fault: 429 burst length / Retry-After seconds."),
    malformed_rate: float = typer.Option(0.0, help="Fault: share of truncated JSON bodies."),
    job_failure_rate: float = typer.Option(0.0, help="Fault: share of jobs that fail."),
    webhook_duplicate_rate: float = typer.Option(0.0, help="Fault: duplicated deliveries."),
    webhook_reorder_rate: float = typer.Option(0.0, help="Fault: reordered deliveries."),
    webhook_corrupt_rate: float = typer.Option(0.0, help="Fault: bad signatures."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve a simulated PikcelAI API (DESIGN §3) that really processes images."""
    config = build_config(
        seed=seed, time_scale=time_scale, webhook_secret=webhook_secret, api_key=api_key,
        credits=credits, public_url=public_url, send_webhooks=send_webhooks,
        auto_progress=auto_progress, admin=admin, latency_ms=latency_ms, jitter_ms=jitter_ms,
        error_rate=error_rate, commit_before_error=commit_before_error,
        timeout_rate=timeout_rate, timeout_seconds=timeout_seconds,
        throttle_rate=throttle_rate, retry_after=retry_after, malformed_rate=malformed_rate,
        job_failure_rate=job_failure_rate, webhook_duplicate_rate=webhook_duplicate_rate,
        webhook_reorder_rate=webhook_reorder_rate, webhook_corrupt_rate=webhook_corrupt_rate,
    )
    app = create_app(config)
    mode = "open mode" if config.open_mode else f"{len(config.api_keys)} key(s)"
    typer.echo(f"PikcelAI simulator on http://{host}:{port} ({mode}, seed {config.seed}, "
               f"time scale {config.time_scale:g})")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


if __name__ == "__main__":
    typer.run(main)
