"""A self-hoster's first run, as a real process: a missing or bad setting is one line that says
what to set (never a traceback, never a secret), and log lines never cut through a progress bar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED, migrated_sqlite_file

pytestmark = pytest.mark.integration
FINSYNC = Path(sys.executable).parent / "finsync"
NOWHERE = "postgresql+asyncpg://finsync:fake-db-password@127.0.0.1:1/finsync"  # nothing listens on port 1
GOOD_KEY = "ZmFrZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQtMDAwMDA="
MISSING_BOTH = (
    "error: FINSYNC_ENCRYPTION_KEYS and FINSYNC_JWT_SECRET must be set when using PostgreSQL "
    "(see docs/configuration.md)\n"
)


def finsync(
    *args: str, cwd: Path, input: str | None = None, env: dict[str, str] | None = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    """``finsync *args`` as a process of its own, with only the given FINSYNC_* settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FINSYNC_")} | (env or {})
    environ |= {f"FINSYNC_{k.upper()}": v for k, v in settings.items()} | {
        "FINSYNC_DATA_DIR": str(cwd / "var")
    }
    return subprocess.run(
        [str(FINSYNC), *args], input=input, capture_output=True, text=True, env=environ, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "0"],
        ["import", str(SHARED / "fixtures" / "ofx" / "fidelity.ofx"), "--user", "ada@example.com"],
        ["keys", "rotate"],
    ],
    ids=lambda c: c[0],
)
def test_postgresql_without_secrets_says_what_to_set_in_one_line(command: list[str], tmp_path: Path) -> None:
    done = finsync(*command, cwd=tmp_path, database_url=NOWHERE)
    assert (done.returncode, done.stderr, done.stdout) == (1, MISSING_BOTH, "")


def test_help_needs_no_secrets(tmp_path: Path) -> None:
    done = finsync("serve", "--help", cwd=tmp_path, database_url=NOWHERE)
    assert done.returncode == 0
    assert "Run the API server" in done.stdout


def test_one_missing_secret_is_named_alone(tmp_path: Path) -> None:
    done = finsync("serve", "--port", "0", cwd=tmp_path, database_url=NOWHERE, encryption_keys=GOOD_KEY)
    assert done.returncode == 1
    assert done.stderr == (
        "error: FINSYNC_JWT_SECRET must be set when using PostgreSQL (see docs/configuration.md)\n"
    )


def test_a_key_that_is_not_a_fernet_key_is_named_by_position_not_value(tmp_path: Path) -> None:
    done = finsync(
        "users",
        "list",
        cwd=tmp_path,
        database_url=NOWHERE,
        encryption_keys=f"{GOOD_KEY},fake-not-a-fernet-key",
        jwt_secret="fake-jwt-secret-for-startup-tests-0000",
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: FINSYNC_ENCRYPTION_KEYS: key 2 is not a Fernet key "
        "(32 url-safe base64-encoded bytes; see docs/configuration.md)\n"
    )


def test_an_invalid_setting_is_one_line(tmp_path: Path) -> None:
    done = finsync("users", "list", cwd=tmp_path, registration="sometimes")
    assert done.returncode == 1
    assert done.stderr.startswith("error: FINSYNC_REGISTRATION: Input should be 'open' or 'first_user_only'")
    assert len(done.stderr.splitlines()) == 1


def test_migrate_against_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    done = finsync("migrate", cwd=tmp_path, database_url=NOWHERE)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        "error: cannot migrate the database at postgresql+asyncpg://finsync:***@127.0.0.1:1/"
    )
    assert "fake-db-password" not in done.stderr


def test_import_log_lines_wait_for_the_progress_bar_and_stay_off_stdout(tmp_path: Path) -> None:
    migrated_sqlite_file(tmp_path / "f.db")  # `finsync migrate` itself: test_packaging.py, test_cli.py
    sqlite = {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", "log_level": "INFO"}
    created = finsync(
        "users",
        "create",
        "ada@example.com",
        "--password-stdin",
        input="fake bar-test password\n",
        cwd=tmp_path,
        **sqlite,
    )
    assert created.returncode == 0, created.stderr
    statement = str(SHARED / "fixtures" / "ofx" / "fidelity.ofx")
    terminal = {"TTY_COMPATIBLE": "1", "FORCE_COLOR": "1"}  # rich draws the live bar as on a terminal
    done = finsync("import", statement, "--user", "ada@example.com", cwd=tmp_path, env=terminal, **sqlite)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout
        == "fidelity.ofx: 1 account(s); transactions inserted 17, already present 0, updated 0; holdings 6\n"
    )
    bar_done = done.stderr.rindex("\x1b[?25h")  # the live display gives the cursor back when it stops
    assert "done" in done.stderr[:bar_done]
    assert "file_imported" in done.stderr[bar_done:]
    assert "file_imported" not in done.stderr[:bar_done]
    assert "import_timing" not in done.stderr[:bar_done]


def test_start_up_leaves_the_exchange_and_flex_libraries_until_a_provider_needs_them() -> None:
    """ccxt (hundreds of exchange classes, ~1 s of CPU to import) and ibflex (~0.3 s) load when
    an exchange or an IBKR statement is first used: not in every `finsync` command, worker and
    API process at start-up, although the registry imports every provider package."""
    code = (
        "import sys, finsync.api.app, finsync.bootstrap, finsync.cli\n"
        "print(sorted(m for m in ('ccxt', 'ibflex') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["users", "list"]], ids=lambda c: c[0])
def test_a_refusal_comes_before_the_application_is_imported(command: list[str], tmp_path: Path) -> None:
    """Missing secrets are named before the app (about a second of CPU to import) is loaded."""
    code = (
        "import sys\n"
        "from finsync.cli import app\n"
        f"try:\n    app({command!r})\n"
        "except SystemExit as exit:\n"
        "    loaded = [m for m in ('finsync.bootstrap', 'finsync.api.app') if m in sys.modules]\n"
        "    print(exit.code, loaded)\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FINSYNC_")}
    environ |= {"FINSYNC_DATABASE_URL": NOWHERE, "FINSYNC_DATA_DIR": str(tmp_path / "var")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=60
    )
    assert (done.stdout, done.stderr) == ("1 []\n", MISSING_BOTH)
