"""SSE fan-out: 1,000 live connections on one `pikcel-jobs serve`; change-to-client latency, memory.

Per engine, a fresh database holds 500 processing jobs over 50 shops; `pikcel-jobs
serve` runs in its own process. Several client processes (multiprocessing, raw asyncio
streams, a few hundred connections each) open `GET /api/events` as the 50 shops (session
cookies from `sign_session`), 20 connections per shop. Then jobs change through the
outbox at a steady rate, in two ways:

* webhook: signed PikcelAI `job.progress` webhooks into the same server (its commit
  wakes its hub in-process); t0 = when the webhook is sent (so the figure includes the
  handler);
* other process: a separate process applies the same kind of change through the service
  code (`apply_remote` in a unit of work), as a worker does; t0 = when its commit returned.
  PostgreSQL wakes the hub by NOTIFY; SQLite has no cross-process signal, so the hub's
  periodic read decides.

Latency = arrival at each client of the shop (20 per change) minus t0; all on one clock.
Memory per connection = the server's RSS growth from before the connections to after
them, divided by their number. Target: p99 <= 250 ms.

    .venv/bin/python -m bench sse_fanout [--connections 1000] [--shops 50] [--clients 4]
        [--rate 20] [--seconds 10] [--engines sqlite,postgresql] [--docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import (
    SECRETS,
    append_docs,
    cpu_seconds,
    fresh_database,
    machine,
    pct,
    proc_kb,
    seed_active_jobs,
    start_serve,
    stopping,
)
from bench.webhook_ingestion import RawConnection, delivery, request_bytes
from pikcel_jobs.db.migrate import upgrade

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
TARGET_P99_MS = 250.0
JOBS_PER_SHOP = 10

# ---------------------------------------------------------------------------------------
# Client processes.

Record = tuple[str, int, float]  # our job id, progress, arrival (time.time())


async def _listen(host: str, port: int, cookie: str, records: list[Record],
                  connected: asyncio.Event | None, stop: asyncio.Event) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        f"Cookie: pikcel_session={cookie}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace")[:200])
    buffer = b""
    announced = False
    try:
        while not stop.is_set():
            size_line = await reader.readline()  # chunked transfer encoding
            if not size_line:
                return
            size = int(size_line.strip() or b"0", 16)
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            buffer += chunk[:-2]
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                if not announced and connected is not None:
                    announced = True  # the server's first bytes: subscribed
                    connected.set()
                for line in message.split(b"\n"):
                    if line.startswith(b"data: "):
                        payload = json.loads(line[6:])
                        progress = (payload.get("data") or {}).get("progress")
                        if payload.get("kind") == "progress" and progress is not None:
                            records.append((payload["jobId"], int(progress), now))
    finally:
        writer.close()


def client_process(host: str, port: int, cookies: list[str], ready: Any, stop: Any,
                   out: Any) -> None:  # fmt: skip
    """Hold len(cookies) connections; report when all are subscribed; on `stop`, send
    back (records, CPU seconds, connections that failed)."""

    async def run() -> None:
        records: list[Record] = []
        halt = asyncio.Event()
        events = [asyncio.Event() for _ in cookies]
        opening = asyncio.Semaphore(50)

        async def one(cookie: str, event: asyncio.Event) -> None:
            async with opening:
                task = asyncio.ensure_future(_listen(host, port, cookie, records, event, halt))
                await asyncio.wait([task, asyncio.ensure_future(event.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            await task

        tasks = [asyncio.ensure_future(one(c, e)) for c, e in zip(cookies, events, strict=True)]
        await asyncio.wait([asyncio.ensure_future(e.wait()) for e in events], timeout=120)
        ready.put(sum(e.is_set() for e in events))
        cpu = time.process_time()
        await asyncio.to_thread(stop.wait)
        cpu = time.process_time() - cpu
        halt.set()
        for task in tasks:
            task.cancel()
        failed = sum(1 for t in tasks if t.done() and not t.cancelled() and t.exception())
        out.put((records, cpu, failed))

    asyncio.run(run())


# ---------------------------------------------------------------------------------------
# Changes.


@dataclass
class Change:
    job_id: str
    remote_id: str
    shop_index: int
    progress: int
    t0: float = 0.0


def plan_changes(
    ids: list[str], remote: list[str], shops: int, start: int, count: int
) -> list[Change]:
    """Change number c moves job c % len(ids) to progress 11 + c // len(ids) (rising)."""
    out = []
    for c in range(start, start + count):
        n = c % len(ids)
        out.append(Change(ids[n], remote[n], n % shops, 11 + c // len(ids)))
    return out


async def send_webhooks(url: str, changes: list[Change], rate: float) -> None:
    from pikcel_jobs.pikcel.webhooks import signing_key

    host_port = url.split("//", 1)[1]
    host, port = host_port.split(":")
    key = signing_key(SECRETS["PIKCEL_WEBHOOK_SECRET"])
    conn = RawConnection(host, int(port))
    started = time.monotonic()
    for n, change in enumerate(changes):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        d = delivery(change.remote_id, n, "job.progress", change.progress)
        data = request_bytes(d, host_port, key)
        change.t0 = time.time()
        status, body = await conn.request(data)
        if status != 200:
            raise RuntimeError(f"webhook answered {status}: {body[:200]!r}")
    await conn.close()


def writer_process(database_url: str, plan: list[tuple[str, str, int]], rate: float,
                   out: Any) -> None:  # fmt: skip
    """Another process changing jobs through the service code, one commit per change."""

    async def run() -> list[float]:
        import pikcel_jobs.db.models  # noqa: F401  (every table registered)
        from pikcel_jobs.db.engine import create_engine, create_sessionmaker, unit_of_work
        from pikcel_jobs.jobs.models import Job
        from pikcel_jobs.jobs.tracking import apply_remote
        from pikcel_jobs.pikcel.schemas import Job as RemoteJob

        engine = create_engine(database_url)
        sessions = create_sessionmaker(engine)
        stamps: list[float] = []
        started = time.monotonic()
        for n, (job_id, remote_id, progress) in enumerate(plan):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            remote = RemoteJob.model_validate(
                {"id": remote_id, "status": "processing", "progress": progress,
                 "tool_id": "convert-webp", "input_image_url": "http://127.0.0.1:9/p.png"}
            )  # fmt: skip
            async with unit_of_work(sessions) as session:
                job = await session.get(Job, job_id, with_for_update=True)
                assert job is not None
                await apply_remote(session, job, remote, via="bench", poll_initial=2, poll_max=60)
            stamps.append(time.time())
        await engine.dispose()
        return stamps

    out.put(asyncio.run(run()))


# ---------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    changes: list[Change]
    latencies: list[float] = field(default_factory=list)
    expected: int = 0
    delivered: int = 0


@dataclass
class EngineResult:
    engine: str
    connections: int
    connected: int
    rss_before_mb: float
    rss_after_mb: float
    rss_end_mb: float
    phases: list[Phase]
    client_cpu_s: float
    server_cpu: float  # cores, averaged over both phases
    failed: int
    load: float

    @property
    def per_connection_kb(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) * 1024 / max(self.connected, 1)


def score(phases: list[Phase], records: list[Record], per_shop: dict[int, int]) -> None:
    arrivals: dict[tuple[str, int], list[float]] = {}
    for job_id, progress, at in records:
        arrivals.setdefault((job_id, progress), []).append(at)
    for phase in phases:
        for change in phase.changes:
            got = arrivals.get((change.job_id, change.progress), [])
            phase.expected += per_shop[change.shop_index]
            phase.delivered += len(got)
            phase.latencies.extend(at - change.t0 for at in got)


async def run_engine(
    engine: str, database_url: str, args: argparse.Namespace, workdir: Path
) -> EngineResult:
    from pikcel_jobs.config import load_settings
    from pikcel_jobs.shops.auth import sign_session

    job_count = args.shops * JOBS_PER_SHOP
    remote = [f"job_sse_{engine[:2]}_{n:05d}" for n in range(job_count)]
    ids = await seed_active_jobs(database_url, remote, shops=args.shops, progress=10)
    settings = load_settings(_env_file=None, database_url=database_url,
                             **{k.lower(): v for k, v in SECRETS.items()})  # fmt: skip
    cookies = [sign_session(settings, f"bench-{i % args.shops:03d}.myshopify.com")
               for i in range(args.connections)]  # fmt: skip
    per_shop = {s: sum(1 for i in range(args.connections) if i % args.shops == s)
                for s in range(args.shops)}  # fmt: skip
    url, server = start_serve(database_url, workdir)
    host, port = url.split("//", 1)[1].split(":")
    ctx = mp.get_context("spawn")
    ready, out, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [cookies[n :: args.clients] for n in range(args.clients)]
    clients = [ctx.Process(target=client_process, args=(host, int(port), share, ready, stop, out))
               for share in shares]  # fmt: skip
    phases: list[Phase] = []
    with stopping(server):
        await asyncio.sleep(1.0)
        rss_before = proc_kb(server.pid, "VmRSS") / 1024
        for c in clients:
            c.start()
        connected = sum([await asyncio.to_thread(ready.get, True, 180) for _ in clients])
        await asyncio.sleep(1.0)
        rss_after = proc_kb(server.pid, "VmRSS") / 1024
        console.print(f"{engine}: {connected}/{args.connections} connections; server RSS "
                      f"{rss_before:.0f} → {rss_after:.0f} MB")  # fmt: skip
        load = os.getloadavg()[0]
        cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
        count = int(args.rate * args.seconds)
        # 1. webhooks into the same server
        phase = Phase("webhook → same process", plan_changes(ids, remote, args.shops, 0, count))
        await send_webhooks(url, phase.changes, args.rate)
        phases.append(phase)
        await asyncio.sleep(3.0)
        # 2. another process writing through the service code
        phase = Phase("other process (as a worker)",
                      plan_changes(ids, remote, args.shops, count, count))  # fmt: skip
        result = ctx.Queue()
        writer = ctx.Process(target=writer_process, args=(
            database_url, [(c.job_id, c.remote_id, c.progress) for c in phase.changes],
            args.rate, result))  # fmt: skip
        writer.start()
        stamps = await asyncio.to_thread(result.get, True, 300)
        writer.join()
        for change, t in zip(phase.changes, stamps, strict=True):
            change.t0 = t
        phases.append(phase)
        await asyncio.sleep(3.0)
        server_cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)
        rss_end = proc_kb(server.pid, "VmRSS") / 1024
        stop.set()
        records: list[Record] = []
        client_cpu = 0.0
        failed = 0
        for _ in clients:
            got, cpu, bad = await asyncio.to_thread(out.get, True, 60)
            records.extend(got)
            client_cpu += cpu
            failed += bad
        for c in clients:
            c.join(10)
    score(phases, records, per_shop)
    return EngineResult(engine, args.connections, connected, rss_before, rss_after, rss_end,
                        phases, client_cpu, server_cpu, failed, load)  # fmt: skip


def summary(results: list[EngineResult], seconds: float) -> Table:
    table = Table(title="SSE fan-out (GET /api/events, one pikcel-jobs serve)")
    columns = ("engine", "change made by", "connections", "delivered", "p50", "p99",
               "≤ 250 ms", "max", "memory/conn", "server CPU", "clients CPU", "load")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    for r in results:
        for p in r.phases:
            table.add_row(
                r.engine, p.name, f"{r.connected:,}", f"{p.delivered:,}/{p.expected:,}",
                f"{pct(p.latencies, 50) * 1000:.0f} ms", f"{pct(p.latencies, 99) * 1000:.0f} ms",
                "yes" if pct(p.latencies, 99) * 1000 <= TARGET_P99_MS else "NO",
                f"{max(p.latencies, default=float('nan')) * 1000:.0f} ms",
                f"{r.per_connection_kb:.0f} KB", f"{r.server_cpu:.0%}",
                f"{r.client_cpu_s / (2 * seconds + 6):.0%}", f"{r.load:.1f}",
            )  # fmt: skip
    return table


def markdown(results: list[EngineResult], args: argparse.Namespace) -> str:
    lines = [
        f"## SSE fan-out: {args.connections:,} connections on one web process — "
        f"{datetime.now(UTC):%Y-%m-%d}",
        "",
        "    .venv/bin/python -m bench sse_fanout " + " ".join(args.argv),
        "",
        f"{args.connections:,} `GET /api/events` connections over {args.shops} shops "
        f"({args.clients} client processes, raw asyncio streams) on one `pikcel-jobs serve`; "
        f"{args.shops * JOBS_PER_SHOP} processing jobs change progress at {args.rate:g}/s for "
        f"{args.seconds:g} s each way, every change reaching the "
        f"{args.connections // args.shops} connections of its shop. *webhook*: signed "
        f"`job.progress` into the same server, latency from the send; *other process*: "
        f"`apply_remote` in a unit of work in a separate process (as the worker writes), "
        f"latency from its commit. *Memory/conn*: server RSS growth over the connections "
        f"/ their number. *Server CPU*: the server's CPU time over both phases / their "
        f"wall time (100% = one core). Machine: "
        f"{machine()}. Target: p99 ≤ {TARGET_P99_MS:.0f} ms.",
        "",
        "| engine | change made by | delivered | p50 | p99 | ≤ 250 ms | max | RSS before → with "
        "connections | memory/conn | server CPU | load |",
        "|---|---|---:|---:|---:|:---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for p in r.phases:
            p99 = pct(p.latencies, 99) * 1000
            lines.append(
                f"| {r.engine} | {p.name} | {p.delivered:,}/{p.expected:,} | "
                f"{pct(p.latencies, 50) * 1000:.0f} ms | {p99:.0f} ms | "
                f"{'yes' if p99 <= TARGET_P99_MS else '**no**'} | "
                f"{max(p.latencies, default=float('nan')) * 1000:.0f} ms | "
                f"{r.rss_before_mb:.0f} → {r.rss_after_mb:.0f} MB | {r.per_connection_kb:.0f} KB | "
                f"{r.server_cpu:.0%} | {r.load:.1f} |"
            )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sse_fanout", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--shops", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--rate", type=float, default=20.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.argv = argv
    results: list[EngineResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="pikcel-sse-bench-"))
    try:
        for engine in args.engines.split(","):
            with fresh_database(engine, workdir) as url:
                upgrade(url)
                results.append(asyncio.run(run_engine(engine, url, args, workdir)))
    finally:
        if os.environ.get("PIKCEL_BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(summary(results, args.seconds))
    console.print(machine())
    if args.docs:
        append_docs(markdown(results, args))
        console.print("appended to docs/benchmarks.md")
    ok = all(
        pct(p.latencies, 99) * 1000 <= TARGET_P99_MS and p.delivered == p.expected
        for r in results
        for p in r.phases
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
