"""Job progression: one asyncio task over a heap of due transitions, and the real work."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from typing import TYPE_CHECKING

import httpx

from . import imaging
from .store import SimJob

if TYPE_CHECKING:
    from .app import Simulator

# Queue wait before processing starts, by priority (seconds at time_scale 1).
QUEUE_SECONDS = {"urgent": 0.2, "high": 0.5, "normal": 1.0, "low": 2.0}
PROGRESS_STEPS = (10, 30, 50, 70, 90)
FETCH_ERROR = "Could not read the input image: "


class FetchError(Exception):
    pass


class Engine:
    """Moves jobs pending -> processing (progress 10..90) -> completed/failed on time.

    Every future transition is one `(due, seq, job_id, tick, action)` entry on a heap,
    worked by a single task; an entry whose tick no longer matches the job's is stale
    (the job was cancelled or moved by hand) and is skipped. 100,000 active jobs are
    100,000 heap entries, nothing more.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.heap: list[tuple[float, int, str, int, str]] = []
        self._seq = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self.http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.sim.config.image_workers)
        self.http = httpx.AsyncClient(
            timeout=self.sim.config.fetch_timeout, follow_redirects=True,
            headers={"User-Agent": "PikcelAI-Fetcher/1.0 (simulator)"},
        )
        self._task = asyncio.create_task(self._run(), name="pikcel-sim-scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._work) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    def clear(self) -> None:
        self.heap.clear()
        for task in self._work:
            task.cancel()

    # -- scheduling ---------------------------------------------------------------------

    def schedule(self, job: SimJob, delay: float, action: str) -> None:
        self._seq += 1
        due = time.monotonic() + delay
        entry = (due, self._seq, job.id, job.tick, action)
        heapq.heappush(self.heap, entry)
        if self._wake is not None and self.heap[0] is entry:
            self._wake.set()

    def on_created(self, job: SimJob) -> None:
        if self.sim.config.auto_progress:
            scale = self.sim.config.time_scale * self.sim.job_jitter(job)
            self.schedule(job, QUEUE_SECONDS.get(job.priority, 1.0) * scale, "start")

    def _step_seconds(self, job: SimJob) -> float:
        tool = self.sim.tools[job.tool_id]
        scale = self.sim.config.time_scale * self.sim.job_jitter(job)
        return tool.duration_seconds * scale / len(PROGRESS_STEPS)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            while self.heap and self.heap[0][0] <= now:
                _, _, job_id, tick, action = heapq.heappop(self.heap)
                job = self.sim.jobs.get(job_id)
                if job is None or job.tick != tick or job.terminal:
                    continue
                try:
                    self._act(job, action)
                except Exception:  # a bug in one job must not stop the clock
                    self.sim.log_exception(f"scheduler action {action} on {job_id}")
            self._wake.clear()
            timeout = self.heap[0][0] - time.monotonic() if self.heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _act(self, job: SimJob, action: str) -> None:
        if action == "start":
            self.start_job(job)
            if self.sim.config.auto_progress:
                self.schedule(job, self._step_seconds(job), "progress")
        elif action == "progress":
            self.advance(job)
            if self.sim.config.auto_progress:
                self.schedule(job, self._step_seconds(job),
                              "finish" if job.progress >= PROGRESS_STEPS[-1] else "progress")
        elif action == "finish":
            self.spawn_finish(job)

    # -- transitions ----------------------------------------------------------------------

    def _touch(self, job: SimJob) -> None:
        job.tick += 1
        job.updated_at = time.time()

    def start_job(self, job: SimJob) -> None:
        if job.status != "pending":
            return
        self._touch(job)
        job.status = "processing"
        job.progress = PROGRESS_STEPS[0]
        job.started_at = job.updated_at
        self.sim.emit("job.started", job)

    def advance(self, job: SimJob, value: int | None = None) -> None:
        if job.status != "processing":
            return
        self._touch(job)
        if value is None:
            value = next((p for p in PROGRESS_STEPS if p > job.progress), PROGRESS_STEPS[-1])
        job.progress = max(job.progress, min(99, value))
        self.sim.emit("job.progress", job)

    def spawn_finish(self, job: SimJob, *, force: str | None = None) -> asyncio.Task[None]:
        task = asyncio.create_task(self.finish(job, force=force))
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def finish(self, job: SimJob, *, force: str | None = None,
                     error_message: str | None = None) -> None:
        """Do the tool's work and complete the job, or fail it with a clear message.

        `force="complete"` completes even when the input cannot be read (the output is
        then a grey placeholder); `force="fail"` fails without doing the work.
        """
        if job.terminal:
            return
        if job.status == "pending":
            self.start_job(job)
        tick = job.tick
        if force == "fail":
            self.fail(job, error_message or "Failed by the simulator (forced).")
            return
        if job.will_fail and force != "complete":
            self.fail(job, "Simulated processing failure: the AI model could not process "
                           "this image (injected fault).")
            return
        assert self._slots is not None
        async with self._slots:
            try:
                data = await self.fetch(job.input_image_url)
                output = await asyncio.to_thread(imaging.process, job.tool_id, data,
                                                 job.parameters)
            except (FetchError, imaging.ImageError) as exc:
                if not self._current(job, tick):
                    return
                if force == "complete":
                    placeholder = imaging.encode(
                        imaging.Image.new("RGB", (64, 64), (128, 128, 128)), "png")
                    output = await asyncio.to_thread(imaging.process, "convert-webp",
                                                     placeholder, {})
                else:
                    self.fail(job, f"{FETCH_ERROR}{exc}")
                    return
        if not self._current(job, tick):  # cancelled (or reset) meanwhile
            return
        self.complete(job, output)

    def _current(self, job: SimJob, tick: int) -> bool:
        return self.sim.jobs.get(job.id) is job and job.tick == tick and not job.terminal

    async def fetch(self, url: str) -> bytes:
        assert self.http is not None
        limit = self.sim.config.max_input_bytes
        try:
            async with self.http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code} from {url}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise FetchError(f"the file is larger than {limit // (1024 * 1024)} MB")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(f"the file is larger than {limit // (1024 * 1024)} MB")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException:
            raise FetchError(f"timed out fetching {url}") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"could not fetch {url} ({type(exc).__name__}: {exc})") from None

    def complete(self, job: SimJob, output: imaging.Output) -> None:
        sim = self.sim
        self._touch(job)
        out_path = f"outputs/{job.id}.{output.ext}"
        thumb_path = f"thumbnails/{job.id}.{output.thumbnail_ext}"
        sim.files.put(out_path, output.data, output.mime)
        sim.files.put(thumb_path, output.thumbnail, output.thumbnail_mime)
        job.status = "completed"
        job.progress = 100
        job.output_path, job.thumbnail_path = out_path, thumb_path
        job.completed_at = job.updated_at
        job.processing_time_ms = round((job.completed_at - (job.started_at or job.created_at))
                                       * 1000)
        job.credits_used = job.cost
        user = sim.users_by_id[job.user_id]
        user.reserved -= job.cost
        user.credits_balance -= job.cost
        user.credits_spent += job.cost
        user.total_jobs_processed += 1
        user.updated_at = job.updated_at
        sim.emit("job.completed", job)

    def fail(self, job: SimJob, message: str) -> None:
        self._touch(job)
        job.status = "failed"
        job.error_message = message
        job.completed_at = job.updated_at
        if job.started_at is not None:
            job.processing_time_ms = round((job.completed_at - job.started_at) * 1000)
        user = self.sim.users_by_id[job.user_id]
        user.reserved -= job.cost
        user.jobs_failed += 1
        self.sim.emit("job.failed", job)

    def cancel(self, job: SimJob) -> None:
        if job.terminal:
            return
        self._touch(job)
        job.status = "cancelled"
        user = self.sim.users_by_id[job.user_id]
        user.reserved -= job.cost
        user.jobs_cancelled += 1
        self.sim.emit("job.cancelled", job)
