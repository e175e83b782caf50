"""The finsync command line: serve, migrate, import, and the operator's commands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from finsync.config import Settings
from finsync.console import (
    EXIT_CODES,
    NOT_FOUND,
    USAGE,
    container,
    fail,
    held_logs,
    load_settings,
    require_service_secrets,
)

app = typer.Typer(
    help="finsync: self-hosted financial data aggregation.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords and keys
)
users_app = typer.Typer(
    help="Create, list, disable and enable users.", epilog=EXIT_CODES, no_args_is_help=True
)
keys_app = typer.Typer(help="Encryption keys of stored credentials.", epilog=EXIT_CODES, no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The user's email address")]


def alembic_config(database_url: str) -> object:
    """Alembic's configuration, built in code: the scripts ship inside the package (finsync:migrations),
    so ``finsync migrate`` works from an installed wheel, with no alembic.ini beside it."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "finsync:migrations")
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = database_url
    return cfg


def migrate_database(database_url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")  # type: ignore[arg-type]


@app.command()
def migrate() -> None:
    """Apply database migrations (SQLite or PostgreSQL, from FINSYNC_DATABASE_URL)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    settings = load_settings()
    try:
        migrate_database(settings.database_url)
    except (OSError, DBAPIError) as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        fail(f"cannot migrate the database at {where}: {reason}")
    typer.echo(f"database is up to date ({settings.database_url.split('://')[0]})")


@app.command("import")
def import_file(
    path: Annotated[
        Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, readable=True, help="OFX/QFX file")
    ],
    user: Annotated[str, typer.Option("--user", metavar="EMAIL", help="Email of the user who owns the data")],
) -> None:
    """Import a statement file for a user, with a progress bar for big files."""
    asyncio.run(_import(path, user))


async def _import(path: Path, email: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

    console = Console(stderr=True)
    async with container(load_settings()) as c:
        owner = await c.users.find(email)
        if not owner.is_active:
            fail(f"user {email} is disabled; enable them first (finsync users enable)")
        size = path.stat().st_size  # noqa: ASYNC240 - a CLI with nothing else on its loop
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        with held_logs(), Progress(*columns, console=console) as bar:
            reading = bar.add_task("reading", total=size)
            chunks = []
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    chunks.append(chunk)
                    bar.advance(reading, len(chunk))
            bar.update(reading, description="parsing and saving")
            result = await c.imports.import_file(owner.id, b"".join(chunks), path.name)
            bar.update(reading, description="done")
    done = result.summary()
    typer.echo(
        f"{path.name}: {len(result.accounts)} account(s); transactions inserted "
        f"{done.transactions_inserted}, already present {done.transactions_already_present}, "
        f"updated {done.transactions_updated}; holdings {done.holdings}"
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}")


@users_app.command("create")
def users_create(
    email: Email,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin")
    ] = False,
) -> None:
    """Create a user, even when registration is closed. The password is asked for (twice)
    unless --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    asyncio.run(_users_create(email, password))


async def _users_create(email: str, password: str) -> None:
    from finsync.config import Registration

    settings = load_settings().model_copy(update={"registration": Registration.OPEN})
    async with container(settings) as c:
        user = await c.user_auth.register(email, password)
    typer.echo(f"created {user.email} ({user.id})")


@users_app.command("list")
def users_list() -> None:
    """Every user: email, id, active or disabled, creation time, number of connections."""
    asyncio.run(_users_list())


async def _users_list() -> None:
    async with container(load_settings()) as c:
        found = await c.users.list()
    rows = [("EMAIL", "ID", "STATUS", "CREATED", "CONNECTIONS")] + [
        (
            u.email,
            str(u.id),
            "active" if u.is_active else "disabled",
            f"{u.created_at:%Y-%m-%d}",
            str(u.connections),
        )
        for u in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


@users_app.command("disable")
def users_disable(email: Email) -> None:
    """Disable a user: no login, and every session ends now (refresh tokens revoked)."""
    asyncio.run(_set_active(email, active=False))


@users_app.command("enable")
def users_enable(email: Email) -> None:
    """Enable a disabled user again."""
    asyncio.run(_set_active(email, active=True))


async def _set_active(email: str, *, active: bool) -> None:
    async with container(load_settings()) as c:
        user = await c.users.set_active(email, active)
    typer.echo(f"{user.email} is {'enabled' if active else 'disabled'}")


@app.command("sync")
def sync_connection(
    connection_id: Annotated[UUID, typer.Argument(metavar="CONNECTION_ID", help="The connection's id")],
) -> None:
    """Sync one connection now, in the foreground, and print what the run did."""
    asyncio.run(_sync(connection_id))


async def _sync(connection_id: UUID) -> None:
    from rich.console import Console

    from finsync.domain.enums import SyncStatus, SyncTrigger

    async with container(load_settings()) as c:
        async with c.uow() as uow:
            connection = await uow.connections.get(connection_id)
        if connection is None:
            fail(f"connection {connection_id} not found", NOT_FOUND)
        with held_logs(), Console(stderr=True).status(f"syncing {connection.name} ({connection.provider})"):
            run = await c.sync.request(connection.id, connection.user_id, SyncTrigger.MANUAL)
            await c.jobs.drain()  # the job runs in this process: wait for it
        async with c.uow() as uow:
            run = await uow.sync_runs.get(run.id) or run
    if run.status is SyncStatus.RUNNING:
        fail(
            f"a sync of this connection is already running (run {run.id}, "
            f"since {run.started_at:%H:%M:%S} UTC)"
        )
    if run.status is SyncStatus.FAILED:
        fail(f"sync run {run.id} failed: {run.error}")
    counts = run.counts
    typer.echo(f"sync run {run.id} succeeded in {counts.get('duration_ms', 0)} ms")
    for entity in ("accounts", "holdings", "transactions"):
        parts = [
            f"{kind} {counts.get(f'{entity}_{kind}', 0)}" for kind in ("inserted", "updated", "unchanged")
        ]
        if entity != "accounts":
            parts.append(f"deleted {counts.get(f'{entity}_deleted', 0)}")
        typer.echo(f"  {entity}: {', '.join(parts)}")
    typer.echo(f"  balance snapshots: {counts.get('snapshots', 0)}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored credential and pending authorisation with the newest key (the first
    of FINSYNC_ENCRYPTION_KEYS), so older keys can be removed. Values no configured key can read
    are listed (their users must reconnect); the exit code is then 1."""
    asyncio.run(_keys_rotate())


async def _keys_rotate() -> None:
    async with container(load_settings()) as c:
        report = await c.keys.rotate()
    typer.echo(f"re-encrypted {report.re_encrypted} value(s) with the newest key")
    for secret in report.busy:
        typer.echo(f"skipped {secret.kind} {secret.id} ({secret.owner}): in use by a sync; run again later")
    for secret in report.unreadable:
        typer.echo(f"unreadable {secret.kind} {secret.id} ({secret.owner}): no configured key decrypts it")
    if report.unreadable:
        fail(f"{len(report.unreadable)} value(s) cannot be decrypted with any configured key")


market_data = typer.Typer(help="Market data: FX reference rates and prices of held instruments.")
app.add_typer(market_data, name="market-data")


@market_data.command("refresh")
def refresh_market_data(
    day: Annotated[
        str | None, typer.Option("--day", help="YYYY-MM-DD to refresh up to (default: today, UTC)")
    ] = None,
) -> None:
    """Fetch new FX fixings and closes of held instruments (the daily job's body)."""
    from datetime import date

    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        fail(f"--day must be YYYY-MM-DD, not {day!r}", USAGE)
    report = asyncio.run(_refresh(when))
    typer.echo(
        f"{report.day}: {report.fx_stored} FX fixing(s) from {report.fx_source or 'no source'}; "
        f"{len(report.instruments)} instrument(s), "
        f"{sum(r.stored for r in report.instruments)} close(s) stored"
    )
    for error in report.fx_errors:
        typer.echo(f"fx: {error}", err=True)
    if report.fx_missing:
        shown = ", ".join(d.isoformat() for d in report.fx_missing[:5])
        more = f" and {len(report.fx_missing) - 5} more" if len(report.fx_missing) > 5 else ""
        typer.echo(f"fx: no fixing for working day(s) {shown}{more}", err=True)
    for result in report.instruments:
        if result.source is None:
            typer.echo(
                f"unpriced {result.key}: {'; '.join(result.errors) or 'no source handles it'}", err=True
            )


async def _refresh(day: object) -> Any:
    async with container(load_settings()) as c:  # a bad setting is one line, as in every command
        return await c.market_data.refresh_market_data(day)  # type: ignore[arg-type]


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

    require_service_secrets()  # a missing secret is one line here, not a start-up traceback
    factory = "create_app_with_worker" if with_worker else "create_app"
    uvicorn.run(f"finsync.api.app:{factory}", factory=True, host=host, port=port, **server_options())


def server_options() -> dict[str, Any]:
    """uvicorn options for finsync: the app itself decides which proxies to believe
    (FINSYNC_TRUSTED_PROXIES; uvicorn would trust loopback), logs every request through
    structlog with secrets redacted (uvicorn's access log prints query strings), and configures
    logging (JSON stays JSON)."""
    return {"proxy_headers": False, "access_log": False, "log_config": None, "server_header": False}


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Jobs run at once (FINSYNC_WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Run a job worker (PostgreSQL): syncs, the scheduler tick, expiry and the reaper. Start any
    number, on any number of machines; SIGTERM lets running jobs finish."""
    settings = load_settings()
    if settings.is_sqlite:
        fail("on SQLite jobs run inside `finsync serve`; a worker needs PostgreSQL", USAGE)
    require_service_secrets()
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
