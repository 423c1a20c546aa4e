"""List and stats at 1,000,000 jobs: keyset paging and rollup stats vs OFFSET and COUNTs.

Per engine (a fresh SQLite file, a fresh PostgreSQL database on 127.0.0.1:5432) this
migrates with Alembic, generates jobs in bulk across shops skewed like real usage (one
shop holds half of them, the rest a long tail), fills `job_rollups` with one set-based
INSERT ... SELECT, ANALYZEs, then times for the largest shop the list (first page, a
deep page via cursor, filters) and the stats through the real service code, beside the
original app's approach (OFFSET paging, one COUNT per status) on the same data.

    .venv/bin/python bench/list_and_stats.py [--jobs 1000000] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.export_large import fresh_database as throwaway_database
from pikcel_jobs.db.engine import create_engine, create_sessionmaker, unit_of_work
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.jobs import service
from pikcel_jobs.jobs.models import Job
from pikcel_jobs.jobs.schemas import Cursor, JobFilter
from pikcel_jobs.jobs.states import JobStatus

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)

TARGET_P95_MS = 30.0
TARGET_DEEP_RATIO = 10.0
PAGE_SIZE = 25
DAY_US = 86_400_000_000

# ---------------------------------------------------------------------------------------
# Throw-away databases: the export benchmark's, in a temporary directory.


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory(prefix="pikcel-bench-") as directory,
        throwaway_database(kind, Path(directory)) as url,
    ):
        yield url


# ---------------------------------------------------------------------------------------
# The data: who, when, what. Deterministic for a seed, so both engines hold the same rows.

# id, name, credits, typical processing ms, share of jobs
TOOLS = [
    ("background-removal", "Background Removal", 1, 4200, 0.36),
    ("white-background", "White Background", 1, 3900, 0.18),
    ("upscale-2x", "Upscale 2x", 2, 9500, 0.14),
    ("auto-enhance", "Auto Enhance", 1, 2600, 0.14),
    ("drop-shadow", "Drop Shadow", 1, 3100, 0.10),
    ("convert-webp", "Convert to WebP", 1, 700, 0.08),
]
TOOL_CUM = [sum(t[4] for t in TOOLS[: i + 1]) for i in range(len(TOOLS))]
PARAMETERS = {
    "background-removal": ['{"format": "png"}', '{"format": "png", "crop": true}'],
    "white-background": ['{"color": "#ffffff", "padding": 0.05}', '{"color": "#ffffff"}'],
    "upscale-2x": ['{"scale": 2}', '{"scale": 2, "denoise": true}'],
    "auto-enhance": ['{"strength": 0.6}', '{"strength": 0.8, "sharpen": true}'],
    "drop-shadow": ['{"opacity": 0.35, "blur": 12}', '{"opacity": 0.5, "blur": 20}'],
    "convert-webp": ['{"quality": 82}', '{"quality": 90}'],
}
# (status, cumulative share): older jobs have settled; the last two days are still moving.
STATUS_OLD = [
    ("completed", 0.885),
    ("failed", 0.960),
    ("cancelled", 0.990),
    ("pending", 0.996),
    ("processing", 1.0),
]
STATUS_RECENT = [
    ("completed", 0.62),
    ("failed", 0.68),
    ("cancelled", 0.70),
    ("pending", 0.87),
    ("processing", 1.0),
]
CAMPAIGNS = [
    ("black-friday", 0.22),
    ("spring-sale", 0.15),
    ("summer-2026", 0.15),
    ("new-arrivals", 0.14),
    ("holiday-gifts", 0.12),
    ("back-to-school", 0.09),
    ("clearance", 0.08),
    ("influencer-drop", 0.05),
]
ERRORS = [
    "Image too large (max 25 MB)",
    "Unsupported image format",
    "No subject detected in the image",
    "Upstream timeout after 120 s",
    "Input image could not be downloaded (HTTP 404)",
]
ADJ = "Classic Vintage Modern Organic Premium Everyday Slim Oversized Cozy Rustic Minimal Bold"
MAT = "Cotton Linen Leather Wool Denim Silk Ceramic Bamboo Canvas Oak"
NOUN = (
    "T-Shirt Hoodie Tote Mug Sneakers Backpack Jacket Scarf Wallet Lamp Vase Cap Dress Candle Apron"
)
ADJ, MAT, NOUN = ADJ.split(), MAT.split(), NOUN.split()
PRIORITIES = [("normal", 0.90), ("high", 0.96), ("low", 0.99), ("urgent", 1.0)]
OLD_CUM, RECENT_CUM, PRIORITY_CUM = (
    [c for _, c in mix] for mix in (STATUS_OLD, STATUS_RECENT, PRIORITIES)
)

JOB_COLUMNS = (
    "id", "shop", "pikcel_job_id", "tool_id", "tool_name", "status", "priority",
    "input_image_url", "output_image_url", "thumbnail_url", "parameters", "error_message",
    "credits_used", "processing_time_ms", "progress", "product_id", "product_title",
    "variant_id", "image_id", "metadata", "template_id", "pushed_to_shopify", "pushed_at",
    "started_at", "completed_at", "created_at", "updated_at", "attempt", "idempotency_key",
    "scheduled_for", "next_attempt_at", "lease_owner", "lease_expires_at", "dispatch_errors",
    "poll_interval_seconds", "deadline_at", "version", "output_key", "thumbnail_key",
    "remote_output_url", "batch_id", "push_status", "push_mode", "push_error",
    "shopify_media_id", "push_next_at",
)  # fmt: skip
EPOCH = datetime(1970, 1, 1)
HEADER = "# Benchmarks\n\nFigures from `bench/` (`make bench` lists them); newest last.\n"


def _metadata_choices() -> tuple[list[str], list[float]]:
    """JSON texts of `metadata` and their cumulative shares (45% carry a campaign)."""
    texts, cum, acc = [], [], 0.0
    for source, share in (("manual", 0.25), ("bulk", 0.20), (None, 0.10)):
        texts.append(json.dumps({"source": source} if source else {}))
        acc += share
        cum.append(acc)
    for campaign, share in CAMPAIGNS:
        for source, half in (("bulk", 0.7), ("manual", 0.3)):
            texts.append(json.dumps({"campaign": campaign, "source": source}))
            acc += 0.45 * share * half
            cum.append(acc)
    cum[-1] = 1.0
    return texts, cum


META_TEXTS, META_CUM = _metadata_choices()


def _pick(cum: list[float], x: float) -> int:
    return bisect.bisect_right(cum, x)


_MINUTES: dict[int, str] = {}


def _ts(us: int) -> str:
    """UTC timestamp as SQLAlchemy stores it on SQLite; PostgreSQL reads it in UTC."""
    minute, rest = divmod(us, 60_000_000)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        prefix = _MINUTES[minute] = f"{EPOCH + timedelta(minutes=minute):%Y-%m-%d %H:%M}:"
    second, micro = divmod(rest, 1_000_000)
    return f"{prefix}{second:02d}.{micro:06d}"


def _uuid7(ms: int, bits: int) -> str:
    raw = (ms << 80) | bits
    raw = (raw & ~(0xF << 76)) | (0x7 << 76)  # version 7
    raw = (raw & ~(0x3 << 62)) | (0x2 << 62)  # RFC variant
    h = f"{raw:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Plan:
    """Who has how many jobs and when each was created; rows are derived from it."""

    jobs: int
    seed: int
    now_us: int
    shops: list[str]
    counts: list[int]
    products: list[int]
    events: list[tuple[int, int]]  # (created_at µs, shop index), oldest first

    @property
    def largest(self) -> str:
        return self.shops[max(range(len(self.shops)), key=self.counts.__getitem__)]


def make_plan(jobs: int, shops: int, seed: int, days: int = 180) -> Plan:
    """One shop holds half of the jobs; the others follow a Zipf tail (s = 1.1). Volume
    grows over the window (three times as many jobs per day now as `days` ago)."""
    rng = random.Random(seed)
    rest = jobs - jobs // 2
    weights = [1 / (k**1.1) for k in range(1, shops)]
    counts = [jobs // 2] + [max(1, int(rest * w / sum(weights))) for w in weights]
    counts[1] += jobs - sum(counts)
    names = [f"shop-{i:03d}.myshopify.com" for i in range(shops)]
    names[0] = "mega-outfitters.myshopify.com"
    now_us = int(datetime.now(UTC).replace(second=0, microsecond=0).timestamp()) * 1_000_000
    span = days * DAY_US
    events: list[tuple[int, int]] = []
    for shop, n in enumerate(counts):
        for _ in range(n):
            u = rng.random()
            age = 1.0 - (math.sqrt(0.25 + 2 * u) - 0.5)  # density rises linearly towards now
            events.append((now_us - int(age * span) - rng.randrange(1_000_000), shop))
    events.sort()
    products = [max(30, n // 20) for n in counts]
    return Plan(jobs, seed, now_us, names, counts, products, events)


def job_rows(plan: Plan) -> Iterator[tuple[Any, ...]]:
    """Rows in JOB_COLUMNS order, oldest first, as the table grows in real life."""
    rng = random.Random(plan.seed + 1)
    r, bits = rng.random, rng.getrandbits
    for created, s in plan.events:
        ms = created // 1000
        job_id = _uuid7(ms, bits(80))
        tool_id, tool_name, tool_credits, tool_ms, _ = TOOLS[_pick(TOOL_CUM, r())]
        recent = plan.now_us - created < 2 * DAY_US
        mix, cum = (STATUS_RECENT, RECENT_CUM) if recent else (STATUS_OLD, OLD_CUM)
        status = mix[_pick(cum, r())][0]
        p = int(plan.products[s] * r() ** 1.6)  # a few products get most of the work
        product_num = 8_000_000_000 + s * 1_000_000 + p
        has_product = r() < 0.85
        dispatched = status != "pending" or r() < 0.5
        pikcel_id = f"pk_{bits(96):024x}" if dispatched else None
        started = created + 200_000 + int(r() * 4_000_000) if status != "pending" else None
        ms_taken = None
        if status == "completed" or (status == "failed" and r() < 0.4):
            ms_taken = int(rng.lognormvariate(math.log(tool_ms), 0.45))
        finished = None
        if status in ("completed", "failed", "cancelled"):
            finished = (started or created) + (ms_taken or int(r() * 30_000)) * 1000
        completed = status == "completed"
        push = ("none", None, None, None, 0, None)
        if completed and has_product:
            x = r()
            if x < 0.55:
                mode = "add" if x < 0.40 else "replace"
                media = f"gid://shopify/MediaImage/{bits(40)}"
                push = ("pushed", mode, None, media, 1, finished + 90_000_000)
            elif x < 0.60:
                push = ("awaiting_review", None, None, None, 0, None)
            elif x < 0.62:
                push = ("failed", "add", "Shopify media upload failed: too large", None, 0, None)
        push_status, push_mode, push_error, media_id, pushed, pushed_at = push
        updated = pushed_at or finished or started or created
        image = f"{product_num * 7 + 3}" if has_product else None
        yield (
            job_id,
            plan.shops[s],
            pikcel_id,
            tool_id,
            tool_name,
            status,
            PRIORITIES[_pick(PRIORITY_CUM, r())][0],
            f"https://cdn.shopify.com/s/files/1/{s:04d}/files/{image}.jpg"
            if has_product
            else f"https://images.merchant-cdn.com/uploads/{job_id[:13]}.jpg",
            f"https://api.pikcel.ai/v1/outputs/{pikcel_id}.png" if completed else None,
            f"/media/thumbs/{job_id}.webp" if completed else None,
            PARAMETERS[tool_id][0 if r() < 0.7 else 1],
            ERRORS[int(r() * len(ERRORS))] if status == "failed" else None,
            tool_credits if completed else 0,
            ms_taken,
            100 if completed else (int(5 + r() * 90) if status == "processing" else 0),
            f"gid://shopify/Product/{product_num}" if has_product else None,
            f"{ADJ[p % 12]} {MAT[p // 12 % 10]} {NOUN[p // 120 % 15]}" if has_product else None,
            f"gid://shopify/ProductVariant/{product_num * 3 + 1}"
            if has_product and r() < 0.7
            else None,
            f"gid://shopify/MediaImage/{image}" if has_product else None,
            META_TEXTS[_pick(META_CUM, r())],
            f"tpl-{s:03d}-{int(r() * 6)}" if r() < 0.15 else None,
            pushed,
            _ts(pushed_at) if pushed_at else None,
            _ts(started) if started else None,
            _ts(finished) if finished else None,
            _ts(created),
            _ts(updated),
            2 if r() < 0.04 else 1,
            _uuid7(ms, bits(80)),
            None,
            _ts(created + 2_000_000) if status in ("pending", "processing") else None,
            None,
            None,
            0,
            4.0 if status == "processing" else 0.0,
            None,
            {"pending": 0, "processing": 2}.get(status, 3) + (2 if pushed else 0),
            f"outputs/{job_id}.png" if completed else None,
            f"thumbs/{job_id}.webp" if completed else None,
            f"https://api.pikcel.ai/v1/outputs/{pikcel_id}.png" if completed else None,
            None,
            push_status,
            push_mode,
            push_error,
            media_id,
            None,
        )


ROLLUP_SQL = """
INSERT INTO job_rollups (shop, day, tool_id, status, jobs, credits, time_ms_sum, time_ms_count)
SELECT shop, {day}, tool_id, status, count(*), sum(credits_used),
       sum(coalesce(processing_time_ms, 0)), count(processing_time_ms)
