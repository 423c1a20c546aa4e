"""PikcelAI simulator: GET /api/jobs/{id} req/s, bare httpx loop vs PikcelClient (ratio).

Starts the simulator as a subprocess (`python -m pikcel_sim.pikcel.cli`, so it does not
share a GIL with the load generator), creates N jobs through bulk dispatch, then runs
alternating rounds of the same load at concurrency C:

* bare: an `httpx.AsyncClient` loop, one GET per job id, checking the status code;
* client: `PikcelClient.get_job` through its RateLimiter (rate set far above what is
  reached, concurrency = C, so it does not bind) and its retry layer, returning a typed Job.

Rounds alternate which side goes first; the ratio is the median of the per-pair
client/bare ratios (target >= 0.8), so a busy machine's drift hits both sides alike.

    .venv/bin/python bench/pikcel_sim_throughput.py [--jobs 2000] [--concurrency 32]
        [--seconds 1.5] [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx

from pikcel_jobs.pikcel import PikcelClient, RateLimiter

API_KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "pikcel_sim.pikcel.cli", "--port", str(port), "--seed", "1",
        "--api-key", API_KEY, "--credits", "100000000", "--no-auto-progress",
        "--no-webhooks", "--log-level", "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sim/counters", timeout=1).raise_for_status()
            return process
        except httpx.HTTPError:
            if process.poll() is not None:
                raise RuntimeError("the simulator exited at start") from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the simulator did not start")


async def create_jobs(url: str, count: int) -> list[str]:
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        while len(ids) < count:
            batch = min(500, count - len(ids))
            response = await http.post("/api/enterprise/bulk/dispatch", json={
                "tool_id": "convert-webp",
                "input_images": [{"url": f"http://127.0.0.1:9/p/{len(ids) + n}.png"}
                                 for n in range(batch)],
            })
            response.raise_for_status()
            ids.extend(job["id"] for job in response.json()["data"]["jobs"])
    return ids


async def run_load(
    call: Callable[[str], Awaitable[None]], ids: list[str], concurrency: int, seconds: float
) -> tuple[float, float]:
    """Requests per second of `concurrency` workers calling `call` for `seconds`, and the
    load generator's own CPU microseconds per request."""
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        n = offset
        while time.monotonic() < stop_at:
            await call(ids[n % len(ids)])
            n += concurrency
            done += 1

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    return done / elapsed, (time.process_time() - cpu) / max(done, 1) * 1e6


Round = tuple[float, float]  # req/s, CPU us per request in the load generator


async def bench(
    url: str, ids: list[str], concurrency: int, seconds: float, rounds: int
) -> tuple[list[Round], list[Round]]:
    """Alternating rounds (bare first, then client first, ...) so drift in the machine's
    load hits both sides alike; each pair gives one client/bare ratio."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    bare_http = httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                  headers={"Authorization": f"Bearer {API_KEY}"})
    limiter = RateLimiter(1_000_000, concurrency=concurrency)
    client = PikcelClient(url, API_KEY, limiter=limiter, timeout=30, max_attempts=4)

    async def bare(job_id: str) -> None:
        response = await bare_http.get(f"/api/jobs/{job_id}")
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")

    async def typed(job_id: str) -> None:
        await client.get_job(job_id)

    try:
        await run_load(bare, ids, concurrency, 1.0)  # warm up both pools
        await run_load(typed, ids, concurrency, 1.0)
        bare_rates: list[Round] = []
        client_rates: list[Round] = []
        for n in range(rounds):
            if n % 2 == 0:
                bare_rates.append(await run_load(bare, ids, concurrency, seconds))
                client_rates.append(await run_load(typed, ids, concurrency, seconds))
            else:
                client_rates.append(await run_load(typed, ids, concurrency, seconds))
                bare_rates.append(await run_load(bare, ids, concurrency, seconds))
        if client.retries:
            print(f"note: the client retried {client.retries} time(s)")
        return bare_rates, client_rates
    finally:
        await bare_http.aclose()
        await client.aclose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.5, help="per round and side")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_simulator(port)
    try:
        started = time.monotonic()
        ids = asyncio.run(create_jobs(url, args.jobs))
        print(f"created {len(ids)} jobs in {time.monotonic() - started:.1f}s")
        bare_rates, client_rates = asyncio.run(
            bench(url, ids, args.concurrency, args.seconds, args.rounds))
        counters = httpx.get(f"{url}/_sim/counters", timeout=5).json()
    finally:
        process.terminate()
        process.wait(timeout=10)

    bare = statistics.median(r for r, _ in bare_rates)
    typed = statistics.median(r for r, _ in client_rates)
    ratio = statistics.median(c[0] / b[0] for b, c in zip(bare_rates, client_rates, strict=True))
    bare_cpu = statistics.median(cpu for _, cpu in bare_rates)
    typed_cpu = statistics.median(cpu for _, cpu in client_rates)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )
    print(
        f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:g}s, "
        f"{len(ids)} jobs"
    )
    print(
        f"bare httpx loop : {bare:8.0f} req/s, {bare_cpu:5.0f} us CPU/req here   (rounds: "
        f"{', '.join(f'{r:.0f}' for r, _ in bare_rates)})"
    )
    print(
        f"PikcelClient    : {typed:8.0f} req/s, {typed_cpu:5.0f} us CPU/req here   (rounds: "
        f"{', '.join(f'{r:.0f}' for r, _ in client_rates)})"
    )
    print(
        f"ratio client/bare (median of paired rounds): {ratio:.2f} (target >= 0.80) -> "
        f"{'OK' if ratio >= 0.8 else 'BELOW TARGET'}"
    )
    print(
        f"simulator: max {counters['max_rps']} req in any 1 s window, "
        f"max {counters['max_in_flight']} in flight, statuses {counters['statuses']}"
    )
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
