"""Webhook ingestion: verified PikcelAI webhooks/s into `pikcel-jobs serve` vs a bare handler.

Per engine, a fresh database holds N dispatched jobs (status processing, remote ids
known, `insert_jobs`); `pikcel-jobs serve` runs in its own process. Each job then gets
the deliveries PikcelAI sends: `job.progress` at 30, 50 and 70, then `job.completed`,
signed with both schemes exactly as the simulator signs them
(`pikcel_sim.pikcel.webhooks.sign`, key from `pikcel_jobs.pikcel.webhooks.signing_key`),
and a share of them delivered twice back to back (the simulator's duplicate fault, same
`webhook-id`). Deliveries go out as fast as C keep-alive connections carry them (raw
asyncio streams: the client's own CPU per request is printed, so it is seen not to be
the limit). The baseline is a FastAPI handler answering 200 (`bench/_bare_webhook_app.py`,
uvicorn in its own process) given the same deliveries just before and just after; the
ratio is against the mean of the two. Afterwards the database must show nothing lost or
double-applied: one receipt per delivery id, exactly 4 events per job, every job
completed, credits and rollups counted once.

    .venv/bin/python -m bench webhook_ingestion [--jobs 1000] [--engines sqlite,postgresql]
        [--concurrency 32] [--duplicates 0.1] [--profile] [--docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import (
    ROOT,
    SECRETS,
    Proc,
    append_docs,
    base_env,
    cpu_seconds,
    free_port,
    fresh_database,
    machine,
    pct,
    query,
    seed_active_jobs,
    start_serve,
    stopping,
    wait_http,
)
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.pikcel.webhooks import signing_key
from pikcel_sim.pikcel.webhooks import sign

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
TARGET_PER_S = 1000.0
PROGRESS_STEPS = (30, 50, 70)


# ---------------------------------------------------------------------------------------
# Deliveries, signed as the simulator signs them.


@dataclass
class Delivery:
    msg_id: str
    job_id: str  # remote id
    event: str
    body: bytes
    duplicate: bool = False


def remote_job(remote_id: str, n: int, *, status: str, progress: int) -> dict[str, object]:
    """The job object PikcelAI puts in a webhook (the simulator's `SimJob.to_dict`)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    done = status == "completed"
    return {
        "id": remote_id, "user_id": "usr_bench", "tool_id": "convert-webp",
        "tool_name": "Convert to WebP", "status": status, "priority": "normal",
        "progress": progress, "input_image_url": f"http://127.0.0.1:9/p/{n}.png",
        "output_image_url": f"http://127.0.0.1:9/files/outputs/{remote_id}.webp" if done else None,
        "thumbnail_url": f"http://127.0.0.1:9/files/thumbnails/{remote_id}.png" if done else None,
        "parameters": {"quality": 82}, "template_id": None, "error_message": None,
        "credits_used": 1 if done else 0, "processing_time_ms": 1800 if done else None,
        "started_at": now, "completed_at": now if done else None, "created_at": now,
        "updated_at": now, "metadata": None,
    }  # fmt: skip


def delivery(remote_id: str, n: int, event: str, progress: int) -> Delivery:
    status = "completed" if event == "job.completed" else "processing"
    job = remote_job(remote_id, n, status=status, progress=progress)
    body = json.dumps(
        {"event": event, "job_id": remote_id, "job": job,
         "timestamp": job["updated_at"]}, separators=(",", ":"),
    ).encode()  # fmt: skip
    return Delivery("msg_" + secrets.token_hex(12), remote_id, event, body)


def plan_deliveries(remote_ids: list[str], duplicates: float, seed: int = 1) -> list[Delivery]:
    """Round by round (every job's 30, then 50, 70, completed), so one job's events go
    out in order; a share is delivered twice in a row (same webhook-id)."""
    rng = random.Random(seed)
    out: list[Delivery] = []
    for event, progress in [*(("job.progress", p) for p in PROGRESS_STEPS),
                            ("job.completed", 100)]:  # fmt: skip
        for n, remote_id in enumerate(remote_ids):
            d = delivery(remote_id, n, event, progress)
            out.append(d)
            if rng.random() < duplicates:
                out.append(Delivery(d.msg_id, d.job_id, d.event, d.body, duplicate=True))
    return out


def request_bytes(d: Delivery, host: str, key: bytes) -> bytes:
    """The full HTTP/1.1 request, freshly signed (both schemes)."""
    headers = sign(key, d.msg_id, int(time.time()), d.body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST /webhooks/pikcel HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"User-Agent: PikcelAI-Webhooks/1.0 (simulator)\r\nwebhook-attempt: 1\r\n{head}"
        f"Content-Length: {len(d.body)}\r\n\r\n"
    ).encode() + d.body


# ---------------------------------------------------------------------------------------
# A lean keep-alive HTTP/1.1 client (asyncio streams), so the load generator stays cheap.


class RawConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class Sent:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    duplicates_seen: int = 0
    client_cpu_us: float = 0.0
    server_cpu_us: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


async def send_all(url: str, deliveries: list[Delivery], concurrency: int, pid: int) -> Sent:
    host_port = url.split("//", 1)[1]
    host, port = host_port.split(":")
    key = signing_key(SECRETS["PIKCEL_WEBHOOK_SECRET"])
    requests = [request_bytes(d, host_port, key) for d in deliveries]
    out = Sent()
    index = 0

    async def lane() -> None:
        nonlocal index
        conn = RawConnection(host, int(port))
        try:
            while index < len(requests):
                data = requests[index]
                index += 1
                t = time.perf_counter()
                status, body = await conn.request(data)
                out.latencies.append(time.perf_counter() - t)
                out.statuses[status] = out.statuses.get(status, 0) + 1
                if b'"duplicate"' in body:
                    out.duplicates_seen += 1
        finally:
            await conn.close()

    server0, client0 = cpu_seconds(pid), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    out.seconds = time.perf_counter() - started
    out.client_cpu_us = (time.process_time() - client0) / max(out.count, 1) * 1e6
    out.server_cpu_us = (cpu_seconds(pid) - server0) / max(out.count, 1) * 1e6
    return out


# ---------------------------------------------------------------------------------------


@dataclass
class EngineResult:
    engine: str
    jobs: int
    deliveries: int
    duplicates: int
    real: Sent
    bare: list[Sent]
    checks: dict[str, tuple[object, object]]  # name -> (found, expected)
    load: float

    @property
    def bare_rate(self) -> float:
        return sum(b.rate for b in self.bare) / len(self.bare)

    @property
    def ratio(self) -> float:
        return self.real.rate / self.bare_rate if self.bare_rate else 0.0

    @property
    def intact(self) -> bool:
        return all(found == expected for found, expected in self.checks.values())


def verify(
    database_url: str, jobs: int, distinct: int, sent: Sent, duplicates: int
) -> dict[str, tuple[object, object]]:
    one = lambda sql: query(database_url, sql)[0][0]  # noqa: E731
    per_job = query(database_url, "SELECT COUNT(*) FROM job_events GROUP BY job_id")
    return {
        "HTTP 200": (sent.statuses.get(200, 0), sent.count),
        "answered as duplicate": (sent.duplicates_seen, duplicates),
        # (receipts may also be kept under the body's hash: count the webhook-ids)
        "receipts (one per webhook-id)": (
            one("SELECT COUNT(*) FROM webhook_receipts WHERE delivery_id LIKE 'msg_%'"),
            distinct,
        ),
        "jobs with exactly 4 events": (sum(1 for (n,) in per_job if n == 4), jobs),
        "events": (one("SELECT COUNT(*) FROM job_events"), 4 * jobs),
        "jobs completed": (one("SELECT COUNT(*) FROM jobs WHERE status = 'completed'"), jobs),
        "credits on jobs": (int(one("SELECT COALESCE(SUM(credits_used), 0) FROM jobs")), jobs),
        "rollup: completed jobs": (
            int(one("SELECT COALESCE(SUM(jobs), 0) FROM job_rollups WHERE status = 'completed'")),
            jobs,
        ),
        "rollup: processing jobs": (
            int(one("SELECT COALESCE(SUM(jobs), 0) FROM job_rollups WHERE status = 'processing'")),
            0,
        ),
        "rollup: credits": (int(one("SELECT COALESCE(SUM(credits), 0) FROM job_rollups")), jobs),
    }


def start_bare(workdir: Path) -> tuple[str, Proc]:
    port = free_port()
    proc = Proc(
        [sys.executable, "-m", "uvicorn", "bench._bare_webhook_app:app", "--port", str(port),
         "--log-level", "warning"],
        base_env(), workdir / f"bare-{port}.log", cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    return url, proc


async def run_engine(
    engine: str, database_url: str, args: argparse.Namespace, workdir: Path
) -> EngineResult:
    remote_ids = [f"job_wh_{engine[:2]}_{n:06d}" for n in range(args.jobs)]
    await seed_active_jobs(database_url, remote_ids, shops=50, progress=10)
    deliveries = plan_deliveries(remote_ids, args.duplicates)
    dups = sum(d.duplicate for d in deliveries)
    distinct = len(deliveries) - dups
    bare: list[Sent] = []
    bare_url, bare_proc = start_bare(workdir)
    with stopping(bare_proc):
        await send_all(bare_url, deliveries[:500], args.concurrency, bare_proc.pid)  # warm-up
        bare.append(await send_all(bare_url, deliveries, args.concurrency, bare_proc.pid))
        console.print(f"  bare before: {bare[-1].rate:,.0f}/s")
        url, server = start_serve(database_url, workdir)
        with stopping(server):
            load = os.getloadavg()[0]
            real = await send_all(url, deliveries, args.concurrency, server.pid)
            console.print(f"  pikcel-jobs serve: {real.rate:,.0f}/s "
                          f"(p99 {pct(real.latencies, 99) * 1000:.0f} ms)")  # fmt: skip
            if set(real.statuses) != {200}:
                console.print(f"[red]  answers: {real.statuses}[/red]")
            if "Traceback" in server.tail(400):
                console.print(f"[red]server log:[/red]\n{server.tail(30)}")
        bare.append(await send_all(bare_url, deliveries, args.concurrency, bare_proc.pid))
        console.print(f"  bare after: {bare[-1].rate:,.0f}/s")
    checks = verify(database_url, args.jobs, distinct, real, dups)
    return EngineResult(engine, args.jobs, len(deliveries), dups, real, bare, checks, load)


# ---------------------------------------------------------------------------------------
# In-process profile of the handler (no HTTP stack), for finding where the time goes.


async def profile_handler(database_url: str, count: int) -> None:
    import cProfile
    import pstats

    import httpx

    from pikcel_jobs.app import create_app
    from pikcel_jobs.config import load_settings

    remote_ids = [f"job_prof_{n:06d}" for n in range(count)]
    await seed_active_jobs(database_url, remote_ids, shops=50)
    settings = load_settings(
        _env_file=None, database_url=database_url,
        **{k.lower(): v for k, v in SECRETS.items()},
    )  # fmt: skip
    app = create_app(settings)
    key = signing_key(SECRETS["PIKCEL_WEBHOOK_SECRET"])
    deliveries = [delivery(r, n, "job.progress", 30) for n, r in enumerate(remote_ids)]
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        profiler = cProfile.Profile(time.thread_time)
        cpu = time.process_time()
        profiler.enable()
        for d in deliveries:
            headers = sign(key, d.msg_id, int(time.time()), d.body)
            response = await client.post("/webhooks/pikcel", content=d.body, headers=headers)
            assert response.status_code == 200, response.text
        profiler.disable()
        cpu = time.process_time() - cpu
    console.print(f"in-process, one at a time: {cpu / count * 1e6:.0f} µs CPU per webhook "
                  f"(process, all threads)")  # fmt: skip
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)


# ---------------------------------------------------------------------------------------


def summary(results: list[EngineResult]) -> Table:
    table = Table(title="Webhook ingestion (POST /webhooks/pikcel, verified, both schemes)")
    for col in ("engine", "deliveries", "webhooks/s", "p50", "p99", "≥ 1,000/s",
                "bare /s (before, after)", "ratio", "server CPU/webhook", "bare CPU/req",
                "client CPU/req", "intact", "load"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.engine, f"{r.deliveries:,} ({r.duplicates:,} dup)", f"{r.real.rate:,.0f}",
            f"{pct(r.real.latencies, 50) * 1000:.1f} ms",
            f"{pct(r.real.latencies, 99) * 1000:.0f} ms",
            "yes" if r.real.rate >= TARGET_PER_S else "NO",
            ", ".join(f"{b.rate:,.0f}" for b in r.bare), f"{r.ratio:.2f}",
            f"{r.real.server_cpu_us:,.0f} µs", f"{r.bare[0].server_cpu_us:,.0f} µs",
            f"{r.real.client_cpu_us:,.0f} µs", "yes" if r.intact else "NO", f"{r.load:.1f}",
        )  # fmt: skip
    return table


def markdown(results: list[EngineResult], args: argparse.Namespace) -> str:
    lines = [
        f"## Webhook ingestion: verified PikcelAI webhooks into `pikcel-jobs serve` — "
        f"{datetime.now(UTC):%Y-%m-%d}",
        "",
        "    .venv/bin/python -m bench webhook_ingestion " + " ".join(args.argv),
        "",
        f"{args.jobs:,} dispatched jobs per engine; each gets `job.progress` 30, 50, 70 and "
        f"`job.completed`, signed with both schemes as the simulator signs them, "
        f"{args.duplicates:.0%} delivered twice back to back (same `webhook-id`); "
        f"{args.concurrency} keep-alive connections, as fast as answered (raw asyncio "
        f"streams; *client CPU/req* shows the sender is not the limit). *Bare*: a FastAPI "
        f"handler answering 200 under the same uvicorn in its own process, the same "
        f"deliveries just before and just after; ratio against their mean. *Server CPU* "
        f"is the serving process's CPU time per delivery (independent of machine load). "
        f"*Intact*: one receipt per delivery id, exactly 4 events per job, every job "
        f"completed, credits and rollups counted once, duplicates answered as such. "
        f"Machine: {machine()}. Target: ≥ {TARGET_PER_S:,.0f}/s on SQLite.",
        "",
        "| engine | deliveries | webhooks/s | p50 | p99 | ≥ 1,000/s | bare /s (before, after) "
        "| ratio | server CPU/webhook | bare server CPU/req | client CPU/req | intact | load |",
        "|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.engine} | {r.deliveries:,} ({r.duplicates:,} dup) | {r.real.rate:,.0f} | "
            f"{pct(r.real.latencies, 50) * 1000:.1f} ms | "
            f"{pct(r.real.latencies, 99) * 1000:.0f} ms | "
            f"{'yes' if r.real.rate >= TARGET_PER_S else '**no**'} | "
            f"{', '.join(f'{b.rate:,.0f}' for b in r.bare)} | {r.ratio:.2f} | "
            f"{r.real.server_cpu_us:,.0f} µs | {r.bare[0].server_cpu_us:,.0f} µs | "
            f"{r.real.client_cpu_us:,.0f} µs | {'yes' if r.intact else '**no**'} | {r.load:.1f} |"
        )
    for r in results:
        bad = {k: v for k, v in r.checks.items() if v[0] != v[1]}
        if bad:
            lines.append("")
            lines.append(f"{r.engine}: " + "; ".join(
                f"{k}: {found} (expected {expected})"
                for k, (found, expected) in bad.items()))  # fmt: skip
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench webhook_ingestion", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--profile", action="store_true",
                        help="also profile the handler in-process (no HTTP), SQLite")  # fmt: skip
    parser.add_argument("--docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.argv = argv
    results: list[EngineResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="pikcel-webhook-bench-"))
    try:
        for engine in [e for e in args.engines.split(",") if e]:
            with fresh_database(engine, workdir) as url:
                upgrade(url)
                console.print(f"{engine}: {args.jobs:,} jobs")
                results.append(asyncio.run(run_engine(engine, url, args, workdir)))
        if args.profile:
            with fresh_database("sqlite", workdir / "profile") as url:
                (workdir / "profile").mkdir(exist_ok=True)
                upgrade(url)
                asyncio.run(profile_handler(url, 1000))
    finally:
        if os.environ.get("PIKCEL_BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
    if results:
        console.print(summary(results))
        console.print(machine())
        for r in results:
            for name, (found, expected) in r.checks.items():
                if found != expected:
                    console.print(f"[red]{r.engine}: {name}: {found} (expected {expected})[/red]")
    if args.docs and results:
        append_docs(markdown(results, args))
        console.print("appended to docs/benchmarks.md")
    return 0 if all(r.intact and (r.engine != "sqlite" or r.real.rate >= TARGET_PER_S)
                    for r in results) else 1  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
