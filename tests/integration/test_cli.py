"""The command line against a real SQLite file: migrate, then import twice."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from finsync.bootstrap import build
from finsync.cli import app
from finsync.config import Settings
from tests.conftest import SHARED

pytestmark = pytest.mark.integration


async def _register(email: str) -> None:
    container = build(Settings())
    try:
        await container.auth.register(email, "fake-password-for-cli-test")
    finally:
        await container.aclose()


def test_cli_import_reports_what_the_api_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'finsync.db'}")
    monkeypatch.setenv("FINSYNC_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    asyncio.run(_register("cli@example.com"))
    statement = str(SHARED / "fixtures" / "ofx" / "fidelity.ofx")
    first = runner.invoke(app, ["import", statement, "--user", "cli@example.com"])
    again = runner.invoke(app, ["import", statement, "--user", "cli@example.com"])
    assert first.exit_code == 0, first.output
    # Holdings are replaced on every upload: both answers count all six, as the API's do.
    assert "holdings 6" in first.output
    assert "holdings 6" in again.output
    assert "transactions inserted 0" in again.output
    unknown = runner.invoke(app, ["import", statement, "--user", "nobody@example.com"])
    assert unknown.exit_code != 0


def test_migrate_installs_the_job_queue_once(
    monkeypatch: pytest.MonkeyPatch, pg_database: str | None
) -> None:
    """PostgreSQL: one command migrates finsync and installs procrastinate's schema; again is a no-op."""
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable")
    name = f"finsync_cli_migrate_{os.getpid()}"
    admin = pg_database.rsplit("/", 1)[0].replace("+asyncpg", "") + "/postgres"

    async def execute(dsn: str, sql: str) -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    asyncio.run(execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        monkeypatch.setenv("FINSYNC_DATABASE_URL", pg_database.rsplit("/", 1)[0] + f"/{name}")
        runner = CliRunner()
        for _ in range(2):
            result = runner.invoke(app, ["migrate"])
            assert result.exit_code == 0, result.output
        dsn = admin.rsplit("/", 1)[0] + f"/{name}"
        assert (
            asyncio.run(execute(dsn, "SELECT to_regclass('procrastinate_jobs')::text"))
            == "procrastinate_jobs"
        )
    finally:
        asyncio.run(execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_worker_needs_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'finsync.db'}")
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "needs PostgreSQL" in result.output
