"""PikcelAI simulator: GET /api/jobs/{id} req/s, bare loops vs PikcelClient (ratio).

Starts the simulator as a subprocess (`python -m pikcel_sim.pikcel.cli`, so it does not
share a GIL with the load generator), creates N jobs through bulk dispatch, then runs
rounds of the same load at concurrency C, under uvloop (as the worker runs):

* bare aiohttp: an `aiohttp.ClientSession` loop, one GET per job id, status checked and
  body read: the PikcelClient's own HTTP stack with nothing around it, and the cheapest
  client here, so the closest to the simulator's own throughput;
* bare httpx: the same loop over `httpx.AsyncClient` (the first session's baseline;
  httpcore costs about 1.2 ms of CPU per request, so this loop is bound by itself);
* client: `PikcelClient.get_job` through its RateLimiter (rate set far above what is
  reached, concurrency = C, so it does not bind) and its retry layer, returning a typed Job.

The order of the three rotates each round; the ratio is the median of the per-round
client/bare-aiohttp ratios (target >= 0.8), so a busy machine's drift hits all alike.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import httpx
import uvloop

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
BareCall = Callable[[str], Awaitable[None]]


@asynccontextmanager
async def bare_loops(url: str, concurrency: int) -> AsyncIterator[dict[str, BareCall]]:
    """A plain `GET /api/jobs/{id}` (status checked, body read) over each HTTP stack,
    with a pool of `concurrency` connections: "aiohttp" and "httpx"."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=30, headers=headers) as hx,
        aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as session,
    ):  # fmt: skip

        async def via_httpx(job_id: str) -> None:
            response = await hx.get(f"/api/jobs/{job_id}")
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")

        async def via_aiohttp(job_id: str) -> None:
            async with session.get(f"{url}/api/jobs/{job_id}") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")

        yield {"aiohttp": via_aiohttp, "httpx": via_httpx}


async def bench(
    url: str, ids: list[str], concurrency: int, seconds: float, rounds: int
) -> dict[str, list[Round]]:
    """Rounds of the bare loops and the client, the order rotating each round so drift
    in the machine's load hits each side alike."""
    limiter = RateLimiter(1_000_000, concurrency=concurrency)
    client = PikcelClient(url, API_KEY, limiter=limiter, timeout=30, max_attempts=4)

    async def typed(job_id: str) -> None:
        await client.get_job(job_id)

    try:
        async with bare_loops(url, concurrency) as bare:
            sides: dict[str, BareCall] = {**bare, "client": typed}
            for call in sides.values():  # warm up every pool
                await run_load(call, ids, concurrency, 1.0)
            results: dict[str, list[Round]] = {name: [] for name in sides}
            names = list(sides)
            for n in range(rounds):
                for name in names[n % 3 :] + names[: n % 3]:
                    results[name].append(await run_load(sides[name], ids, concurrency, seconds))
        if client.retries:
            print(f"note: the client retried {client.retries} time(s)")
        return results
    finally:
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
        results = uvloop.run(bench(url, ids, args.concurrency, args.seconds, args.rounds))
        counters = httpx.get(f"{url}/_sim/counters", timeout=5).json()
    finally:
        process.terminate()
        process.wait(timeout=10)

    def ratio_to(base: str) -> float:
        pairs = zip(results[base], results["client"], strict=True)
        return statistics.median(c[0] / b[0] for b, c in pairs)

    ratio = ratio_to("aiohttp")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )
    print(
        f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:g}s, "
        f"{len(ids)} jobs"
    )
    for name, label in (("aiohttp", "bare aiohttp"), ("httpx", "bare httpx"),
                        ("client", "PikcelClient")):  # fmt: skip
        rounds = results[name]
        print(
            f"{label:13}: {statistics.median(r for r, _ in rounds):8.0f} req/s, "
            f"{statistics.median(c for _, c in rounds):5.0f} us CPU/req here   (rounds: "
            f"{', '.join(f'{r:.0f}' for r, _ in rounds)})"
        )
    print(
        f"ratio client/bare aiohttp (median of rounds): {ratio:.2f} (target >= 0.80) -> "
        f"{'OK' if ratio >= 0.8 else 'BELOW TARGET'}; client/bare httpx: "
        f"{ratio_to('httpx'):.2f}"
    )
    print(
        f"simulator: max {counters['max_rps']} req in any 1 s window, "
        f"max {counters['max_in_flight']} in flight, statuses {counters['statuses']}"
    )
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
