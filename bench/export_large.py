"""Export of 1,000,000 jobs as CSV and XLSX through the real routes: rows/s and peak RSS.

Per engine (a fresh SQLite file, a fresh PostgreSQL database on 127.0.0.1:5432) this
migrates with Alembic and loads one shop's jobs in bulk (SQLite: executemany batches
in one transaction; PostgreSQL: COPY), plus a smaller second shop that must not leak
into the file. Then, for each format, it starts `pikcel-jobs serve` in a subprocess
(a fresh process per format, so each peak is that export's own), downloads
`/api/jobs/export.<fmt>` over loopback HTTP as the shop, counts the rows that arrived,
and reads the server's peak resident memory (VmHWM in /proc/<pid>/status). Target:
peak RSS ≤ 150 MB.

    .venv/bin/python -m bench export_large [--rows 1000000] [--engines sqlite,postgresql]
        [--formats csv,xlsx] [--docs]      (--docs appends the figures to docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from pikcel_jobs.config import load_settings
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.shops.auth import SESSION_COOKIE, sign_session

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_HEADER = "# Benchmarks\n\nFigures from `bench/` (`make bench` lists them); newest last.\n"
TARGET_RSS_MB = 150.0
SHOP = "bench-export.myshopify.com"
OTHER_SHOP = "bench-other.myshopify.com"
PG_ADMIN_URL = os.environ.get(
    "PIKCEL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRETS = {
    "PIKCEL_API_KEY": "bench-pikcel-key",
    "PIKCEL_WEBHOOK_SECRET": "bench-webhook-secret",
    "SHOPIFY_API_KEY": "bench-api-key",
    "SHOPIFY_API_SECRET": "bench-api-secret",
    "SESSION_SECRET": "bench-session-secret",
}

# ---------------------------------------------------------------------------------------
# Throw-away databases.


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'export-bench.db'}"
        return
    name = f"pikcel_bench_export_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------------------
# Rows: realistic text widths (titles, URLs, error messages, metadata), deterministic.

COLUMNS = (
    "id", "shop", "pikcel_job_id", "tool_id", "tool_name", "status", "priority",
    "input_image_url", "output_image_url", "parameters", "error_message", "credits_used",
    "processing_time_ms", "progress", "product_id", "product_title", "metadata",
    "pushed_to_shopify", "created_at", "updated_at", "completed_at", "attempt",
    "idempotency_key", "dispatch_errors", "poll_interval_seconds", "version", "push_status",
)  # fmt: skip
TOOLS = [
    ("background-removal", "Background Removal", 1, 4200),
    ("white-background", "White Background", 1, 3900),
    ("upscale-2x", "Upscale 2x", 2, 9500),
    ("auto-enhance", "Auto Enhance", 1, 2600),
    ("drop-shadow", "Drop Shadow", 1, 3100),
]
STATUSES = ["completed"] * 85 + ["failed"] * 8 + ["cancelled"] * 4 + ["pending"] * 3
ERRORS = [
    "Image too large (max 25 MB)",
    "No subject detected in the image",
    "Input image could not be downloaded (HTTP 404)",
]
WORDS = ["Classic", "Vintage", "Linen", "Leather", "Canvas", "Oak", "Mug", "Tote", "Hoodie",
         "Lamp", "Vase", "Scarf"]  # fmt: skip
SPAN_US = 180 * 86_400_000_000


def _uuid(r: random.Random, ms: int) -> str:
    h = f"{(ms << 80) | r.getrandbits(80):032x}"
    return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{h[16:20]}-{h[20:]}"


def job_rows(shop: str, count: int, seed: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """Oldest first; created_at values repeat now and then (ties are part of the test)."""
    r = random.Random(seed)
    now_us = int(now.timestamp() * 1_000_000)
    step = SPAN_US // max(count, 1)
    for i in range(count):
        created_us = now_us - SPAN_US + i * step + r.randrange(max(step // 2, 1))
        created = datetime.fromtimestamp(created_us / 1_000_000, UTC)
        tool_id, tool_name, credits, typical_ms = TOOLS[r.randrange(len(TOOLS))]
        status = STATUSES[r.randrange(len(STATUSES))]
        done = status == "completed"
        ms = int(typical_ms * (0.5 + r.random())) if done else None
        finished = (
            created + timedelta(milliseconds=(ms or 9000) + 800) if status != "pending" else None
        )
        p = r.randrange(5000)
        pikcel_id = f"pk_{r.getrandbits(96):024x}" if status != "pending" else None
        yield (
            _uuid(r, created_us // 1000),
            shop,
            pikcel_id,
            tool_id,
            tool_name,
            status,
            "normal" if r.random() < 0.9 else "high",
            f"https://cdn.shopify.com/s/files/1/0001/files/{8_000_000 + p}.jpg",
            f"https://api.pikcel.ai/v1/outputs/{pikcel_id}.png" if done else None,
            '{"format": "png"}',
            ERRORS[p % len(ERRORS)] if status == "failed" else None,
            credits if done else 0,
            ms,
            100 if done else 0,
            f"gid://shopify/Product/{8_000_000_000 + p}",
            f"{WORDS[p % 12]} {WORDS[p // 12 % 12]} {WORDS[p // 144 % 12]} #{p}",
            json.dumps({"campaign": ("spring", "summer", "fall")[p % 3], "source": "bulk"}),
            False,
            created,
            finished or created,
            finished,
            1,
            _uuid(r, created_us // 1000),
            0,
            0.0,
            3,
            "none",
        )


def _sqlite_ts(value: datetime | None) -> str | None:
    """As SQLAlchemy stores a UTC timestamp on SQLite (microseconds always present)."""
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def load_sqlite(url: str, batches: list[tuple[str, int, int]], now: datetime) -> None:
    path = make_url(url).database
    assert path
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        sql = f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        ts = {COLUMNS.index(c) for c in ("created_at", "updated_at", "completed_at")}
        for shop, count, seed in batches:
            chunk: list[tuple[Any, ...]] = []
            for row in job_rows(shop, count, seed, now):
                chunk.append(
                    tuple(_sqlite_ts(v) if i in ts else v for i, v in enumerate(row))  # type: ignore[arg-type]
                )
                if len(chunk) == 20_000:
                    conn.executemany(sql, chunk)
                    chunk.clear()
            conn.executemany(sql, chunk)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")  # as the app runs it
    finally:
        conn.close()


def load_postgres(url: str, batches: list[tuple[str, int, int]], now: datetime) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        conn.execute("SET synchronous_commit = off")
        with conn.cursor() as cur, cur.copy(f"COPY jobs ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for shop, count, seed in batches:
                for row in job_rows(shop, count, seed, now):
                    copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) jobs")


# ---------------------------------------------------------------------------------------
# The server under test, in its own process.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@contextmanager
def server(database_url: str, workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {**os.environ, **SECRETS, "DATABASE_URL": database_url, "LOG_LEVEL": "warning",
           "STORAGE_DIR": str(workdir / "storage")}  # fmt: skip
    log = open(workdir / f"server-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "pikcel-jobs"), "serve", "--port", str(port)],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {log.name}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start in 180 s")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class RssSampler(threading.Thread):
    """VmRSS of the server every 50 ms (the kernel's VmHWM is the authoritative peak)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[int] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            try:
                self.samples.append(proc_kb(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return


@dataclass
class Result:
    engine: str
    fmt: str
    rows: int
    seconds: float
    first_byte_s: float
    size_mb: float
    baseline_mb: float
    peak_mb: float
    server_cpu_s: float
    load: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def rows_per_cpu_s(self) -> float:
        return self.rows / self.server_cpu_s if self.server_cpu_s else 0.0

    @property
    def meets(self) -> bool:
        return self.peak_mb <= TARGET_RSS_MB


def count_xlsx_rows(path: Path) -> int:
    """Data rows over every sheet (header rows excluded), reading the XML as a stream."""
    rows = 0
    with zipfile.ZipFile(path) as book:
        sheets = [n for n in book.namelist() if n.startswith("xl/worksheets/sheet")]
        for name in sheets:
            carry = b""
            with book.open(name) as xml:
                while chunk := xml.read(1 << 20):
                    data = carry + chunk
                    rows += data.count(b"<row ")
                    carry = data[-5:]
                    rows -= carry.count(b"<row ")  # counted again with the next chunk
                rows += carry.count(b"<row ")
            rows -= 1  # header
    return rows


def export_once(engine: str, fmt: str, database_url: str, workdir: Path) -> Result:
    settings = load_settings(
        _env_file=None, database_url=database_url,
        **{k.lower(): v for k, v in SECRETS.items()},
    )  # fmt: skip
    cookie = sign_session(settings, SHOP)
    with (
        server(database_url, workdir) as (url, proc),
        httpx.Client(base_url=url, cookies={SESSION_COOKIE: cookie}, timeout=600) as client,
    ):
        # Warm up the code paths (imports, templates, pools) before the baseline.
        client.get("/api/jobs", params={"limit": 1}).raise_for_status()
        client.get(f"/api/jobs/export.{fmt}", params={"q": "no-such-job"}).raise_for_status()
        baseline = proc_kb(proc.pid, "VmRSS") / 1024
        sampler = RssSampler(proc.pid)
        sampler.start()
        target = workdir / f"export.{fmt}"
        size = rows = 0
        tail = b""
        load = os.getloadavg()[0]
        cpu_before = cpu_seconds(proc.pid)
        started = time.perf_counter()
        first_byte = 0.0
        with (
            client.stream("GET", f"/api/jobs/export.{fmt}") as response,
            open(target, "wb") as out,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                if not first_byte:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                if fmt == "csv":  # a CRLF may straddle two chunks
                    rows += (tail + chunk).count(b"\r\n") - tail.count(b"\r\n")
                    tail = chunk[-1:]
                out.write(chunk)
        elapsed = time.perf_counter() - started
        server_cpu = cpu_seconds(proc.pid) - cpu_before
        sampler.stopped.set()
        sampler.join()
        peak = proc_kb(proc.pid, "VmHWM") / 1024
    rows = rows - 1 if fmt == "csv" else count_xlsx_rows(target)
    target.unlink()
    return Result(
        engine, fmt, rows, elapsed, first_byte, size / 1e6, baseline, peak, server_cpu, load
    )


# ---------------------------------------------------------------------------------------


def append_docs(results: list[Result], rows: int, load_s: dict[str, float]) -> None:
    DOCS.parent.mkdir(exist_ok=True)
    if not DOCS.exists():
        DOCS.write_text(DOCS_HEADER)
    cpu = platform.processor() or platform.machine()
    lines = [
        "",
        f"## Export of {rows:,} jobs (CSV and XLSX) — {datetime.now(UTC):%Y-%m-%d}",
        "",
        "`python -m bench export_large` · one shop's jobs exported through "
        "`GET /api/jobs/export.{csv,xlsx}` by `pikcel-jobs serve` in its own process, "
        "downloaded over loopback HTTP; peak RSS is the server's VmHWM (a fresh process "
        "per export). Keyset batches of 2,000 rows, each in its own read transaction; "
        "XLSX rows streamed into a deflated zip entry of a temporary file (package parts "
        "from xlsxwriter), then the file is streamed, so its first byte comes when it is "
        "built. *Server CPU* is the serving process's user + system time for the export, "
        "a figure that does not depend on what else the machine runs; *load* is the "
        "1-minute load average when the export started. "
        f"Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}. "
        f"Target: peak RSS ≤ {TARGET_RSS_MB:.0f} MB.",
        "",
        "| engine | format | rows | time | rows/s | server CPU | rows per CPU-s | first byte "
        "| file | RSS before | peak RSS | ≤ 150 MB | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.engine} | {r.fmt.upper()} | {r.rows:,} | {r.seconds:.1f} s | "
            f"{r.rows_per_s:,.0f} | {r.server_cpu_s:.1f} s | {r.rows_per_cpu_s:,.0f} | "
            f"{r.first_byte_s:.2f} s | {r.size_mb:,.0f} MB | {r.baseline_mb:.0f} MB | "
            f"{r.peak_mb:.0f} MB | {'yes' if r.meets else '**no**'} | {r.load:.1f} |"
        )
    loads = ", ".join(f"{engine} {seconds:.0f} s" for engine, seconds in load_s.items())
    lines += ["", f"Loading the rows (not part of the figures): {loads}.", ""]
    with DOCS.open("a") as docs:
        docs.write("\n".join(lines))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench export_large", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--docs", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args(argv)
    now = datetime.now(UTC).replace(microsecond=0)
    results: list[Result] = []
    load_s: dict[str, float] = {}
    for engine in args.engines.split(","):
        workdir = Path(tempfile.mkdtemp(prefix="pikcel-export-bench-"))
        try:
            with fresh_database(engine, workdir) as url:
                upgrade(url)
                started = time.perf_counter()
                batches = [(SHOP, args.rows, 1), (OTHER_SHOP, max(1, args.rows // 20), 2)]
                (load_sqlite if engine == "sqlite" else load_postgres)(url, batches, now)
                load_s[engine] = time.perf_counter() - started
                print(f"{engine}: loaded {args.rows:,} + {args.rows // 20:,} jobs in "
                      f"{load_s[engine]:.0f} s", flush=True)  # fmt: skip
                for fmt in args.formats.split(","):
                    result = export_once(engine, fmt, url, workdir)
                    results.append(result)
                    ok = "ok" if result.rows == args.rows else f"EXPECTED {args.rows:,}"
                    print(
                        f"{engine} {fmt}: {result.rows:,} rows ({ok}) in {result.seconds:.1f} s = "
                        f"{result.rows_per_s:,.0f} rows/s; server CPU {result.server_cpu_s:.1f} s "
                        f"({result.rows_per_cpu_s:,.0f} rows/CPU-s); load {result.load:.1f}; "
                        f"first byte {result.first_byte_s:.2f} s; "
                        f"{result.size_mb:,.0f} MB; RSS {result.baseline_mb:.0f} MB before, "
                        f"peak {result.peak_mb:.0f} MB "
                        f"({'meets' if result.meets else 'MISSES'} ≤ {TARGET_RSS_MB:.0f} MB)",
                        flush=True,
                    )
                    if result.rows != args.rows:
                        return 1
        finally:
            if os.environ.get("PIKCEL_BENCH_KEEP") != "1":  # keep the server logs to debug
                shutil.rmtree(workdir, ignore_errors=True)
    if args.docs:
        append_docs(results, args.rows, load_s)
        print(f"appended to {DOCS.relative_to(ROOT)}")
    return 0 if all(r.meets for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
