"""Running a worker as a process: signals, runtime, clean exit."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from pikcel_jobs.config import Settings
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.worker.runner import Worker, default_queues, worker_id

log = logging.getLogger("pikcel_jobs.worker")


def start_worker(runtime: Runtime, owner: str | None = None) -> Worker:
    """A worker sharing `runtime`; its `nudge` is called when new work appears."""
    worker = Worker(runtime.worker_context(owner or worker_id()), default_queues())
    runtime.nudges.append(worker.nudge)
    return worker


async def run_worker_process(settings: Settings) -> None:
    # No ping before each transaction: it cost a quarter of a PostgreSQL worker's CPU per
    # poll, and a worker's database errors are retried anyway (a failed claim is tried
    # again, a failed write leaves the lease to expire); the pool drops dead connections.
    runtime = Runtime.create(settings, pre_ping=False)
    worker = start_worker(runtime)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    maintenance = (
        asyncio.create_task(daily_archive(runtime)) if settings.archive_after_days else None
    )
    try:
        await worker.run()
    finally:
        if maintenance:
            maintenance.cancel()
            await asyncio.gather(maintenance, return_exceptions=True)
        await runtime.close()


async def daily_archive(runtime: Runtime) -> None:
    """Retention in the background: every worker may run it; batches never overlap
    (SKIP LOCKED), and running it twice in a day just finds nothing left to do."""
    from pikcel_jobs.archive.service import archive

    days = runtime.settings.archive_after_days or 0
    while True:
        try:
            result = await archive(runtime.sessions, runtime.store, older_than=timedelta(days=days))
            log.info("archived %d jobs older than %d days", result.jobs, days)
        except Exception:
            log.exception("archiving failed; trying again tomorrow")
        await asyncio.sleep(24 * 3600)