FROM jobs
GROUP BY shop, {day}, tool_id, status
"""


@dataclass
class LoadTimes:
    jobs_s: float = 0.0
    rollups_s: float = 0.0
    analyze_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.jobs_s + self.rollups_s + self.analyze_s


# The migration's secondary indexes on jobs are dropped for the load and rebuilt from their
# own definitions afterwards (one sorted build each instead of a million inserts each);
# primary key and unique constraints stay in place throughout.
SQLITE_INDEXES = """
SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL
"""
PG_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()
AND tablename = 'jobs' AND indexname NOT IN (
    SELECT conname FROM pg_constraint WHERE conrelid = 'jobs'::regclass)
"""  # fmt: skip


def load_sqlite(url: str, rows: list[tuple[Any, ...]]) -> LoadTimes:
    """executemany in 20,000-row batches, one transaction; journal off while loading."""
    times = LoadTimes()
    path = make_url(url).database
    assert path
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")  # 1 GB while loading
        started = time.perf_counter()
        conn.execute("BEGIN")
        indexes = conn.execute(SQLITE_INDEXES).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        insert = (
            f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
        )
        for i in range(0, len(rows), 20_000):
            conn.executemany(insert, rows[i : i + 20_000])
        for _, sql in indexes:
            conn.execute(sql)
        times.jobs_s = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(ROLLUP_SQL.format(day="date(created_at)"))
        conn.execute("COMMIT")
        times.rollups_s = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("ANALYZE")
        times.analyze_s = time.perf_counter() - started
        conn.execute("PRAGMA journal_mode=WAL")  # as the app runs it
    finally:
        conn.close()
    return times


