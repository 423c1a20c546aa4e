"""Helpers shared by the tracking, webhook, worker-memory and SSE benchmarks: processes
(`pikcel-jobs serve|worker|sim pikcel`), seeding active jobs in bulk, machine facts and
the docs file. Throw-away databases, ports and /proc readings come from the existing
benchmarks (`export_large`, `pikcel_sim_throughput`)."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.export_large import DOCS, DOCS_HEADER, SECRETS, cpu_seconds, fresh_database, proc_kb
from bench.pikcel_sim_throughput import API_KEY, create_jobs, free_port

__all__ = [
    "API_KEY", "DOCS", "SECRETS", "Proc", "append_docs", "cpu_seconds", "create_jobs",
    "free_port", "fresh_database", "machine", "pct", "proc_kb", "process_env", "seed_active_jobs",
    "start_sim", "wait_http",
]  # fmt: skip

BIN = Path(sys.executable).parent / "pikcel-jobs"
ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, load average {load}"
    )


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def append_docs(text: str) -> None:
    DOCS.parent.mkdir(exist_ok=True)
    if not DOCS.exists():
        DOCS.write_text(DOCS_HEADER)
    with DOCS.open("a") as docs:
        docs.write("\n" + text.rstrip() + "\n")


# ---------------------------------------------------------------------------------------
# Processes.


# Child processes keep their bytecode (outside the work tree): with PYTHONDONTWRITEBYTECODE
# set, as on the development machines, each start would compile every module again
# (about 4 s of CPU here), which is not what a deployed process does.
PYCACHE = Path(tempfile.gettempdir()) / "pikcel-bench-pycache"


def base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIKCEL_", "SHOPIFY_", "DATABASE_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def process_env(database_url: str, workdir: Path, **extra: object) -> dict[str, str]:
    """What a `pikcel-jobs` process needs to join the system (as
    tests/support/processes.py builds it), with the benchmark's secrets."""
    env = base_env()
    env.update(SECRETS)
    env.update({
        "DATABASE_URL": database_url, "STORAGE_DIR": str(workdir / "storage"),
        "ALLOW_PRIVATE_URLS": "true", "LOG_LEVEL": "WARNING", "ENV": "test",
    })  # fmt: skip
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Proc:
    """One child process with its log file; `stop()` sends SIGTERM, then SIGKILL."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.log = log
        self._handle = log.open("ab")
        self.popen = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._handle, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._handle.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http(url: str, proc: Proc, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.log.name}: the process exited:\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {within:.0f} s")


def start_sim(workdir: Path, *extra: str) -> tuple[str, Proc]:
    """`pikcel-jobs sim pikcel` in its own process: jobs move only when told, no webhooks
    unless `extra` says otherwise; one API key (`API_KEY`) with plenty of credits."""
    port = free_port()
    args = [
        str(BIN), "sim", "pikcel", "--port", str(port), "--seed", "1", "--api-key", API_KEY,
        "--credits", "1000000000", "--no-auto-progress", "--no-webhooks",
        "--log-level", "warning", *extra,
    ]  # fmt: skip
    proc = Proc(args, {**base_env(), "PIKCEL_API_KEY": API_KEY}, workdir / f"sim-{port}.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_sim/counters", proc)
    return url, proc


def start_serve(database_url: str, workdir: Path, *, profile: Path | None = None,
                **extra: object) -> tuple[str, Proc]:  # fmt: skip
    """`pikcel-jobs serve` (optionally under cProfile, written when it stops)."""
    port = free_port()
    command = [str(BIN), "serve", "--port", str(port)]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    proc = Proc(command, process_env(database_url, workdir, **extra), workdir / f"serve-{port}.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    return url, proc


def start_workers(count: int, database_url: str, workdir: Path, **extra: object) -> list[Proc]:
    env = process_env(database_url, workdir, **extra)
    return [
        Proc([str(BIN), "worker"], env, workdir / f"worker-{n}-{time.monotonic_ns()}.log")
        for n in range(count)
    ]


@contextmanager
def stopping(*procs: Proc | list[Proc]) -> Iterator[None]:
    try:
        yield
    finally:
        for item in procs:
            for proc in item if isinstance(item, list) else [item]:
                proc.stop()


# ---------------------------------------------------------------------------------------
# Data.


async def seed_active_jobs(
    database_url: str,
    remote_ids: Sequence[str],
    *,
    shops: int = 20,
    status: str = "processing",
    progress: int = 10,
    poll_interval: float = 60.0,
    due_spread_seconds: float = 60.0,
    chunk: int = 5000,
) -> list[str]:
    """One of our jobs per remote id, already dispatched (status `status`, the remote id
    stored on the job and its first attempt), due for a poll at times spread over the
    last `due_spread_seconds`, through `insert_jobs` (rollups kept in step)."""
    from pikcel_jobs.db.engine import create_engine, create_sessionmaker, unit_of_work
    from pikcel_jobs.jobs.bulk_insert import insert_jobs
    from pikcel_jobs.shops.models import Shop

    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    now = datetime.now(UTC)
    step = due_spread_seconds / max(len(remote_ids), 1)
    ids: list[str] = []
    try:
        async with unit_of_work(sessions) as session:  # the shops are installed
            session.add_all(Shop(domain=f"bench-{n:03d}.myshopify.com") for n in range(shops))
        for start in range(0, len(remote_ids), chunk):
            rows: list[dict[str, Any]] = []
            for n, remote in enumerate(remote_ids[start : start + chunk], start=start):
                created = now - timedelta(minutes=10, seconds=n % 600)
                rows.append({
                    "shop": f"bench-{n % shops:03d}.myshopify.com", "tool_id": "convert-webp",
                    "tool_name": "Convert to WebP", "status": status, "progress": progress,
                    "input_image_url": f"http://127.0.0.1:9/p/{n}.png",
                    "parameters": {"quality": 82}, "created_at": created,
                    "started_at": created + timedelta(seconds=1), "pikcel_job_id": remote,
                    "next_attempt_at": now - timedelta(seconds=due_spread_seconds - n * step),
                    "poll_interval_seconds": poll_interval,
                    "deadline_at": now + timedelta(days=1),
                })  # fmt: skip
            async with unit_of_work(sessions) as session:
                ids.extend(await insert_jobs(session, rows))
    finally:
        await engine.dispose()
    return ids


def sync_dsn(database_url: str) -> str:
    """A DSN for a plain driver connection (sqlite3 path or psycopg URL)."""
    if database_url.startswith("sqlite"):
        return database_url.split("///", 1)[1]
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def query(database_url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one read (`?` placeholders) with a plain driver connection."""
    if database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(sync_dsn(database_url), timeout=30)
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(sync_dsn(database_url)) as pg:
        # no parameters: no placeholder parsing either (LIKE 'msg_%')
        return pg.execute(sql.replace("?", "%s"), tuple(params) or None).fetchall()  # type: ignore[arg-type]


async def gather_limited(coros: Sequence[Any], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))
