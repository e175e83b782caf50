"""Analytics benchmark: ``python benchmarks/analytics.py [--transactions N] [--backend pg|sqlite|both]``.

Builds the issue's data shapes for one user — 50 accounts in 3 currencies (EUR, USD, GBP),
a balance snapshot per account per day for 10 years, 1,000,000 transactions over those
years (a third categorised, 2% own transfers linked), daily ECB fixings, and 5 brokerage
accounts whose holdings (8 positions each) were recorded for the last 2 years with daily
closes — written in bulk straight into the tables, then times each analytics endpoint
through the HTTP API (in-process ASGI, server time including JSON): median of RUNS after
a warm-up. Targets (issue #15, PostgreSQL): history <= 100 ms, cash flow <= 300 ms.

Beside the wall time each line gives the request's Python CPU time and, on PostgreSQL on
this machine, the CPU time of the database backends that served it: on a shared machine
those are the steady figures. ``--keep`` leaves the PostgreSQL database in place and
``--reuse`` times against it without loading again (compare two versions of the code back
to back on the same data: ``PYTHONPATH=/other/checkout/src python analytics.py --reuse``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uuid_utils

from _pg import PG, fresh_database
from finsync.api.app import create_app
from finsync.bootstrap import build
from finsync.cli import migrate_database
from finsync.config import Settings
from finsync.domain.market import is_fixing_day
from finsync.infrastructure.db.net_worth import deltas_of

RUNS = 7
ONLY: list[str] = []
DB = os.environ.get("FINSYNC_BENCH_ANALYTICS_DB", "finsync_bench_analytics")
END = date(2026, 6, 30)
START = END - timedelta(days=3652)
CURRENCIES = ("EUR", "USD", "GBP")
ACCOUNTS, BROKERAGES, POSITIONS = 50, 5, 8
HOLDING_DAYS = 730
PASSWORD = "fake-benchmark-password"


def uid() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


class Shapes:
    """Every row, generated once (deterministic), in column order for both databases."""

    def __init__(
        self, user_id: uuid.UUID, connection_id: uuid.UUID, transactions: int, seed: int = 15
    ) -> None:
        rng = random.Random(seed)
        self.user_id, self.connection_id = user_id, connection_id
        days = (END - START).days + 1
        self.days = [START + timedelta(days=i) for i in range(days)]
        now = datetime(2026, 7, 1, tzinfo=UTC)
        self.accounts = []
        for i in range(ACCOUNTS):
            kind = "brokerage" if i < BROKERAGES else ("credit_card" if i % 10 == 9 else "checking")
            self.accounts.append((uid(), f"acc-{i}", f"Account {i}", kind, CURRENCIES[i % 3]))
        self.account_rows = [
            (a, user_id, connection_id, "bench", pid, name, kind, cur, None, Decimal(1000), None, None, None,
             now, "{}", now, now)
            for a, pid, name, kind, cur in self.accounts
        ]  # fmt: skip
        self.snapshots = []
        for a, _, _, kind, cur in self.accounts:
            balance = Decimal(rng.randint(1_000, 50_000))
            for d in self.days:
                balance += Decimal(rng.randint(-2_000, 2_100)) / 10
                taken = datetime(d.year, d.month, d.day, 6, tzinfo=UTC)
                cash = balance / 4 if kind == "brokerage" else None
                self.snapshots.append(
                    (uid(), user_id, a, None, "scheduled", taken, cur, balance, None, cash, None)
                )
        kinds = {a: kind for a, _, _, kind, _ in self.accounts}
        self.deltas = [
            (d["user_id"], d["currency"], d["day"], d["liability"], d["delta"])
            for d in deltas_of((user_id, s[2], s[6], s[5], s[7], kinds[s[2]]) for s in self.snapshots)
        ]  # what the sync path keeps in step with every snapshot
        self.categories = [(uid(), user_id, None, f"Category {i}", "expense", now) for i in range(20)]
        payees = [f"PAYEE {i:03d} / memo {i % 7}" for i in range(300)]
        self.transactions = []
        per_account = transactions // ACCOUNTS
        for a, _, _, _, cur in self.accounts:
            for n in range(per_account):
                d = self.days[n * days // per_account]
                amount = Decimal(rng.randint(-30_000, 12_000)) / 100
                category = self.categories[n % 20][0] if n % 3 == 0 else None
                kind = "income" if n % 50 == 0 else ("trade" if n % 97 == 0 else "other")
                subtype = "dividend" if kind == "income" else ("buy" if kind == "trade" else "purchase")
                self.transactions.append(
                    (uid(), user_id, a, f"t{n}", kind, subtype, "settled", amount, cur, d, None,
                     "SYM" if kind != "other" else None, None, None, None, payees[n % 300], "{}",
                     f"h{n}", category, "rule" if category else None)
                )  # fmt: skip
        outs = [t for t in self.transactions[: len(self.transactions) // 50] if t[7] < 0]
        self.links = [
            (uid(), user_id, t[0], self.transactions[-1 - i][0], "detected", now) for i, t in enumerate(outs)
        ]
        self.fixings = [
            (
                c,
                d,
                Decimal("1.1") + Decimal(rng.randint(-500, 500)) / 10_000 if c == "USD" else Decimal("0.85"),
                "ecb",
                now,
            )
            for d in self.days
            if is_fixing_day(d)
            for c in ("USD", "GBP")
        ]
        self.instruments, self.prices, self.history = [], [], []
        held_from = END - timedelta(days=HOLDING_DAYS)
        for b in range(BROKERAGES):
            account_id, _, _, _, _ = self.accounts[b]
            for p in range(POSITIONS):
                key = f"ticker:B{b}P{p}"
                iid = uid()
                self.instruments.append(
                    (iid, key, f"B{b}P{p}", None, None, None, None, "equity", "USD", "{}", held_from)
                )
                price = Decimal(rng.randint(50, 500))
                for d in self.days:
                    if d >= held_from and d.weekday() < 5:
                        price += Decimal(rng.randint(-100, 100)) / 100
                        self.prices.append((iid, d, max(price, Decimal(1)), "USD", "yahoo", False))
                qty = Decimal(rng.randint(1, 100))
                for k, start in enumerate((held_from, held_from + timedelta(days=365))):
                    end = held_from + timedelta(days=365) if k == 0 else None
                    self.history.append(
                        (uid(), user_id, account_id, f"{key}#0", key, f"B{b}P{p}", "USD", "equity",
                         qty + k, start, end)
                    )  # fmt: skip


TABLES: dict[str, tuple[str, ...]] = {
    "accounts": (
        "id",
        "user_id",
        "connection_id",
        "provider",
        "provider_account_id",
        "name",
        "type",
        "currency",
        "institution",
        "balance",
        "available_balance",
        "cash_value",
        "holdings_value",
        "balance_at",
        "raw",
        "created_at",
        "updated_at",
    ),
    "balance_snapshots": (
        "id",
        "user_id",
        "account_id",
        "sync_run_id",
        "source",
        "taken_at",
        "currency",
        "balance",
        "available_balance",
        "cash_value",
        "holdings_value",
    ),
    "net_worth_deltas": ("user_id", "currency", "day", "liability", "delta"),
    "categories": ("id", "user_id", "parent_id", "name", "kind", "created_at"),
    "transactions": (
        "id",
        "user_id",
        "account_id",
        "provider_transaction_id",
        "type",
        "subtype",
        "status",
        "amount",
        "currency",
        "transaction_date",
        "settlement_date",
        "symbol",
        "quantity",
        "unit_price",
        "fees",
        "description",
        "raw",
        "content_hash",
        "category_id",
        "category_set_by",
    ),
    "transfer_links": ("id", "user_id", "outflow_id", "inflow_id", "status", "created_at"),
    "fx_rates": ("currency", "day", "rate", "source", "fetched_at"),
    "instruments": (
        "id",
        "key",
        "symbol",
        "isin",
        "cusip",
        "exchange",
        "name",
        "asset_type",
        "currency",
        "symbols",
        "backfilled_from",
    ),
    "prices": ("instrument_id", "day", "close", "currency", "source", "adjusted"),
    "holding_history": (
        "id",
        "user_id",
        "account_id",
        "position_key",
        "instrument_key",
        "symbol",
        "currency",
        "asset_type",
        "quantity",
        "valid_from",
        "valid_to",
    ),
}


def _rows(shapes: Shapes) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    yield "accounts", shapes.account_rows
    yield "balance_snapshots", shapes.snapshots
    yield "net_worth_deltas", shapes.deltas
    yield "categories", shapes.categories
    yield "transactions", shapes.transactions
    yield "transfer_links", shapes.links
    yield "fx_rates", shapes.fixings
    yield "instruments", shapes.instruments
    yield "prices", shapes.prices
    yield "holding_history", shapes.history


async def _register(client: httpx.AsyncClient) -> tuple[dict[str, str], uuid.UUID]:
    """Register the benchmark's user (or, on a reused database, log the existing one in)."""
    await client.post("/api/v1/users", json={"email": "bench@example.com", "password": PASSWORD})
    form = {"username": "bench@example.com", "password": PASSWORD}
    token = (await client.post("/api/v1/auth/token", data=form)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    return headers, uuid.UUID(me["id"])


async def _database_cpu(settings: Settings) -> float:
    """Seconds of CPU the PostgreSQL backends serving the benchmark's database have used (from
    /proc: PostgreSQL on this machine); 0 on SQLite or when /proc cannot tell. On a machine
    shared with others, wall times swing with the load; CPU time is what a request costs."""
    if not settings.database_url.startswith("postgresql"):
        return 0.0
    name = settings.database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
        pids = [r["pid"] for r in rows]
    finally:
        await admin.close()
    return sum(map(_schedstat, pids))


def _schedstat(pid: int) -> float:
    """A process's time on a CPU (seconds, ns resolution), or 0 when /proc cannot tell."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


async def _first_category(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    categories = (await client.get("/api/v1/categories", headers=headers)).json()
    return str(next(c["id"] for c in categories if c["name"] == "Category 0"))


async def _seventh_account(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    found = (await client.get("/api/v1/accounts", headers=headers, params={"limit": "100"})).json()
    items = found["items"] if isinstance(found, dict) else found
    return str(next(a["id"] for a in items if a["name"] == "Account 7"))


async def load_postgres(url: str, shapes: Shapes) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(
            "INSERT INTO connections (id, user_id, provider, name, status, state, created_at, updated_at)"
            " VALUES ($1, $2, 'bench', 'bench', 'active', '{}', now(), now())",
            shapes.connection_id,
            shapes.user_id,
        )
        for table, rows in _rows(shapes):
            await conn.copy_records_to_table(table, records=rows, columns=TABLES[table])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_sqlite(path: str, shapes: Shapes) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(
            "INSERT INTO connections (id, user_id, provider, name, status, state, created_at, updated_at)"
            " VALUES (?, ?, 'bench', 'bench', 'active', '{}', ?, ?)",
            (shapes.connection_id.hex, shapes.user_id.hex, "2026-07-01 00:00:00", "2026-07-01 00:00:00"),
        )
        for table, rows in _rows(shapes):
            columns = TABLES[table]
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            db.executemany(sql, ([_sqlite_value(v) for v in row] for row in rows))
        db.commit()
        db.execute("ANALYZE")
    finally:
        db.close()


ENDPOINTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("net worth history, 10 y daily", "/api/v1/net-worth/history", {"from": str(START), "to": str(END)}),
    (
        "net worth history, 10 y monthly",
        "/api/v1/net-worth/history",
        {"from": str(START), "to": str(END), "interval": "month"},
    ),
    (
        "cash flow, 10 y by category",
        "/api/v1/analytics/cash-flow",
        {"from": str(START), "to": str(END), "group_by": "category"},
    ),
    (
        "cash flow, 1 y by payee",
        "/api/v1/analytics/cash-flow",
        {"from": str(END - timedelta(days=365)), "to": str(END), "group_by": "payee"},
    ),
    ("net worth now", "/api/v1/net-worth", {}),
    (
        "income, 10 y by symbol",
        "/api/v1/analytics/income",
        {"from": str(START), "to": str(END), "interval": "year", "group_by": "symbol"},
    ),
    (
        "performance, all accounts 1 y",
        "/api/v1/analytics/performance",
        {"from": str(END - timedelta(days=365)), "to": str(END)},
    ),
    ("transactions by category, page 1", "/api/v1/transactions", {"limit": "50"}),
)


async def _sum_cash_flow_days(container: Any, user_id: uuid.UUID) -> bool:
    """The bulk load wrote straight into the tables (the triggers marked every day): recompute
    the daily sums as the migration's backfill does. False on code without them (a "before" run)."""
    try:
        from finsync.infrastructure.db.cash_flow import mark_written
    except ImportError:
        return False
    async with container.uow() as uow:
        mark_written(uow.session, [user_id])
        await uow.commit()
    return True


async def measure(settings: Settings, shapes_for: Any, label: str, load: Any) -> dict[str, float]:
    container = build(settings, clock=lambda: datetime(2026, 7, 1, 12, tzinfo=UTC))
    transport = httpx.ASGITransport(app=create_app(container=container))
    results = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
        headers, user_id = await _register(client)
        if load is None:  # --reuse: the data of an earlier --keep run
            category = await _first_category(client, headers)
            shapes = None
        else:
            started = time.perf_counter()
            shapes = shapes_for(user_id)
            print(f"[{label}] generated the data in {time.perf_counter() - started:.1f} s", flush=True)
            started = time.perf_counter()
            await load(shapes)
            print(
                f"[{label}] loaded {len(shapes.transactions):,} transactions, "
                f"{len(shapes.snapshots):,} snapshots, "
                f"{len(shapes.prices):,} closes in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            started = time.perf_counter()
            if await _sum_cash_flow_days(container, user_id):
                print(
                    f"[{label}] cash flow's daily sums in {time.perf_counter() - started:.1f} s", flush=True
                )
            category = str(shapes.categories[0][0])
        for name, path, params in ENDPOINTS:
            if ONLY and not any(o in name for o in ONLY):
                continue
            if path == "/api/v1/transactions":
                params = {**params, "category_id": category}
            timings, cpu, db_cpu = [], [], []
            for run in range(RUNS + 1):
                d = await _database_cpu(settings)
                t, c = time.perf_counter(), time.process_time()
                r = await client.get(path, headers=headers, params=params)
                if run:  # the first is a warm-up
                    timings.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                    db_cpu.append(await _database_cpu(settings) - d)
                assert r.status_code == 200, r.text
            median = statistics.median(timings) * 1000
            results[name] = median
            server = f", PostgreSQL CPU {statistics.median(db_cpu) * 1000:.1f} ms" if any(db_cpu) else ""
            print(
                f"[{label}] {name:<36} {median:8.1f} ms  (Python CPU {statistics.median(cpu) * 1000:.1f} ms"
                f"{server}, {len(r.content):,} bytes, sha1 {hashlib.sha1(r.content).hexdigest()[:10]})",
                flush=True,
            )
        if shapes is None:
            account = await _seventh_account(client, headers)
        else:
            account = str(shapes.accounts[7][0])
        if ONLY and not any(o in "reconciliation, 10 y" for o in ONLY):
            await container.aclose()
            return results
        timings = []
        for _ in range(RUNS):
            t = time.perf_counter()
            r = await client.get(f"/api/v1/accounts/{account}/reconciliation", headers=headers,
                                 params={"from": str(START), "to": str(END)})  # fmt: skip
            timings.append(time.perf_counter() - t)
        results["reconciliation, 10 y"] = statistics.median(timings) * 1000
        print(f"[{label}] {'reconciliation, 10 y':<36} {results['reconciliation, 10 y']:8.1f} ms", flush=True)
    await container.aclose()
    return results


async def main(transactions: int, backend: str, keep: bool = False, reuse: bool = False) -> None:
    if backend in ("pg", "both") and reuse:  # time only, on the database an earlier --keep left
        url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{DB}"
        await asyncio.to_thread(migrate_database, url)
        settings = Settings(_env_file=None, database_url=url, log_level="WARNING",
                            encryption_keys=["ZmFrZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQtMDAwMDA="],
                            jwt_secret="fake-benchmark-jwt-secret-not-for-production")  # fmt: skip
        await measure(settings, None, "PostgreSQL", None)
        return
    if backend in ("pg", "both"):
        settings = await fresh_database(DB)

        def pg_shapes(user_id: uuid.UUID) -> Shapes:
            return Shapes(user_id, uid(), transactions)

        await measure(settings, pg_shapes, "PostgreSQL", lambda s: load_postgres(settings.database_url, s))
        if not keep:
            admin = await asyncpg.connect(f"{PG}/postgres")
            await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
            await admin.close()
    if backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "bench.db")
            url = f"sqlite+aiosqlite:///{path}"
            await asyncio.to_thread(migrate_database, url)
            settings = Settings(
                _env_file=None,
                database_url=url,
                data_dir=Path(tmp),
                log_level="WARNING",
            )
            await measure(
                settings,
                lambda user_id: Shapes(user_id, uid(), transactions),
                "SQLite",
                lambda s: asyncio.to_thread(load_sqlite, path, s),
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("pg", "sqlite", "both"), default="both")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database (profiling)")
    parser.add_argument("--reuse", action="store_true", help="time only, on the database --keep left (pg)")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--only", action="append", default=[], help="time only endpoints naming this")
    args = parser.parse_args()
    RUNS, ONLY = args.runs, args.only
    asyncio.run(main(args.transactions, args.backend, args.keep, args.reuse))
