"""The finsync command line: serve, migrate, and (later) import."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from finsync.config import Settings

app = typer.Typer(help="finsync: self-hosted financial data aggregation.", no_args_is_help=True)
ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> object:
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.attributes["database_url"] = database_url
    return cfg


def migrate_database(database_url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")  # type: ignore[arg-type]


@app.command()
def migrate() -> None:
    """Apply database migrations (SQLite or PostgreSQL, from FINSYNC_DATABASE_URL)."""
    settings = Settings()
    migrate_database(settings.database_url)
    typer.echo(f"database is up to date ({settings.database_url.split('://')[0]})")


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="OFX/QFX file")],
    user: Annotated[str, typer.Option("--user", help="Email of the finsync user who owns the data")],
) -> None:
    """Import a statement file for a user, with a progress bar for big files."""
    asyncio.run(_import(path, user))


async def _import(path: Path, email: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

    from finsync.bootstrap import build
    from finsync.domain.errors import FinsyncError

    console = Console(stderr=True)
    container = build(Settings())
    try:
        async with container.uow() as uow:
            owner = await uow.users.get_by_email(email)
        if owner is None:
            console.print(f"[red]no user with email {email}[/red]")
            raise typer.Exit(2)
        size = path.stat().st_size  # noqa: ASYNC240 - a CLI with nothing else on its loop
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console
        ) as bar:
            reading = bar.add_task("reading", total=size)
            chunks = []
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    chunks.append(chunk)
                    bar.advance(reading, len(chunk))
            bar.update(reading, description="parsing and saving")
            result = await container.imports.import_file(owner.id, b"".join(chunks), path.name)
            bar.update(reading, description="done")
    except FinsyncError as exc:
        console.print(f"[red]{exc.title}:[/red] {exc.detail}")
        raise typer.Exit(1) from None
    finally:
        await container.aclose()
    done = result.summary()
    typer.echo(
        f"{path.name}: {len(result.accounts)} account(s); transactions inserted "
        f"{done.transactions_inserted}, already present {done.transactions_already_present}, "
        f"updated {done.transactions_updated}; holdings {done.holdings}"
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="PostgreSQL: also run one job worker in this process")
    ] = False,
) -> None:
    """Run the API server. On PostgreSQL it only enqueues jobs: run `finsync worker` (or
    `--with-worker` on a single box). On SQLite jobs always run in this process."""
    import uvicorn

    factory = "create_app_with_worker" if with_worker else "create_app"
    uvicorn.run(f"finsync.api.app:{factory}", factory=True, host=host, port=port, proxy_headers=True)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Jobs run at once (FINSYNC_WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Run a job worker (PostgreSQL): syncs, the scheduler tick, expiry and the reaper. Start any
    number, on any number of machines; SIGTERM lets running jobs finish."""
    settings = Settings()
    if settings.is_sqlite:
        typer.echo("on SQLite jobs run inside `finsync serve`; a worker needs PostgreSQL", err=True)
        raise typer.Exit(2)
    asyncio.run(_work(settings, concurrency))


def worker_settings(settings: Settings, concurrency: int | None = None) -> Settings:
    """A worker's job pool holds a connection per running job, plus its listener and heartbeat."""
    jobs = concurrency or settings.worker_concurrency
    return settings.model_copy(update={"job_pool_size": max(settings.job_pool_size, min(jobs, 16) + 3)})


async def _work(settings: Settings, concurrency: int | None) -> None:
    from finsync.bootstrap import build, configure_logging

    configure_logging(settings.log_format.value, settings.log_level)
    container = build(worker_settings(settings, concurrency))
    try:
        await container.run_worker(concurrency, signals=True)
    finally:
        await container.aclose()
