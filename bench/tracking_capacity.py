"""Tracking capacity: 100,000 active jobs, polling only; worker GET/s vs a bare loop, rate cap, lag.

The PikcelAI simulator runs in its own process (`pikcel-jobs sim pikcel --no-auto-progress
--no-webhooks`); N remote jobs are created there by bulk dispatch (they stay put until
told). Per engine, a fresh database gets one already-dispatched job per remote job
(status processing, remote id stored, due for a poll) through `insert_jobs`, and
`pikcel-jobs worker` processes start (SQLite: 1; PostgreSQL: 4) with a rate cap far above
what is reached. Then:

1. capacity: rounds of the workers alone (the simulator's own count of
   `GET /api/jobs/{id}` over the round) and, with the workers stopped (SIGSTOP), the
   simulator benchmark's bare loops from this process at the same total upstream
   concurrency against the same simulator (`pikcel_sim_throughput.bare_loops`): aiohttp
   (the workers' own HTTP stack with nothing around it) and httpx (the first session's
   baseline, bound by httpcore's own CPU). The order rotates each round. Ratio = median
   over rounds of workers / bare aiohttp (target >= 0.8); workers / bare httpx beside it;
2. lag: a random sample of jobs is completed at the simulator (`POST /_sim/jobs/{id}/
   complete`) while the workers run; lag = our `job_events` row for the completion minus
   the simulator's `completed_at`, waited for up to --lag-wait seconds;
3. cap: the workers are restarted with UPSTREAM_RPS set to half the rate they reached
   (the global cap, which the live worker processes share: worker/membership.py); the
   simulator's `max_rps` (requests in any 1 s window) must stay at or under the cap.

    .venv/bin/python -m bench tracking_capacity [--jobs 100000] [--engines sqlite,postgresql]
        [--concurrency 16] [--rounds 6] [--seconds 2.5] [--lag-sample 100] [--lag-wait 60]
        [--docs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop
from rich.console import Console
from rich.table import Table

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import (
    API_KEY,
    Proc,
    append_docs,
    cpu_seconds,
    create_jobs,
    fresh_database,
    machine,
    median,
    query,
    seed_active_jobs,
    start_sim,
    start_workers,
    stopping,
)
from bench.pikcel_sim_throughput import bare_loops, run_load
from pikcel_jobs.db.migrate import upgrade

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
GET_ONE = "GET /api/jobs/{id}"
TARGET_RATIO = 0.8
UNCAPPED_RPS = 100_000


@dataclass
class EngineResult:
    engine: str
    workers: int
    jobs: int
    concurrency: int
    seed_s: float = 0.0
    worker_rates: list[float] = field(default_factory=list)
    bare_rates: list[float] = field(default_factory=list)  # bare aiohttp loop
    bare_httpx_rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # workers / bare aiohttp
    ratios_httpx: list[float] = field(default_factory=list)
    worker_cpu_us: list[float] = field(default_factory=list)  # workers' CPU per GET
    sim_cpu_us_worker: list[float] = field(default_factory=list)  # simulator CPU per GET
    sim_cpu_us_bare: list[float] = field(default_factory=list)
    uncapped_max_rps: int = 0
    lag_sample: int = 0
    lags: list[float] = field(default_factory=list)
    lag_wait_s: float = 0.0
    lag_phase_rate: float = 0.0
    cap: float = 0.0
    cap_rate: float = 0.0
    cap_max_rps: int = 0
    errors: int = 0
    load: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(self.ratios)

    @property
    def ratio_httpx(self) -> float:
        return median(self.ratios_httpx)

    @property
    def cap_ok(self) -> bool:
        return self.cap_max_rps <= self.cap

    @property
    def cycle_s(self) -> float:
        """How long one pass over every active job takes at the measured rate."""
        rate = self.lag_phase_rate or median(self.worker_rates)
        return self.jobs / rate if rate else float("nan")


def worker_settings(url: str, concurrency: int, workers: int, rps: float) -> dict[str, object]:
    """Tuned for throughput: a poll holds a handler slot while it waits for the limiter
    and for its group commit (which lingers 20 ms to share the transaction), so slots
    outnumber upstream connections 16 to 1; claims take up to 100 rows at a time."""
    per = max(1, concurrency // workers)
    return {
        "PIKCEL_API_URL": url, "PIKCEL_API_KEY": API_KEY, "UPSTREAM_RPS": rps,  # global
        "UPSTREAM_CONCURRENCY": per, "WORKER_CONCURRENCY": 16 * per, "WORKER_BATCH_SIZE": 100,
        "POLL_INITIAL_SECONDS": 2, "POLL_MAX_SECONDS": 60, "LEASE_SECONDS": 60,
        "JOB_DEADLINE_SECONDS": 86400, "APP_URL": "http://127.0.0.1:9",
    }  # fmt: skip


async def counters(sim: httpx.AsyncClient, *, reset: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = (await sim.get("/_sim/counters")).json()
    if reset:
        (await sim.post("/_sim/counters/reset")).raise_for_status()
    return data


async def wait_polling(sim: httpx.AsyncClient, procs: list[Proc], within: float = 60) -> None:
    """Until the workers' GETs reach the simulator (they have started and claimed)."""
    start = (await counters(sim))["requests"].get(GET_ONE, 0)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"a worker exited:\n{proc.tail()}")
        if (await counters(sim))["requests"].get(GET_ONE, 0) > start + 20:
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"the workers made no GET in {within:.0f} s:\n{procs[0].tail()}")


