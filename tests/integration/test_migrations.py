"""Upgrading keeps every row: a database with data at an old revision, migrated to head."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from finsync.cli import alembic_config
from finsync.infrastructure.db.engine import create_engine
from tests.conftest import PG_DSN, drop_database_later

pytestmark = pytest.mark.integration
USER, CONNECTION, ACCOUNT = (
    "01900000-0000-7000-8000-000000000001",
    "01900000-0000-7000-8000-000000000002",
    "01900000-0000-7000-8000-000000000003",
)
# Rows as revision 0003 stores them (ids written the way each database keeps UUIDs).
SEED = [
    "INSERT INTO users (id, email, password_hash, is_active, created_at) "
    "VALUES (:user, 'old@example.com', 'x', true, '2026-01-01 00:00:00+00:00')",
    "INSERT INTO connections (id, user_id, provider, name, status, state, created_at, updated_at) "
    "VALUES (:conn, :user, 'ofx', 'Statement files', 'active', '{}', "
    "'2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')",
    "INSERT INTO accounts (id, user_id, connection_id, provider_account_id, name, type, currency, "
    "balance, raw, created_at, updated_at) VALUES (:acct, :user, :conn, 'bank|1', 'Checking', "
    "'checking', 'USD', '10.00', '{}', '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')",
    "INSERT INTO balance_snapshots (id, user_id, account_id, source, taken_at, currency, balance) "
    "VALUES (:snap, :user, :acct, 'import', '2026-01-01 00:00:00+00:00', 'USD', '10.00')",
    "INSERT INTO transactions (id, user_id, account_id, provider_transaction_id, type, subtype, status, "
    "amount, currency, transaction_date, raw, content_hash) VALUES (:txn, :user, :acct, 'F1', "
    "'transfer', 'withdrawal', 'settled', '-1.00', 'USD', '2026-01-01', '{}', 'h')",
]
COUNTED = ("users", "connections", "accounts", "balance_snapshots", "transactions")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (each migration test builds its own history)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"finsync_migrations_{os.getpid()}"

    async def admin(sql: str) -> None:
        try:
            conn = await asyncpg.connect(f"{PG_DSN}/postgres", timeout=3)
        except OSError:
            pytest.skip("PostgreSQL not reachable")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_DSN.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    drop_database_later(name)


# The ids the seeding statements name (ACCOUNT doubles as a second user's id).
IDS = {"user": USER, "conn": CONNECTION, "acct": ACCOUNT, "other": ACCOUNT}
IDS |= {name: ACCOUNT[:-1] + digit for name, digit in (("snap", "4"), ("txn", "5"), ("acct2", "6"))}
IDS |= {"run": ACCOUNT[:-1] + "7", "instrument": ACCOUNT[:-1] + "7", "holding": ACCOUNT[:-1] + "8"}


@asynccontextmanager
async def _seeded(url: str, statements: list[str]) -> AsyncIterator[AsyncConnection]:
    """A transaction on ``url`` once ``statements`` ran, each given the ``IDS`` it names (as
    each database keeps UUIDs); committed when the block ends."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            uuid = (lambda v: v.replace("-", "")) if conn.dialect.name == "sqlite" else str
            for sql in statements:
                await conn.execute(text(sql), {k: uuid(v) for k, v in IDS.items() if f":{k}" in sql})
            yield conn
    finally:
        await engine.dispose()


async def _run(url: str, statements: list[str]) -> dict[str, int]:
    async with _seeded(url, statements) as conn:
        return {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in COUNTED}


def test_upgrading_a_database_with_data_keeps_every_row(empty_url: str) -> None:
    """Batch mode on SQLite rebuilds tables; with foreign keys enforced the rebuild of
    ``connections`` used to cascade into accounts and snapshots and delete them."""
    config = alembic_config(empty_url)
    command.upgrade(config, "0003")  # type: ignore[arg-type]
    assert asyncio.run(_run(empty_url, SEED)) == dict.fromkeys(COUNTED, 1)
    command.upgrade(config, "head")  # type: ignore[arg-type]
    assert asyncio.run(_run(empty_url, [])) == dict.fromkeys(COUNTED, 1)


async def _ibans(url: str) -> list[str | None]:
    async with _seeded(url, []) as conn:
        rows = await conn.execute(text("SELECT iban FROM accounts ORDER BY provider_account_id"))
        return [r for (r,) in rows]


