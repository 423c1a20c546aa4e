"""Worker memory: RSS of one `pikcel-jobs worker` after polling 1,000 vs 100,000 active jobs.

The PikcelAI simulator runs in its own process with the larger number of remote jobs
(bulk dispatch; they stay put). For each size, a fresh database gets that many
dispatched jobs (`insert_jobs`, status processing, all due), one worker process polls
them for --seconds (rate cap far above what is reached, so it works flat out in both
runs), and its VmRSS is sampled from /proc/<pid>/status; the figures are the RSS at the
end and the kernel's peak (VmHWM). Target: the large run within 20% of the small one.

    .venv/bin/python -m bench worker_memory [--small 1000] [--large 100000] [--seconds 45]
        [--engine sqlite] [--docs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import (
    append_docs,
    create_jobs,
    fresh_database,
    machine,
    proc_kb,
    seed_active_jobs,
    start_sim,
    start_workers,
    stopping,
)
from bench.tracking_capacity import (
    GET_ONE,
    UNCAPPED_RPS,
    count_errors,
    counters,
    wait_polling,
    worker_settings,
)
from pikcel_jobs.db.migrate import upgrade

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
TARGET_GROWTH = 1.2


@dataclass
class Run:
    jobs: int
    seconds: float = 0.0
    gets: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    hwm_mb: float = 0.0
    samples: list[float] = field(default_factory=list)
    errors: int = 0
    load: float = 0.0


async def measure(database_url: str, sim_url: str, jobs: int, seconds: float, workdir: Path) -> Run:
    run = Run(jobs)
    env = worker_settings(sim_url, 16, 1, UNCAPPED_RPS)
    (proc,) = start_workers(1, database_url, workdir, **env)
    with stopping([proc]):
        async with httpx.AsyncClient(base_url=sim_url, timeout=30) as sim:
            await wait_polling(sim, [proc])
            run.rss_start_mb = proc_kb(proc.pid, "VmRSS") / 1024
            before = (await counters(sim))["requests"].get(GET_ONE, 0)
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < seconds:
                run.samples.append(proc_kb(proc.pid, "VmRSS") / 1024)
                await asyncio.sleep(0.5)
            run.seconds = elapsed
            run.gets = (await counters(sim))["requests"].get(GET_ONE, 0) - before
        run.rss_end_mb = proc_kb(proc.pid, "VmRSS") / 1024
        run.hwm_mb = proc_kb(proc.pid, "VmHWM") / 1024
        run.load = os.getloadavg()[0]
    run.errors = count_errors([proc])
    return run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench worker_memory", description=__doc__)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--engine", default="sqlite")
    parser.add_argument("--docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pikcel-worker-memory-"))
    runs: list[Run] = []
    try:
        sim_url, sim = start_sim(workdir)
        with stopping(sim):
            ids = asyncio.run(create_jobs(sim_url, args.large))
            for size in (args.small, args.large):
                where = workdir / f"db-{size}"
                where.mkdir()
                with fresh_database(args.engine, where) as url:
                    upgrade(url)
                    started = time.monotonic()
                    asyncio.run(seed_active_jobs(url, ids[:size]))
                    seeded = time.monotonic() - started
                    console.print(f"{size:,} active jobs seeded in {seeded:.0f} s")
                    runs.append(asyncio.run(measure(url, sim_url, size, args.seconds, where)))
                    r = runs[-1]
                    console.print(f"  {r.gets:,} GETs in {r.seconds:.0f} s; RSS "
                                  f"{r.rss_start_mb:.0f} → "
                                  f"{r.rss_end_mb:.0f} MB, peak {r.hwm_mb:.0f} MB")  # fmt: skip
    finally:
        if os.environ.get("PIKCEL_BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
    small, large = runs
    growth_end = large.rss_end_mb / small.rss_end_mb
    growth_peak = large.hwm_mb / small.hwm_mb
    ok = max(growth_end, growth_peak) <= TARGET_GROWTH
    table = Table(title=f"Worker memory ({args.engine}, one worker, {args.seconds:g} s of polling)")
    for col in ("active jobs", "GETs", "RSS at start", "RSS at end", "peak (VmHWM)", "load"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(f"{r.jobs:,}", f"{r.gets:,}", f"{r.rss_start_mb:.0f} MB",
                      f"{r.rss_end_mb:.0f} MB", f"{r.hwm_mb:.0f} MB", f"{r.load:.1f}")  # fmt: skip
    console.print(table)
    console.print(f"large / small: RSS at end ×{growth_end:.2f}, peak ×{growth_peak:.2f} "
                  f"(target ≤ ×{TARGET_GROWTH}) -> {'OK' if ok else 'ABOVE TARGET'}")  # fmt: skip
    console.print(machine())
    if any(r.errors for r in runs):
        console.print(f"[red]tracebacks in the worker logs: {[r.errors for r in runs]}[/red]")
    if args.docs:
        lines = [
            f"## Worker memory: {args.small:,} vs {args.large:,} active jobs — "
            f"{datetime.now(UTC):%Y-%m-%d}",
            "",
            "    .venv/bin/python -m bench worker_memory " + " ".join(argv),
            "",
            f"One `pikcel-jobs worker` ({args.engine}) polls the simulator (own process, "
            f"`--no-auto-progress --no-webhooks`) flat out for {args.seconds:g} s over a fresh "
            f"database of dispatched, due jobs (`insert_jobs`); RSS from /proc/<pid>/status "
            f"(VmRSS at the first poll and at the end, VmHWM = peak). Target: the large run "
            f"within 20% of the small one. Machine: {machine()}.",
            "",
            "| active jobs | GETs | RSS at start | RSS at end | peak (VmHWM) | load |",
            "|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r.jobs:,} | {r.gets:,} | {r.rss_start_mb:.0f} MB | {r.rss_end_mb:.0f} MB | "
                f"{r.hwm_mb:.0f} MB | {r.load:.1f} |"
                for r in runs
            ),
            "",
            f"Large / small: ×{growth_end:.2f} at the end, ×{growth_peak:.2f} at the peak "
            f"({'within' if ok else '**above**'} the 20% target).",
            "",
        ]
        append_docs("\n".join(lines))
        console.print("appended to docs/benchmarks.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