def load_postgres(url: str, rows: list[tuple[Any, ...]]) -> LoadTimes:
    """COPY FROM STDIN (psycopg's cursor.copy) in one transaction, then VACUUM ANALYZE."""
    times = LoadTimes()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")  # our timestamp texts are UTC
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()
        indexes = conn.execute(PG_INDEXES).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY jobs ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        for _, sql in indexes:
            conn.execute(sql)
        conn.commit()
        times.jobs_s = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(ROLLUP_SQL.format(day="(created_at AT TIME ZONE 'UTC')::date"))
        conn.commit()
        times.rollups_s = time.perf_counter() - started
        started = time.perf_counter()
        conn.autocommit = True
        # VACUUM sets the visibility map, as autovacuum would have long before a table
        # reached a million rows; without it no plan could use an index-only scan.
        conn.execute("VACUUM (ANALYZE) jobs")
        conn.execute("VACUUM (ANALYZE) job_rollups")
        conn.execute("CHECKPOINT")  # write the load out now, not during the first timings
        times.analyze_s = time.perf_counter() - started
    return times


# ---------------------------------------------------------------------------------------
# The queries.

Call = Callable[[AsyncSession], Awaitable[Any]]


@dataclass
class Query:
    key: str
    label: str
    side: str  # "ours" | "original" | "reference"
    call: Call
    note: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        s = sorted(self.samples)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2

    @property
    def p95(self) -> float:
        s = sorted(self.samples)
        return s[max(0, math.ceil(0.95 * len(s)) - 1)]

    @property
    def meets(self) -> bool:
        return self.p95 < TARGET_P95_MS