async def capacity_rounds(
    r: EngineResult, sim: httpx.AsyncClient, sim_pid: int, procs: list[Proc], ids: list[str],
    rounds: int, seconds: float,
) -> None:  # fmt: skip
    async def worker_round() -> None:
        for proc in procs:
            proc.resume()
        await asyncio.sleep(0.5)  # back to a steady pace after the pause
        await counters(sim, reset=True)
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        sim0 = cpu_seconds(sim_pid)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        data = await counters(sim)
        elapsed = time.monotonic() - started
        for proc in procs:
            proc.pause()
        gets = data["requests"].get(GET_ONE, 0)
        r.worker_rates.append(gets / elapsed)
        r.worker_cpu_us.append((sum(cpu_seconds(p.pid) for p in procs) - cpu0) / max(gets, 1) * 1e6)
        r.sim_cpu_us_worker.append((cpu_seconds(sim_pid) - sim0) / max(gets, 1) * 1e6)
        r.uncapped_max_rps = max(r.uncapped_max_rps, int(data["max_rps"]))

    async with bare_loops(str(sim.base_url), r.concurrency) as bare:

        async def aiohttp_round() -> None:
            sim0 = cpu_seconds(sim_pid)
            rate, _ = await run_load(bare["aiohttp"], ids, r.concurrency, seconds)
            r.bare_rates.append(rate)
            r.sim_cpu_us_bare.append((cpu_seconds(sim_pid) - sim0) / max(rate * seconds, 1) * 1e6)

        async def httpx_round() -> None:
            rate, _ = await run_load(bare["httpx"], ids, r.concurrency, seconds)
            r.bare_httpx_rates.append(rate)

        try:
            for proc in procs:
                proc.pause()
            for call in bare.values():  # warm the pools
                await run_load(call, ids, r.concurrency, 1.0)
            steps = [worker_round, aiohttp_round, httpx_round]
            for n in range(rounds):
                for step in steps[n % 3 :] + steps[: n % 3]:
                    await step()
                r.ratios.append(r.worker_rates[-1] / r.bare_rates[-1])
                r.ratios_httpx.append(r.worker_rates[-1] / r.bare_httpx_rates[-1])
                r.load.append(os.getloadavg()[0])
                console.print(
                    f"  round {n + 1}: workers {r.worker_rates[-1]:6.0f} GET/s, bare aiohttp "
                    f"{r.bare_rates[-1]:6.0f} req/s (ratio {r.ratios[-1]:.2f}), bare httpx "
                    f"{r.bare_httpx_rates[-1]:6.0f} req/s (ratio {r.ratios_httpx[-1]:.2f}), "
                    f"load {r.load[-1]:.1f}"
                )
        finally:
            for proc in procs:
                proc.resume()


async def lag_phase(
    r: EngineResult, sim: httpx.AsyncClient, database_url: str, ids: list[str], sample: int,
    wait: float,
) -> None:  # fmt: skip
    """Complete a random sample at the simulator while the workers run; our row's
    completion event minus the simulator's completed_at."""
    rng = random.Random(7 + len(r.engine))
    chosen = rng.sample(ids, sample)
    remote_done: dict[str, datetime] = {}
    before = (await counters(sim))["requests"].get(GET_ONE, 0)
    started = time.monotonic()
    for job_id in chosen:  # spread over ~5 s, as changes arrive in life
        answer = (await sim.post(f"/_sim/jobs/{job_id}/complete")).json()
        remote_done[job_id] = datetime.fromisoformat(answer["completed_at"])
        await asyncio.sleep(5.0 / sample)
    seen: dict[str, datetime] = {}
    marks = ",".join("?" * len(chosen))
    sql = (
        "SELECT j.pikcel_job_id, MIN(e.created_at) FROM job_events e JOIN jobs j ON j.id = "
        f"e.job_id WHERE e.kind = 'status' AND e.status = 'completed' AND j.pikcel_job_id IN "
        f"({marks}) GROUP BY j.pikcel_job_id"
    )
    while len(seen) < len(chosen) and time.monotonic() - started < wait:
        await asyncio.sleep(1.0)
        for remote_id, at in await asyncio.to_thread(query, database_url, sql, chosen):
            if isinstance(at, str):
                at = datetime.fromisoformat(at)
            seen[remote_id] = at if at.tzinfo else at.replace(tzinfo=UTC)
    r.lag_wait_s = time.monotonic() - started
    after = (await counters(sim))["requests"].get(GET_ONE, 0)
    r.lag_phase_rate = (after - before) / r.lag_wait_s
    r.lag_sample = len(chosen)
    r.lags = [(seen[j] - remote_done[j]).total_seconds() for j in seen]


