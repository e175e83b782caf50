"""The command line against a real SQLite file: migrate, then import twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
