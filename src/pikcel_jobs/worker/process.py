"""Running a worker as a process: signals, runtime, clean exit."""

from __future__ import annotations

import asyncio
import signal

from pikcel_jobs.config import Settings
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.worker.runner import Worker, default_queues, worker_id


def start_worker(runtime: Runtime, owner: str | None = None) -> Worker:
    """A worker sharing `runtime`; its `nudge` is called when new work appears."""
    worker = Worker(runtime.worker_context(owner or worker_id()), default_queues())
    runtime.nudges.append(worker.nudge)
    return worker


async def run_worker_process(settings: Settings) -> None:
    runtime = Runtime.create(settings)
    worker = start_worker(runtime)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await runtime.close()
