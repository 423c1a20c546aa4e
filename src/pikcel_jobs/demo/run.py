"""`pikcel-jobs demo`: one process with both simulators, the web app and a worker, on
an embedded SQLite database, with a seeded demo shop. The composition root that runs
the simulators (`pikcel_sim`); the service code itself never imports them."""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from pikcel_jobs.app import create_app
from pikcel_jobs.config import Settings, load_settings
from pikcel_jobs.db.migrate import upgrade
from pikcel_jobs.demo.secrets import DEMO_SHOP, demo_secrets
from pikcel_jobs.demo.seed import already_seeded, connect_shop, seed_history, start_live_jobs
from pikcel_jobs.runtime import Runtime
from pikcel_jobs.worker.process import start_worker
from pikcel_sim.pikcel.app import create_app as create_pikcel_sim
from pikcel_sim.pikcel.config import SimConfig
from pikcel_sim.serve import ThreadedServer
from pikcel_sim.shopify.app import create_app as create_shopify_sim
from pikcel_sim.shopify.config import ShopifySimConfig
from pikcel_sim.shopify.tokens import mint_session_token

console = Console()
VAR = Path("var")


def demo_settings(host: str, port: int) -> Settings:
    """The demo's defaults, under whatever the environment or `.env` already set."""
    given = load_settings().model_fields_set
    defaults: dict[str, Any] = {
        "env": "demo",
        "app_url": f"http://{host}:{port}",
        "pikcel_api_url": f"http://127.0.0.1:{port + 1}",
        "shopify_connect_url": f"http://127.0.0.1:{port + 2}",
        "allow_private_urls": True,
        "poll_initial_seconds": 1.0,
        "poll_max_seconds": 15.0,
        **demo_secrets(VAR),
    }
    return load_settings(**{k: v for k, v in defaults.items() if k not in given})


def reset() -> None:
    for path in (VAR / "pikcel.db", VAR / "pikcel.db-wal", VAR / "pikcel.db-shm", VAR / "storage"):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def start_simulators(settings: Settings, port: int) -> list[ThreadedServer]:
    pikcel = create_pikcel_sim(
        SimConfig(
            seed=1, time_scale=0.5, public_url=f"http://127.0.0.1:{port + 1}",
            webhook_secret=settings.pikcel_webhook_secret.get_secret_value(), default_credits=5000,
        )
    )  # fmt: skip
    shopify = create_shopify_sim(
        ShopifySimConfig(
            api_key=settings.shopify_api_key,
            api_secret=settings.shopify_api_secret.get_secret_value(),
            public_url=f"http://127.0.0.1:{port + 2}", shops=(DEMO_SHOP,),
        )
    )  # fmt: skip
    servers = [
        ThreadedServer(pikcel, port=port + 1).start(),
        ThreadedServer(shopify, port=port + 2).start(),
    ]
    console.print(f"[green]✓[/] PikcelAI simulator on {servers[0].url}")
    console.print(f"[green]✓[/] Shopify simulator on {servers[1].url}")
    return servers


async def seed(runtime: Runtime, settings: Settings) -> None:
    token = mint_session_token(
        DEMO_SHOP, settings.shopify_api_key, settings.shopify_api_secret.get_secret_value()
    )
    products = await connect_shop(runtime, DEMO_SHOP, token)
    console.print(f"[green]✓[/] {DEMO_SHOP} connected ({len(products)} products)")
    if await already_seeded(runtime, DEMO_SHOP):
        console.print("[green]✓[/] demo data kept from the last run (use --reset to start fresh)")
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("Seeding the demo shop", total=1.0)

        def progress(what: str, done: float) -> None:
            bar.update(task, description=what, completed=done)

        await seed_history(runtime, DEMO_SHOP, products, count=300, progress=progress)
    await start_live_jobs(runtime, DEMO_SHOP, products)
    console.print("[green]✓[/] seeded 300 jobs of the last 30 days and started 6 live ones")


async def serve(settings: Settings, host: str, port: int) -> None:
    runtime = Runtime.create(settings)
    worker = start_worker(runtime)
    worker_task = asyncio.create_task(worker.run())
    console.print(f"[green]✓[/] worker {worker.ctx.owner} running")
    try:
        await seed(runtime, settings)
        config = uvicorn.Config(create_app(settings, runtime=runtime), host=host, port=port,
                                log_level="warning", timeout_graceful_shutdown=3)  # fmt: skip
        console.print(f"[bold green]✓ pikcel-jobs on {settings.app_url}/app[/]  (Ctrl-C stops)")
        await uvicorn.Server(config).serve()
    finally:
        worker.stop()
        await worker_task
        await runtime.close()


def run_demo(host: str, port: int, fresh: bool) -> None:
    if fresh:
        reset()
    settings = demo_settings(host, port)
    upgrade(settings.database_url)
    console.print(f"[green]✓[/] database ready ({settings.database_url.split('://', 1)[0]})")
    servers = start_simulators(settings, port)
    # SIGTERM stops the demo as Ctrl-C does: uvicorn re-raises the signal it caught once
    # it has shut down, and with the default action the process would die before the
    # worker gives back its leases and its place among the workers.
    signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
    try:
        asyncio.run(serve(settings, host, port))
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()
        console.print("stopped")