async def cap_phase(
    r: EngineResult, sim: httpx.AsyncClient, database_url: str, workdir: Path, seconds: float
) -> None:
    r.cap = max(10.0, round(median(r.worker_rates) * 0.5))
    env = worker_settings(str(sim.base_url), r.concurrency, r.workers, r.cap)
    procs = start_workers(r.workers, database_url, workdir, **env)
    with stopping(procs):
        await wait_polling(sim, procs)
        await asyncio.sleep(1.0)
        await counters(sim, reset=True)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        data = await counters(sim)
        r.cap_rate = data["requests"].get(GET_ONE, 0) / (time.monotonic() - started)
        r.cap_max_rps = int(data["max_rps"])
        r.errors += count_errors(procs)


def count_errors(procs: list[Proc]) -> int:
    return sum(p.log.read_text(errors="replace").count("Traceback") for p in procs)


async def run_engine(
    engine: str, database_url: str, sim_url: str, sim_pid: int, ids: list[str],
    args: argparse.Namespace, workdir: Path,
) -> EngineResult:  # fmt: skip
    workers = 1 if engine == "sqlite" else args.pg_workers
    r = EngineResult(engine, workers, len(ids), args.concurrency)
    started = time.monotonic()
    await seed_active_jobs(database_url, ids)
    r.seed_s = time.monotonic() - started
    console.print(f"{engine}: {len(ids):,} active jobs seeded in {r.seed_s:.0f} s; "
                  f"{workers} worker process(es)")  # fmt: skip
    async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
        env = worker_settings(sim_url, args.concurrency, workers, UNCAPPED_RPS)
        procs = start_workers(workers, database_url, workdir, **env)
        with stopping(procs):
            await wait_polling(sim, procs)
            await asyncio.sleep(2.0)
            await capacity_rounds(r, sim, sim_pid, procs, ids, args.rounds, args.seconds)
            console.print(f"  lag: completing {args.lag_sample} jobs at the simulator")
            await lag_phase(r, sim, database_url, ids, args.lag_sample, args.lag_wait)
            r.errors += count_errors(procs)
        half = median(r.worker_rates) * 0.5
        console.print(f"  cap: restarting with UPSTREAM_RPS (global) {half:.0f}")
        await cap_phase(r, sim, database_url, workdir, args.cap_seconds)
    return r


def fmt_lag(r: EngineResult, q: float) -> str:
    """The q-th percentile over the whole sample; jobs not seen within the wait are
    censored: a percentile that falls among them is only known to exceed the wait."""
    needed = round(q / 100 * r.lag_sample + 0.5)
    if needed > len(r.lags):
        return f"> {r.lag_wait_s:.0f} s"
    return f"{sorted(r.lags)[needed - 1]:.1f} s"


def summary(results: list[EngineResult]) -> Table:
    table = Table(title="Tracking capacity (polling only, webhooks off)")
    columns = ("engine", "workers", "active jobs", "workers GET/s", "bare aiohttp GET/s",
               "ratio (≥ 0.8)", "bare httpx GET/s", "ratio to httpx", "workers CPU/GET",
               "sim CPU/GET w|b", "lag p50", "lag p99",
               "seen", "cycle N/R", "cap", "GET/s capped", "max_rps", "cap kept",
               "load")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.engine, str(r.workers), f"{r.jobs:,}", f"{median(r.worker_rates):.0f}",
            f"{median(r.bare_rates):.0f}", f"{r.ratio:.2f}", f"{median(r.bare_httpx_rates):.0f}",
            f"{r.ratio_httpx:.2f}", f"{median(r.worker_cpu_us):.0f} µs",
            f"{median(r.sim_cpu_us_worker):.0f}|{median(r.sim_cpu_us_bare):.0f} µs",
            fmt_lag(r, 50), fmt_lag(r, 99), f"{len(r.lags)}/{r.lag_sample}",
            f"{r.cycle_s:.0f} s", f"{r.cap:.0f}/s", f"{r.cap_rate:.0f}", str(r.cap_max_rps),
            "yes" if r.cap_ok else "NO", f"{median(r.load):.1f}",
        )  # fmt: skip
    return table