STATUSES_ORIGINAL = ["pending", "processing", "completed", "failed", "cancelled"]


def build_queries(shop: str, cursors: dict[int, str], pages: tuple[int, int]) -> list[Query]:
    """Ours through the service; the original's approach through the same ORM session, so
    both pay the same object loading and only the query strategy differs."""

    def list_call(job_filter: JobFilter, cursor: str | None = None, total: bool = True) -> Call:
        async def call(session: AsyncSession) -> Any:
            page = await service.list_jobs(
                session,
                shop=shop,
                job_filter=job_filter,
                cursor=cursor,
                limit=PAGE_SIZE,
                with_total=total,
            )
            assert len(page.jobs) == PAGE_SIZE, f"short page: {len(page.jobs)}"
            return page

        return call

    def stats_call(job_filter: JobFilter) -> Call:
        async def call(session: AsyncSession) -> Any:
            return await service.job_stats(session, shop=shop, job_filter=job_filter)

        return call

    def offset_call(page: int, total: bool = False) -> Call:
        """The original's list: skip/take newest first (and a COUNT for the total)."""
        stmt = (
            select(Job)
            .where(Job.shop == shop)
            .order_by(Job.created_at.desc())
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        count = select(func.count()).select_from(Job).where(Job.shop == shop)

        async def call(session: AsyncSession) -> Any:
            rows = (await session.execute(stmt)).scalars().all()
            assert len(rows) == PAGE_SIZE
            return rows, (await session.execute(count)).scalar_one() if total else None

        return call

    async def count_per_status(session: AsyncSession) -> Any:
        """The original's stats: one COUNT per status, then the credits."""
        counts: dict[str, int] = {}
        for status in STATUSES_ORIGINAL:
            stmt = select(func.count()).where(Job.shop == shop, Job.status == status)
            counts[status] = (await session.execute(stmt)).scalar_one()
        stmt = select(func.coalesce(func.sum(Job.credits_used), 0)).where(Job.shop == shop)
        counts["credits"] = (await session.execute(stmt)).scalar_one()
        return counts

    async def floor(session: AsyncSession) -> Any:
        """What every request pays before any work: session, BEGIN, one round trip, COMMIT."""
        return (await session.execute(text("SELECT 1"))).scalar_one()

    none = JobFilter()
    failed = JobFilter(status=[JobStatus.FAILED])
    tool_done = JobFilter(tool_id="background-removal", status=[JobStatus.COMPLETED])
    campaign = JobFilter(meta={"campaign": "black-friday"})
    search = JobFilter(q="linen")
    upscale = JobFilter(tool_id="upscale-2x")
    deep, deeper = pages
    rollups, scan = "total: rollups", "total: COUNT over rows (no rollups)"
    off = f"OFFSET {(deep - 1) * PAGE_SIZE:,}"
    off_far = f"OFFSET {(deeper - 1) * PAGE_SIZE:,}"
    return [
        Query("first", "list: first page + total", "ours", list_call(none), rollups),
        Query("deep", f"list: page {deep} via cursor", "ours",
              list_call(none, cursors[deep], False), "keyset"),
        Query("deep_total", f"list: page {deep} via cursor + total", "ours",
              list_call(none, cursors[deep]), f"keyset; {rollups}"),
        Query("f_failed", "filter status=failed + total", "ours", list_call(failed), rollups),
        Query("f_tool", "filter toolId=background-removal & status=completed + total", "ours",
              list_call(tool_done), rollups),
        Query("f_meta", "filter meta.campaign=black-friday + total", "ours",
              list_call(campaign), scan),
        Query("f_q", "search q=linen + total", "ours", list_call(search), scan),
        Query("stats", "stats: no filter", "ours", stats_call(none), "rollups"),
        Query("stats_tool", "stats: toolId=upscale-2x", "ours", stats_call(upscale), "rollups"),
        Query("deeper", f"list: page {deeper:,} via cursor (extra)", "ours",
              list_call(none, cursors[deeper], False), "keyset"),
        Query("floor", "reference: unit of work + SELECT 1", "reference", floor,
              "fixed cost of any request"),
        Query("o_deep", f"original: page {deep}", "original", offset_call(deep), off),
        Query("o_deep_total", f"original: page {deep} + total", "original",
              offset_call(deep, total=True), f"{off} + COUNT(*)"),
        Query("o_stats", "original: stats", "original", count_per_status,
              "5 COUNTs (one per status) + SUM"),
        Query("o_deeper", f"original: page {deeper:,} (extra)", "original",
              offset_call(deeper), off_far),
    ]  # fmt: skip


async def run_once(sessions: async_sessionmaker[AsyncSession], call: Call) -> Any:
    async with unit_of_work(sessions, read_only=True) as session:
        return await call(session)


async def measure(
    sessions: async_sessionmaker[AsyncSession], q: Query, runs: int, budget_s: float
) -> None:
    await run_once(sessions, q.call)  # warm-up
    await run_once(sessions, q.call)
    begun = time.perf_counter()
    while len(q.samples) < runs and (len(q.samples) < 10 or time.perf_counter() - begun < budget_s):
        t0 = time.perf_counter()
        await run_once(sessions, q.call)
        q.samples.append((time.perf_counter() - t0) * 1000)


async def walk_to_page(
    sessions: async_sessionmaker[AsyncSession], shop: str, page: int
) -> str | None:
    """The cursor that opens page `page` (1-based), by walking the pages once."""
    cursor: str | None = None
    async with unit_of_work(sessions, read_only=True) as session:
        for _ in range(page - 1):
            result = await service.list_jobs(
                session, shop=shop, job_filter=JobFilter(), cursor=cursor, limit=PAGE_SIZE,
                with_total=False,
            )  # fmt: skip
            cursor = result.next_cursor
    return cursor


async def cursor_of_page(sessions: async_sessionmaker[AsyncSession], shop: str, page: int) -> str:
    """The same cursor, read directly: the last row of the page before."""
    stmt = (
        select(Job.created_at, Job.id)
        .where(Job.shop == shop)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .offset((page - 1) * PAGE_SIZE - 1)
        .limit(1)
    )
    async with unit_of_work(sessions, read_only=True) as session:
        created_at, job_id = (await session.execute(stmt)).one()
    return Cursor(created_at=created_at, id=job_id).encode()


async def statements(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], q: Query
) -> list[tuple[str, Any]]:
    """The SELECTs one call of `q` sends, with their parameters."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await run_once(sessions, q.call)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    return captured


async def sql_only_ms(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], q: Query, runs: int
) -> float:
    """Median of the call's SQL alone (driver round trips, no session, no ORM objects)."""
    captured = await statements(engine, sessions, q)
    samples = []
    async with engine.connect() as conn:
        await conn.execution_options(sqlite_begin="DEFERRED")
        for i in range(runs + 2):
            t0 = time.perf_counter()
            for statement, params in captured:
                (await conn.exec_driver_sql(statement, params)).all()
            if i >= 2:
                samples.append((time.perf_counter() - t0) * 1000)
    return sorted(samples)[len(samples) // 2]


async def explain(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], q: Query) -> str:
    """The statements a call sends, each with its time and its plan."""
    sqlite = engine.dialect.name == "sqlite"
    out = []
    captured = await statements(engine, sessions, q)
    async with engine.connect() as conn:
        await conn.execution_options(sqlite_begin="DEFERRED")
        for statement, params in captured:
            timings = []
            for _ in range(3):
                t0 = time.perf_counter()
                (await conn.exec_driver_sql(statement, params)).all()
                timings.append((time.perf_counter() - t0) * 1000)
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
            plan = (await conn.exec_driver_sql(prefix + statement, params)).all()
            lines = [row[-1] if sqlite else row[0] for row in plan]
            short = " ".join(statement.split())
            if len(short) > 400:
                short = short[:180] + " … " + short[-200:]
            out.append(f"[bold]{min(timings):.1f} ms[/] {short}\n    params: {params}")
            out.extend(f"    {line}" for line in lines)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# One engine, end to end.