def test_0012_reads_the_iban_the_bank_links_kept_in_raw(empty_url: str) -> None:
    """Accounts stored before the column get their IBAN from what GoCardless kept (normalised;
    a masked one stays empty), so a later Enable Banking connection is recognised."""
    config = alembic_config(empty_url)
    command.upgrade(config, "0011")  # type: ignore[arg-type]
    account = (
        "INSERT INTO accounts (id, user_id, connection_id, provider, provider_account_id, name, type, "
        "currency, raw, created_at, updated_at) VALUES ({id}, :user, :conn, 'gocardless', '{key}', 'A', "
        "'checking', 'EUR', '{raw}', '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
    )
    asyncio.run(
        _run(
            empty_url,
            [
                SEED[0],
                SEED[1].replace("'ofx'", "'gocardless'"),
                account.format(
                    id=":acct", key="a", raw='{"details": {"iban": "de89 3704 0044 0532 0130 00"}}'
                ),
                account.format(id=":acct2", key="b", raw='{"details": {"iban": "DE89****3000"}}'),
            ],
        )
    )
    command.upgrade(config, "0012")  # type: ignore[arg-type]
    assert asyncio.run(_ibans(empty_url)) == ["DE89370400440532013000", None]
    command.downgrade(config, "0011")  # type: ignore[arg-type]


async def _cash_flow(url: str) -> tuple[list[tuple[str, str, str, int]], set[str], int]:
    async with _seeded(url, []) as conn:
        rows = await conn.execute(
            text("SELECT grouping, currency, spending, count FROM cash_flow_days ORDER BY grouping")
        )
        sums = [(g, c, str(Decimal(str(s))), n) for g, c, s, n in rows]
        triggers = await _trigger_names(conn)
        marks = (await conn.execute(text("SELECT count(*) FROM cash_flow_dirty"))).scalar_one()
        return sums, triggers, marks


def test_0015_backfills_cash_flow_days_and_its_triggers_exist_at_head(empty_url: str) -> None:
    """Transactions stored before 0015 are summed by the migration (nothing left marked), and
    the triggers that mark written days exist at head (a SQLite table rebuild drops them)."""
    from finsync.infrastructure.db.cash_flow import TRIGGER_NAMES

    config = alembic_config(empty_url)
    command.upgrade(config, "0003")  # type: ignore[arg-type]
    asyncio.run(_run(empty_url, SEED))
    command.upgrade(config, "head")  # type: ignore[arg-type]
    sums, triggers, marks = asyncio.run(_cash_flow(empty_url))
    assert sums == [("a", "USD", "-1.00", 1), ("c", "USD", "-1.00", 1)]
    assert set(TRIGGER_NAMES) <= triggers
    assert marks == 0
    command.downgrade(config, "0014")  # type: ignore[arg-type]
    assert not set(TRIGGER_NAMES) & asyncio.run(_triggers(empty_url))


async def _triggers(url: str) -> set[str]:
    async with _seeded(url, []) as conn:
        return await _trigger_names(conn)


async def _trigger_names(conn: AsyncConnection) -> set[str]:
    if conn.dialect.name == "sqlite":
        names = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        names = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    return {n for (n,) in await conn.execute(text(names))}


async def _run_users(url: str, statements: list[str]) -> list[str]:
    async with _seeded(url, statements) as conn:
        rows = await conn.execute(text("SELECT user_id FROM sync_runs"))
        return [str(r).replace("-", "") for (r,) in rows]


HOLDINGS = [
    "INSERT INTO instruments (id, key, symbol, asset_type, symbols)"
    " VALUES (:instrument, 'ticker:ACME', 'ACME', 'equity', '{}')",
    "INSERT INTO prices (instrument_id, day, close, currency, source, adjusted) VALUES"
    " (:instrument, '2026-01-02', 10, 'USD', 'yahoo', false),"
    " (:instrument, '2026-01-05', 12.5, 'USD', 'yahoo', false)",
    "INSERT INTO holding_history (id, user_id, account_id, position_key, instrument_key, symbol, currency,"
    " asset_type, quantity, valid_from) VALUES (:holding, :user, :acct, 'ticker:ACME#0', 'ticker:ACME',"
    " 'ACME', 'USD', 'equity', 3, '2026-01-03')",
]
Move = tuple[str, str, str | None, int, int]


async def _moves(url: str, statements: list[str], read: bool = True) -> tuple[list[Move], set[str]]:
    """Run ``statements``; then the stored holding value moves and the triggers."""
    async with _seeded(url, statements) as conn:
        if not read:
            return [], set()
        rows = await conn.execute(
            text("SELECT currency, day, value, held, unpriced FROM holding_value_deltas ORDER BY day")
        )
        moves = [(c, str(d), None if v is None else str(Decimal(str(v))), h, u) for c, d, v, h, u in rows]
        return moves, await _trigger_names(conn)


