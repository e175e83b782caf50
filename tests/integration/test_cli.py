"""The operator's command line against real databases (SQLite and PostgreSQL), through
typer's CliRunner: each command reads FINSYNC_* from the environment like a real run."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from finsync import bootstrap
from finsync.application.user_auth import Client
from finsync.bootstrap import build
from finsync.config import Settings
from finsync.domain.entities import AuthFlow, Connection, utcnow
from finsync.domain.enums import ConnectionStatus
from finsync.domain.errors import AuthenticationFailed
from finsync.infrastructure.security import FernetCipher
from tests.conftest import FAKE_FERNET_KEY, FAKE_JWT_SECRET, SHARED, empty_database, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.hashing import CheapArgon2
from tests.fakes.server import serve
from tests.fakes.trading212 import Trading212Store
from tests.fakes.trading212 import create_app as t212_app

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery staple"
# A Fernet key's first 16 bytes sign, the last 16 encrypt. Keys that share the first half let
# a token made with one pass the other's signature check and decrypt to garbage whenever the
# garbage happens to end in valid padding (~0.4 % of tokens): the test failed about once in
# 100 runs. These differ from the first byte.
OLD_KEY = base64.urlsafe_b64encode(b"1-fake-rotation-key-not-a-secret").decode()
NEW_KEY = base64.urlsafe_b64encode(b"2-fake-rotation-key-not-a-secret").decode()
LOST_KEY = base64.urlsafe_b64encode(b"0-fake-rotation-key-lost-forever").decode()
T212_KEY, T212_SECRET = "fake-t212-key-for-cli-tests", "fake-t212-secret-for-cli-tests"


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """FINSYNC_* for the commands; the database is emptied afterwards."""
    values = {
        "FINSYNC_DATABASE_URL": database_url,
        "FINSYNC_DATA_DIR": str(tmp_path),
        "FINSYNC_ENCRYPTION_KEYS": FAKE_FERNET_KEY,
        "FINSYNC_JWT_SECRET": FAKE_JWT_SECRET,
        "FINSYNC_LOG_LEVEL": "WARNING",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    # The commands build the production container, whose default hasher is full-cost Argon2id
    # (~0.25 s of CPU a hash); the same algorithm with the smallest parameters stands in, as
    # everywhere else in the suite (tests/integration/test_password_hashing.py has the real one).
    monkeypatch.setattr(bootstrap, "Argon2PasswordHasher", CheapArgon2)
    yield values
    asyncio.run(_empty(make_settings(database_url, tmp_path)))


async def _empty(settings: Settings) -> None:
    container = build(settings)
    await empty_database(container)
    await container.aclose()


CLI = Client.of("cli", None)


def _in_db(work: Any) -> Any:
    """Run ``work(container)`` against the commands' database (settings from the environment)."""

    async def run() -> Any:
        container = build(Settings(_env_file=None))  # type: ignore[call-arg]
        try:
            return await work(container)
        finally:
            await container.aclose()

    return asyncio.run(run())


def invoke(*args: str, input: str | None = None) -> Any:
    from finsync.cli import app

    return CliRunner().invoke(app, list(args), input=input)


def test_import_reports_what_the_api_reports(env: dict[str, str]) -> None:
    _in_db(lambda c: c.user_auth.register("cli@example.com", PASSWORD))
    statement = str(SHARED / "fixtures" / "ofx" / "fidelity.ofx")
    first = invoke("import", statement, "--user", "cli@example.com")
    again = invoke("import", statement, "--user", "cli@example.com")
    assert first.exit_code == 0, first.output
    # Holdings are replaced on every upload: both answers count all six, as the API's do.
    assert "holdings 6" in first.stdout
    assert "holdings 6" in again.stdout
    assert "transactions inserted 0" in again.stdout
    unknown = invoke("import", statement, "--user", "nobody@example.com")
    assert unknown.exit_code == 3
    assert unknown.stderr.strip() == "error: user nobody@example.com not found"
    missing = invoke("import", "/no/such/file.ofx", "--user", "cli@example.com")
    assert missing.exit_code == 2