@dataclass
class EngineResult:
    engine: str
    load: LoadTimes
    queries: list[Query]
    checks: list[str]
    sql_ms: dict[str, float]

    def get(self, key: str) -> Query:
        return next(q for q in self.queries if q.key == key)

    def ratio(self, original: str, ours: str) -> float:
        return self.get(original).median / self.get(ours).median

    def sql_ratio(self, original: str, ours: str) -> float:
        return self.sql_ms[original] / self.sql_ms[ours]

    @property
    def deep_met(self) -> bool:
        return self.ratio("o_deep", "deep") >= TARGET_DEEP_RATIO


async def bench_queries(
    url: str, plan: Plan, args: argparse.Namespace, kind: str
) -> tuple[list[Query], list[str], dict[str, float]]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    shop = plan.largest
    checks: list[str] = []
    try:
        last_page = max(plan.counts) // PAGE_SIZE
        deep = max(2, min(args.page, last_page))
        deeper = max(deep, min(args.deeper_page, last_page))
        t0 = time.perf_counter()
        walked = await walk_to_page(sessions, shop, deep)
        walk_s = time.perf_counter() - t0
        assert walked is not None
        cursors = {deep: walked, deeper: await cursor_of_page(sessions, shop, deeper)}
        same_cursor = walked == await cursor_of_page(sessions, shop, deep)
        queries = build_queries(shop, cursors, (deep, deeper))
        by_key = {q.key: q for q in queries}

        # Our page N is the original's OFFSET page (ties broken by id); stats agree.
        ours = await run_once(sessions, by_key["deep"].call)
        expected = select(Job.id).where(Job.shop == shop)
        expected = expected.order_by(Job.created_at.desc(), Job.id.desc())
        expected = expected.offset((deep - 1) * PAGE_SIZE).limit(PAGE_SIZE)

        async def expected_ids(session: AsyncSession) -> list[str]:
            return list((await session.execute(expected)).scalars())

        same_page = [j.id for j in ours.jobs] == await run_once(sessions, expected_ids)
        stats = await run_once(sessions, by_key["stats"].call)
        counted = await run_once(sessions, by_key["o_stats"].call)
        same_stats = all(stats.by_status[s] == counted[s] for s in STATUSES_ORIGINAL) and (
            stats.credits_used == counted["credits"]
        )
        checks.append(
            f"walked {deep - 1} cursors in {walk_s:.1f} s (== cursor read directly: "
            f"{'yes' if same_cursor else 'NO'}); page {deep} == OFFSET page: "
            f"{'yes' if same_page else 'NO'}; stats from rollups == COUNTs over rows: "
            f"{'yes' if same_stats else 'NO'}"
        )
        if not (same_cursor and same_page and same_stats):
            raise SystemExit("the checks failed: " + checks[-1])
        for q in queries:
            await measure(sessions, q, args.runs, args.budget)
        sql_ms = {
            key: await sql_only_ms(engine, sessions, by_key[key], args.runs)
            for key in ("deep", "o_deep", "deeper", "o_deeper")
        }
        misses = [q for q in queries if q.side == "ours" and (args.explain or not q.meets)]
        if args.explain or by_key["o_deep"].median / by_key["deep"].median < TARGET_DEEP_RATIO:
            misses += [by_key["deep"], by_key["o_deep"]]
        for q in misses:
            console.print(f"\n[bold]{kind} · plan of '{q.label}'[/] (p95 {q.p95:.1f} ms)")
            console.print(await explain(engine, sessions, q))
        return queries, checks, sql_ms
    finally:
        await engine.dispose()