def test_0018_gives_each_run_its_connection_s_owner_and_downgrades(empty_url: str) -> None:
    """A run naming another user than its connection's owner (possible before the composite
    key) is repaired, not lost; the downgrade restores the two keys and keeps the run."""
    config = alembic_config(empty_url)
    command.upgrade(config, "0017")  # type: ignore[arg-type]
    owner = USER.replace("-", "")
    seeded = asyncio.run(
        _run_users(
            empty_url,
            [
                SEED[0],
                SEED[0].replace(":user", ":other").replace("old@", "other@"),
                SEED[1],
                "INSERT INTO sync_runs (id, user_id, connection_id, trigger, status, started_at, "
                "counts, warnings) VALUES (:run, :other, :conn, 'manual', 'succeeded', "
                "'2026-01-01 00:00:00+00:00', '{}', '[]')",
            ],
        )
    )
    assert seeded == [ACCOUNT.replace("-", "")]
    command.upgrade(config, "0018")  # type: ignore[arg-type]
    assert asyncio.run(_run_users(empty_url, [])) == [owner]
    command.downgrade(config, "0017")  # type: ignore[arg-type]
    assert asyncio.run(_run_users(empty_url, [])) == [owner]
    command.upgrade(config, "head")  # type: ignore[arg-type]


def test_0019_backfills_holding_value_moves_and_its_triggers_keep_them(empty_url: str) -> None:
    """Holdings recorded before 0019 get their moves (PostgreSQL; SQLite values holdings in
    Python and keeps the table empty); at head a new close moves them; downgrade drops it all."""
    from finsync.infrastructure.db.holding_values import TRIGGER_NAMES

    config = alembic_config(empty_url)
    command.upgrade(config, "0003")  # type: ignore[arg-type]
    asyncio.run(_run(empty_url, SEED))
    command.upgrade(config, "0017")  # type: ignore[arg-type]
    asyncio.run(_moves(empty_url, HOLDINGS, read=False))
    command.upgrade(config, "head")  # type: ignore[arg-type]
    moves, triggers = asyncio.run(_moves(empty_url, []))
    if empty_url.startswith("sqlite"):
        assert moves == []
        assert not set(TRIGGER_NAMES) & triggers
        return
    assert moves == [("USD", "2026-01-03", "30", 1, 0), ("USD", "2026-01-05", "7.5", 0, 0)]
    assert set(TRIGGER_NAMES) <= triggers
    add = "INSERT INTO prices VALUES (:instrument, '2026-01-06', 12, 'USD', 'yahoo', false)"
    moves, _ = asyncio.run(_moves(empty_url, [add]))
    assert moves[-1] == ("USD", "2026-01-06", "-1.5", 0, 0)
    command.downgrade(config, "0018")  # type: ignore[arg-type]
    assert not set(TRIGGER_NAMES) & asyncio.run(_triggers(empty_url))


async def _category_names(url: str, statements: list[str]) -> list[str]:
    async with _seeded(url, statements) as conn:
        return list((await conn.execute(text("SELECT name FROM categories ORDER BY created_at"))).scalars())


def test_0020_renames_names_that_differ_only_in_case_then_refuses_them(empty_url: str) -> None:
    """Names that differ only in case (written by two requests at once before 0020) are told
    apart, the oldest keeping its name; at head the database refuses another one."""
    config = alembic_config(empty_url)
    command.upgrade(config, "0019")  # type: ignore[arg-type]
    add = (
        "INSERT INTO categories (id, user_id, name, kind, created_at) VALUES "
        "(:{0}, :user, '{1}', 'expense', '2026-01-0{2} 00:00:00+00:00')"
    )
    IDS.update({f"c{i}": ACCOUNT[:-2] + f"c{i}" for i in range(5)})  # ids named by the statements
    seeded = [
        SEED[0],
        add.format("c0", "Coffee", 1),
        add.format("c1", "COFFEE", 2),
        add.format("c2", "coffee", 3),
        add.format("c3", "Coffee (2)", 4),
    ]
    assert asyncio.run(_category_names(empty_url, seeded)) == ["Coffee", "COFFEE", "coffee", "Coffee (2)"]
    command.upgrade(config, "0020")  # type: ignore[arg-type]
    names = asyncio.run(_category_names(empty_url, []))
    assert names[0] == "Coffee"
    assert len({n.lower() for n in names}) == 4
    with pytest.raises(Exception, match=r"(?i)unique"):
        asyncio.run(_category_names(empty_url, [add.format("c4", "cOFFEE", 5)]))
    command.downgrade(config, "0019")  # type: ignore[arg-type]
    command.upgrade(config, "head")  # type: ignore[arg-type]