def test_users_create_list_disable_and_enable(env: dict[str, str]) -> None:
    created = invoke("users", "create", "Ada@Example.com", "--password-stdin", input=f"{PASSWORD}\n")
    assert created.exit_code == 0, created.output
    prompted = invoke("users", "create", "bob@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output  # the prompt hides it
    again = invoke("users", "create", "ada@example.com", "--password-stdin", input=f"{PASSWORD}\n")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: a user with this email already exists")
    short = invoke("users", "create", "eve@example.com", "--password-stdin", input="short\n")
    assert short.exit_code == 1

    listed = invoke("users", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "ID", "STATUS", "CREATED", "CONNECTIONS"]
    assert [line.split()[0] for line in lines[1:]] == ["ada@example.com", "bob@example.com"]

    refresh = _in_db(lambda c: c.user_auth.login("ada@example.com", PASSWORD, CLI)).refresh_token
    assert invoke("users", "disable", "nobody@example.com").exit_code == 3
    assert invoke("users", "disable", "ada@example.com").exit_code == 0
    assert "disabled" in invoke("users", "list").stdout.splitlines()[1]
    statement = str(SHARED / "fixtures" / "ofx" / "fidelity.ofx")
    refused = invoke("import", statement, "--user", "ada@example.com")
    assert (refused.exit_code, "disabled" in refused.stderr) == (1, True)
    for attempt in (
        lambda c: c.user_auth.login("ada@example.com", PASSWORD, CLI),
        lambda c: c.user_auth.refresh(refresh, CLI),  # sessions ended with the disable
    ):
        with pytest.raises(AuthenticationFailed):
            _in_db(attempt)
    assert invoke("users", "enable", "ada@example.com").exit_code == 0
    assert _in_db(lambda c: c.user_auth.login("ada@example.com", PASSWORD, CLI)).access_token


def test_a_user_disabled_behind_the_cli_cannot_refresh(env: dict[str, str]) -> None:
    """Disabled by a direct database change (no sessions revoked): refresh still refuses."""
    from sqlalchemy import text

    _in_db(lambda c: c.user_auth.register("ada@example.com", PASSWORD))
    refresh = _in_db(lambda c: c.user_auth.login("ada@example.com", PASSWORD, CLI)).refresh_token

    async def disable(c: Any) -> None:
        async with c.engine.begin() as conn:
            await conn.execute(text("UPDATE users SET is_active = false"))

    _in_db(disable)
    with pytest.raises(AuthenticationFailed):
        _in_db(lambda c: c.user_auth.refresh(refresh, CLI))


async def _connection(container: Any, provider: str, credentials: bytes | None, **kw: Any) -> Connection:
    user = await container.user_auth.register(f"{provider}-{utcnow().timestamp()}@example.com", PASSWORD)
    connection = Connection(
        user_id=user.id,
        provider=provider,
        name="CLI",
        status=ConnectionStatus.ACTIVE,
        credentials=credentials,
        **kw,
    )
    async with container.uow() as uow:
        await uow.connections.add(connection)
        await uow.commit()
    return connection


def test_sync_runs_one_connection_in_the_foreground(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock()
    store = Trading212Store()
    store.seed(clock.now(), orders=6, dividends=2, transactions=2)
    with serve(t212_app(clock, api_key=T212_KEY, api_secret=T212_SECRET, store=store)) as url:
        monkeypatch.setenv("FINSYNC_TRADING212_LIVE_URL", url)
        cipher = FernetCipher([FAKE_FERNET_KEY])
        creds = cipher.encrypt({"api_key": T212_KEY, "api_secret": T212_SECRET})
        connection = _in_db(lambda c: _connection(c, "trading212", creds, environment="live"))
        result = invoke("sync", str(connection.id))
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0].startswith("sync run ")
    assert " succeeded in " in lines[0]
    filled = sum(1 for o in store.orders if o["order"]["status"] == "FILLED")
    assert f"transactions: inserted {filled + 4}, updated 0, unchanged 0, deleted 0" in lines
    assert "accounts: inserted 1, updated 0, unchanged 0" in lines
    assert invoke("sync", "0190aaaa-0000-7000-8000-000000000000").exit_code == 3
    assert invoke("sync", "not-a-uuid").exit_code == 2


def test_sync_that_fails_says_why_in_one_line_and_exits_1(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unreadable = FernetCipher([LOST_KEY]).encrypt({"api_key": "x", "api_secret": "y"})
    lost = _in_db(lambda c: _connection(c, "trading212", unreadable, environment="live"))
    result = invoke("sync", str(lost.id))
    assert result.exit_code == 1
    assert result.stderr == "error: stored credentials cannot be decrypted with the configured keys\n"
    clock = VirtualClock()
    with serve(t212_app(clock, api_key=T212_KEY, api_secret=T212_SECRET, store=Trading212Store())) as url:
        monkeypatch.setenv("FINSYNC_TRADING212_LIVE_URL", url)
        wrong = FernetCipher([FAKE_FERNET_KEY]).encrypt({"api_key": "fake-wrong-key", "api_secret": "no"})
        rejected = _in_db(lambda c: _connection(c, "trading212", wrong, environment="live"))
        result = invoke("sync", str(rejected.id))
    assert result.exit_code == 1
    line = result.stderr.splitlines()[-1]  # after the run's own (held) log lines
    assert line.startswith("error: sync run ")
    assert " failed: " in line
    assert result.stdout == ""
    assert "fake-wrong-key" not in result.output


def test_keys_rotate_re_encrypts_everything_with_the_newest_key(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = FernetCipher([OLD_KEY])
    monkeypatch.setenv("FINSYNC_ENCRYPTION_KEYS", OLD_KEY)

    async def seed(c: Any) -> tuple[Connection, Connection]:
        kept = await _connection(c, "trading212", old.encrypt({"api_key": "k", "api_secret": "s"}))
        lost = await _connection(c, "alpaca", FernetCipher([LOST_KEY]).encrypt({"key_id": "k"}))
        flow = AuthFlow(
            state_hash="f" * 64,
            user_id=kept.user_id,
            connection_id=kept.id,
            provider="schwab",
            expires_at=utcnow() + timedelta(minutes=10),
            flow_data=old.encrypt({"code_verifier": "fake-verifier"}),
        )
        async with c.uow() as uow:
            await uow.auth_flows.add(flow)
            await uow.commit()
        return kept, lost

    kept, lost = _in_db(seed)
    monkeypatch.setenv("FINSYNC_ENCRYPTION_KEYS", f"{NEW_KEY},{OLD_KEY}")
    result = invoke("keys", "rotate")
    assert result.exit_code == 1  # one value could not be read: the operator must know
    assert "re-encrypted 2 value(s)" in result.stdout
    assert f"unreadable connection {lost.id}" in result.stdout
    assert "1 value(s) cannot be decrypted" in result.stderr

    async def stored(c: Any) -> tuple[bytes | None, bytes | None, bytes | None]:
        async with c.uow() as uow:
            a, b = await uow.connections.get(kept.id), await uow.connections.get(lost.id)
            f = await uow.auth_flows.get_by_state_hash("f" * 64)
        return a.credentials, b.credentials, f.flow_data

    credentials, untouched, flow_data = _in_db(stored)
    new_only = FernetCipher([NEW_KEY])  # the old key can now be retired
    assert new_only.decrypt(credentials) == {"api_key": "k", "api_secret": "s"}
    assert new_only.decrypt(flow_data) == {"code_verifier": "fake-verifier"}
    assert untouched == lost.credentials
    again = invoke("keys", "rotate")
    assert "re-encrypted 2 value(s)" in again.stdout


def test_help_names_the_exit_codes() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit codes: 0 done; 1 failed" in text
    assert "2 usage error" in text
    assert "3 not found" in text
    assert "FILE" in invoke("import", "--help").stdout
    assert "EMAIL" in invoke("users", "disable", "--help").stdout


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
        for _ in range(2):
            result = invoke("migrate")
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
    result = invoke("worker")
    assert result.exit_code == 2
    assert "needs PostgreSQL" in result.output


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("FINSYNC_BASE_CURRENCY", "EURO", "error: FINSYNC_BASE_CURRENCY: "),
        (
            "FINSYNC_DATABASE_URL",
            "postgresql+asyncpg://finsync:fake-db-password@127.0.0.1:1/finsync",
            "error: FINSYNC_ENCRYPTION_KEYS and FINSYNC_JWT_SECRET must be set",
        ),
    ],
    ids=["bad-value", "missing-secrets"],
)
def test_market_data_refresh_with_a_bad_setting_is_one_line(
    setting: str, value: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("FINSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FINSYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(setting, value)
    result = invoke("market-data", "refresh")
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(expected)
    assert "fake-db-password" not in result.output


def test_a_setting_that_is_not_json_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'finsync.db'}")
    monkeypatch.setenv("FINSYNC_PROVIDERS", "{not json")
    result = invoke("users", "list")
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert result.exit_code == 1
    assert result.output == "error: FINSYNC_PROVIDERS: not valid JSON (see docs/configuration.md)\n"


def test_market_data_refresh_with_a_malformed_day_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINSYNC_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'finsync.db'}")
    result = invoke("market-data", "refresh", "--day", "2024-13-01")
    assert result.exit_code == 2
    assert result.output == "error: --day must be YYYY-MM-DD, not '2024-13-01'\n"
