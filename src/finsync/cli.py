"""The finsync command line: serve, migrate, and (later) import."""

from __future__ import annotations

from pathlib import Path

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


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API server."""
    import uvicorn

    uvicorn.run("finsync.api.app:create_app", factory=True, host=host, port=port, proxy_headers=True)