def markdown(results: list[EngineResult], args: argparse.Namespace, create_s: float) -> str:
    lines = [
        f"## Tracking capacity: {args.jobs:,} active jobs, polling only — "
        f"{datetime.now(UTC):%Y-%m-%d}",
        "",
        "    .venv/bin/python -m bench tracking_capacity " + " ".join(args.argv),
        "",
        f"The simulator (`pikcel-jobs sim pikcel --no-auto-progress --no-webhooks`, own "
        f"process) holds {args.jobs:,} remote jobs (bulk dispatch, {create_s:.0f} s); each "
        f"engine gets one dispatched job per remote job (`insert_jobs`, status processing, "
        f"due). *Workers GET/s* is the simulator's count of `GET /api/jobs/{{id}}` while only "
        f"the `pikcel-jobs worker` processes run (tuned for throughput: "
        f"WORKER_CONCURRENCY 16x their upstream connections, WORKER_BATCH_SIZE 100); "
        f"*bare* are the simulator benchmark's plain GET loops from the benchmark process "
        f"(uvloop) at the same total upstream concurrency ({args.concurrency}) while the "
        f"workers are SIGSTOPped: *aiohttp* is the workers' own HTTP stack with nothing "
        f"around it (the ratio's baseline), *httpx* the first session's baseline; "
        f"{args.rounds} rounds of {args.seconds:g} s, the order "
        f"rotating, ratio = median over rounds. *CPU/GET* is process CPU time per request "
        f"(independent of machine load). *Lag*: {args.lag_sample} random jobs completed at "
        f"the simulator while the workers run; our completion event minus the simulator's "
        f"`completed_at`, waited for {args.lag_wait:g} s (later ones are censored: `> wait`). "
        f"*Cycle N/R* = active jobs / GET rate: with every job overdue the queue is FIFO, so "
        f"polling-only lag is uniform over one cycle. *Cap*: workers restarted with "
        f"UPSTREAM_RPS (the global cap they share) at half their uncapped rate; *max_rps* "
        f"is the simulator's highest count in any 1 s window. Machine: {machine()}.",
        "",
        "| engine | workers | workers GET/s | bare aiohttp GET/s | ratio (≥ 0.8) "
        "| bare httpx GET/s | ratio to httpx | workers CPU/GET "
        "| sim CPU/GET workers / bare | lag p50 | lag p99 | seen in wait | cycle N/R "
        "| cap | GET/s at cap | max_rps | cap kept | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.engine} | {r.workers} | {median(r.worker_rates):.0f} | "
            f"{median(r.bare_rates):.0f} | {r.ratio:.2f} | {median(r.bare_httpx_rates):.0f} | "
            f"{r.ratio_httpx:.2f} | {median(r.worker_cpu_us):.0f} µs | "
            f"{median(r.sim_cpu_us_worker):.0f} / {median(r.sim_cpu_us_bare):.0f} µs | "
            f"{fmt_lag(r, 50)} | {fmt_lag(r, 99)} | {len(r.lags)}/{r.lag_sample} | "
            f"{r.cycle_s:.0f} s | {r.cap:.0f}/s | {r.cap_rate:.0f} | {r.cap_max_rps} | "
            f"{'yes' if r.cap_ok else '**no**'} | {median(r.load):.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tracking_capacity",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--pg-workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16, help="total upstream, all workers")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--lag-sample", type=int, default=100)
    parser.add_argument("--lag-wait", type=float, default=60.0)
    parser.add_argument("--cap-seconds", type=float, default=10.0)
    parser.add_argument("--docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.argv = argv
    workdir = Path(tempfile.mkdtemp(prefix="pikcel-tracking-bench-"))
    results: list[EngineResult] = []
    try:
        sim_url, sim = start_sim(workdir)
        with stopping(sim):
            started = time.monotonic()
            ids = asyncio.run(create_jobs(sim_url, args.jobs))
            create_s = time.monotonic() - started
            console.print(f"simulator: {len(ids):,} remote jobs in {create_s:.0f} s")
            for engine in args.engines.split(","):
                with fresh_database(engine, workdir) as url:
                    upgrade(url)
                    results.append(uvloop.run(
                        run_engine(engine, url, sim_url, sim.pid, ids, args, workdir)))  # fmt: skip
    finally:
        if os.environ.get("PIKCEL_BENCH_KEEP") != "1":  # keep the process logs to debug
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(summary(results))
    console.print(machine())
    for r in results:
        if r.errors:
            console.print(f"[red]{r.engine}: {r.errors} traceback(s) in the worker logs[/red]")
    if args.docs:
        append_docs(markdown(results, args, create_s))
        console.print("appended to docs/benchmarks.md")
    return 0 if all(r.ratio >= TARGET_RATIO and r.cap_ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
