"""The `pikcel-jobs` command: migrate, serve, worker, demo, simulators."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pikcel_jobs.config import Settings, SettingsError, load_settings

app = typer.Typer(help="Job tracking for the PikcelAI Shopify app.", no_args_is_help=True)
sim_app = typer.Typer(
    help="Run the PikcelAI or Shopify simulator on its own.", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def require_or_exit(settings: Settings, *names: str) -> None:
    try:
        settings.require(*names)
    except SettingsError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def migrate() -> None:
    """Upgrade the database (DATABASE_URL) to the newest schema."""
    from pikcel_jobs.db.migrate import current_revision, upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)
    typer.echo(f"database at revision {current_revision(settings.database_url)}")


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Run the web app (production: PostgreSQL, any number of processes)."""
    import uvicorn

    from pikcel_jobs.app import create_app
    from pikcel_jobs.core.logging import configure_logging

    settings = settings_or_exit()
    require_or_exit(
        settings, "pikcel_api_key", "pikcel_webhook_secret", "shopify_api_key",
        "shopify_api_secret", "session_secret",
    )  # fmt: skip
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, proxy_headers=True)


@app.command()
def worker() -> None:
    """Run a worker: dispatch, poll, copy outputs, push. Run as many as you like."""
    import signal

    # SIGTERM while still starting (nothing claimed yet) is a clean stop, not a kill;
    # once the loop runs, the worker's own handler replaces this one.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    import asyncio

    from pikcel_jobs.core.logging import configure_logging
    from pikcel_jobs.worker.process import run_worker_process

    settings = settings_or_exit()
    require_or_exit(settings, "pikcel_api_key")
    configure_logging(settings.log_level)
    try:  # libuv's loop: less CPU per poll (bench/tracking_capacity.py)
        import uvloop
    except ImportError:
        asyncio.run(run_worker_process(settings))
    else:
        uvloop.run(run_worker_process(settings))


@app.command()
def doctor() -> None:
    """Check the setup: database, PikcelAI key, webhook secret and URL, Shopify app,
    each shop's token, workers, stuck jobs. Exit code 1 when something is wrong."""
    import asyncio

    from rich.console import Console

    from pikcel_jobs.ops.doctor import run_checks
    from pikcel_jobs.runtime import Runtime

    settings = settings_or_exit()
    console = Console()

    async def main() -> bool:
        runtime = Runtime.create(settings)
        healthy = True
        try:
            async for check in run_checks(runtime):
                mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
                console.print(f"{mark} [bold]{check.name}[/]: {check.detail}", highlight=False)
                if not check.ok:
                    healthy = False
                    console.print(f"    → {check.hint}", highlight=False)
        finally:
            await runtime.close()
        return healthy

    if not asyncio.run(main()):
        raise typer.Exit(1)


@app.command()
def archive(
    older_than: Annotated[
        str, typer.Option(help="Age of the jobs to remove: 90d, 12h, 30m.")
    ] = "90d",
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
) -> None:
    """Remove finished jobs older than the given age and their stored images, in small
    batches (safe to interrupt); daily statistics keep their history."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from pikcel_jobs.archive.service import archive as run_archive
    from pikcel_jobs.archive.service import count_archivable, parse_age
    from pikcel_jobs.db.base import utcnow
    from pikcel_jobs.runtime import Runtime

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        typer.secho(f"error: --older-than: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    settings = settings_or_exit()

    async def main() -> None:
        runtime = Runtime.create(settings)
        try:
            total = await count_archivable(runtime.sessions, utcnow() - age)
            with Progress(TextColumn("archiving"), BarColumn(), MofNCompleteColumn()) as bar:
                task = bar.add_task("archive", total=total)
                result = await run_archive(
                    runtime.sessions, runtime.store, older_than=age, batch_size=batch_size,
                    progress=lambda done: bar.update(task, completed=done),
                )  # fmt: skip
            typer.echo(
                f"archived {result.jobs} jobs; pruned {result.receipts} old webhook receipts"
            )
        finally:
            await runtime.close()

    asyncio.run(main())


@app.command()
def demo(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    fresh: Annotated[bool, typer.Option("--reset", help="Start from an empty database.")] = False,
) -> None:
    """Try it in one command: web app, worker and both simulators on SQLite, with a
    seeded demo shop. Uses PORT+1 and PORT+2 for the simulators."""
    from pikcel_jobs.core.logging import configure_logging
    from pikcel_jobs.demo.run import run_demo

    configure_logging("WARNING", json=False)
    run_demo(host, port, fresh)


def _register_simulators() -> None:
    # Composition root: only the CLI and the demo import the simulators.
    from pikcel_sim.pikcel.cli import main as pikcel_main
    from pikcel_sim.shopify.cli import main as shopify_main

    sim_app.command("pikcel", help="The PikcelAI API simulator.")(pikcel_main)

    @sim_app.command("shopify")
    def shopify(
        host: Host = "127.0.0.1",
        port: Port = 8002,
        seed: Annotated[int, typer.Option(help="Seed of the generated catalogue.")] = 1,
        public_url: Annotated[str, typer.Option(help="The simulator's own base URL.")] = "",
        shop: Annotated[list[str], typer.Option(help="Pre-seeded shop (repeatable).")] = [],  # noqa: B006
        products_per_shop: int = 36,
        bucket_size: float = 1000.0,
        restore_rate: float = 50.0,
        media_processing_seconds: float = 2.0,
    ) -> None:
        """The Shopify Admin API simulator (keys from SHOPIFY_API_KEY / SHOPIFY_API_SECRET)."""
        shopify_main(
            host=host, port=port, seed=seed, public_url=public_url or None, shops=shop or None,
            products_per_shop=products_per_shop, bucket_size=bucket_size,
            restore_rate=restore_rate, media_processing_seconds=media_processing_seconds,
        )  # fmt: skip


# The simulators pull in Pillow and graphql-core: load them only for `pikcel-jobs sim …`,
# so `serve` and `worker` start fast.
if len(sys.argv) > 1 and sys.argv[1] == "sim":
    _register_simulators()


def main() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(app())