def run_engine(
    kind: str, plan: Plan, rows: list[tuple[Any, ...]], args: argparse.Namespace
) -> EngineResult:
    with fresh_database(kind) as url:
        console.rule(f"[bold]{kind}")
        t0 = time.perf_counter()
        upgrade(url)
        console.print(f"migrated in {time.perf_counter() - t0:.1f} s")
        load = (load_sqlite if kind == "sqlite" else load_postgres)(url, rows)
        totals = asyncio.run(_totals(url))
        console.print(
            f"bulk insert of {plan.jobs:,} jobs (with index rebuild) {load.jobs_s:.1f} s, "
            f"rollups (one INSERT ... SELECT) {load.rollups_s:.1f} s, "
            f"ANALYZE {load.analyze_s:.1f} s: "
            f"[bold]{load.total_s:.1f} s[/]"
        )
        ok = totals == (plan.jobs, plan.jobs)
        console.print(
            f"rows in jobs: {totals[0]:,}; sum of rollup jobs: {totals[1]:,} "
            + ("[green]agree[/]" if ok else "[red]DISAGREE[/]")
        )
        if not ok:
            raise SystemExit("rollups do not agree with the rows")
        queries, checks, sql_ms = asyncio.run(bench_queries(url, plan, args, kind))
        for line in checks:
            console.print(line)
        result = EngineResult(kind, load, queries, checks, sql_ms)
        console.print(engine_table(result))
        return result


async def _totals(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
            rolled = (await conn.execute(text("SELECT sum(jobs) FROM job_rollups"))).scalar_one()
            return int(rows), int(rolled)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------
# Output.


def engine_table(result: EngineResult) -> Table:
    table = Table(title=f"{result.engine}: largest shop, {PAGE_SIZE} per page (ms)")
    for name in ("query", "served by", "median", "p95", "runs", "< 30 ms p95"):
        table.add_column(name, justify="right" if name in ("median", "p95", "runs") else "left")
    for q in result.queries:
        mark = ("[green]yes[/]" if q.meets else "[red]no[/]") if q.side == "ours" else ""
        table.add_row(q.label, q.note, f"{q.median:.2f}", f"{q.p95:.2f}", str(len(q.samples)), mark)
    return table


def _x(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:.0f}×"


def ratios(r: EngineResult) -> dict[str, str]:
    deep, deeper = r.get("deep").label.split()[2], r.get("deeper").label.split()[2]
    return {
        f"page {deep}: OFFSET / cursor": f"{_x(r.ratio('o_deep', 'deep'))} "
        f"(SQL alone {_x(r.sql_ratio('o_deep', 'deep'))})",
        f"page {deep} + totals": _x(r.ratio("o_deep_total", "deep_total")),
        f"page {deeper}: OFFSET / cursor": f"{_x(r.ratio('o_deeper', 'deeper'))} "
        f"(SQL alone {_x(r.sql_ratio('o_deeper', 'deeper'))})",
        "stats: COUNTs / rollups": _x(r.ratio("o_stats", "stats")),
    }


def summary(results: list[EngineResult]) -> Table:
    table = Table(title="Summary: original approach / ours (medians; higher is better for ours)")
    names = ["engine", "load", *ratios(results[0]), "ours < 30 ms p95", "deep page ≥ 10×"]
    for name in names:
        table.add_column(name)
    for r in results:
        ours = [q for q in r.queries if q.side == "ours"]
        missed = [q.key for q in ours if not q.meets]
        table.add_row(
            r.engine,
            f"{r.load.total_s:.0f} s",
            *ratios(r).values(),
            f"{len(ours) - len(missed)}/{len(ours)}"
            + (f" (miss: {', '.join(missed)})" if missed else ""),
            "[green]yes[/]" if r.deep_met else "[red]no[/]",
        )
    return table


def markdown(results: list[EngineResult], args: argparse.Namespace, wall_s: float) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        f"## List and stats at {args.jobs:,} jobs",
        "",
        f"`.venv/bin/python bench/list_and_stats.py --jobs {args.jobs} --engines "
        f"{args.engines}` on {datetime.now(UTC):%Y-%m-%d}: {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, PostgreSQL on "
        f"127.0.0.1 with stock settings; whole run {wall_s / 60:.1f} min; 1-minute load average "
        f"{args.load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other work "
        f"on the machine shows up in the p95s). {args.shops} shops, "
        f"the largest holds {args.jobs // 2:,} jobs, the rest a Zipf tail; generated once in "
        f"Python ({args.generate_s:.0f} s) and loaded in bulk into both engines. Each time is "
        "one read-only unit of work (session, queries, commit) through the service for ours, "
        "and through the same ORM session for the original's approach, in ms; "
        f"{args.runs} runs after warm-up (at most {args.budget:.0f} s per query, at least 10).",
        "",
    ]
    names = [r.engine for r in results]
    head = "| query | served by | " + " | ".join(f"{n} median | {n} p95" for n in names) + " |"
    lines += [head, "|" + "---|" * (2 + 2 * len(names))]
    for i, q in enumerate(results[0].queries):
        cells = []
        for r in results:
            rq = r.queries[i]
            flag = " ✗" if rq.side == "ours" and not rq.meets else ""
            cells.append(f"{rq.median:.1f} | {rq.p95:.1f}{flag}")
        lines.append(f"| {q.label} | {q.note} | " + " | ".join(cells) + " |")
    lines += ["", "| engine | load | " + " | ".join(ratios(results[0])) + " |"]
    lines.append("|" + "---|" * (2 + len(ratios(results[0]))))
    for r in results:
        load = (
            f"{r.load.total_s:.0f} s (insert {r.load.jobs_s:.0f} s, rollups "
            f"{r.load.rollups_s:.1f} s, analyze {r.load.analyze_s:.1f} s)"
        )
        lines.append(f"| {r.engine} | {load} | " + " | ".join(ratios(r).values()) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="list_and_stats", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--shops", type=int, default=100)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=40, help="timed runs per query")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per query at most")
    parser.add_argument("--page", type=int, default=500, help="the deep page")
    parser.add_argument("--deeper-page", type=int, default=10_000, help="an extra, deeper page")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--explain", action="store_true", help="plans of every query")
    parser.add_argument("--markdown", type=Path, help="append the results section to this file")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.engines.split(",") if k.strip()]
    if unknown := set(kinds) - {"sqlite", "postgresql"}:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")

    wall = time.perf_counter()
    args.load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    plan = make_plan(args.jobs, args.shops, args.seed)
    console.print(
        f"plan: {args.jobs:,} jobs, {args.shops} shops (largest {plan.largest}: "
        f"{max(plan.counts):,}; next {sorted(plan.counts)[-2]:,}; smallest {min(plan.counts):,}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    t0 = time.perf_counter()
    rows = list(job_rows(plan))
    args.generate_s = time.perf_counter() - t0
    console.print(
        f"generated {len(rows):,} job rows in {args.generate_s:.1f} s "
        "(Python, once: every engine loads the same rows)"
    )
    results = [run_engine(kind, plan, rows, args) for kind in kinds]
    del rows
    wall_s = time.perf_counter() - wall
    console.rule("[bold]summary")
    console.print(summary(results))
    console.print(
        f"targets: every list and stats query < {TARGET_P95_MS:.0f} ms p95; deep page "
        f"≥ {TARGET_DEEP_RATIO:.0f}× faster than OFFSET (whole request, as a merchant waits "
        f"for it). Whole run {wall_s / 60:.1f} min on {os.cpu_count()} cores; load average "
        f"{args.load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    )
    if args.markdown:
        md = markdown(results, args, wall_s)
        if not args.markdown.exists():
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(HEADER)
        with args.markdown.open("a") as fh:
            fh.write("\n" + md)
        console.print(f"appended to {args.markdown}")
    ours = [q for r in results for q in r.queries if q.side == "ours"]
    met = all(q.meets for q in ours) and all(r.deep_met for r in results)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
