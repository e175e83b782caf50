"""Read API speed against a real `finsync serve` process, as ratios to the framework's floor.

Builds one user with a big account (``--big`` rows), a 10-row account and, later, a third
account filled by a ``--import-rows`` import through the real write path (the one imports
and syncs use); starts the API with uvicorn as ``make run`` does; drives it with ``wrk``
(or, without it, a few client processes) and prints per request: requests/s, p50/p99
latency, the server's CPU ms per request (its own CPU time over the run, read from /proc,
so the load generator's cost is not in it) and the ratio to the floor (``/health/live``)
measured right after each of the request's runs (``Bench.measure``). The imported account
is read right after the import (no manual ``ANALYZE``; autovacuum is switched off for the
table so it cannot do it either) and again after a manual ``ANALYZE``.

    .venv/bin/python benchmarks/api_read.py [--backend postgresql|sqlite] [--big 1000000]

Before/after: ``--before-src OLD/src`` (``git archive`` of an older commit) serves the same
database from that tree too, measured back to back with this tree's server for every row
(the older code's import is simulated by writing one imported account without the
statistics refresh). ``--reuse`` (PostgreSQL) keeps the history a previous run built and
only redoes the imports. The machine is shared: compare ratios and figures from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from _pg import PG, fresh_database  # benchmarks/ is the script's directory
from finsync.api.pagination import encode_cursor
from finsync.bootstrap import Container, build
from finsync.cli import migrate_database
from finsync.config import Settings
from finsync.domain.entities import Account, BalanceSnapshot, Connection, SyncRun
from finsync.domain.enums import (
    AccountType,
    SnapshotSource,
    SyncStatus,
    SyncTrigger,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.ports import AccountFilter, PageRequest
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction
from finsync.domain.trading import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from finsync.domain.webhooks import Webhook, WebhookDelivery
from finsync.infrastructure.db import uow as uow_module
from finsync.infrastructure.db.tables import TransactionRow

DB = "finsync_bench_api_read"
FLOOR = "/health/live"  # routing, JSON and the production middleware: no auth, no database
STATS = "SELECT n_mod_since_analyze, last_analyze FROM pg_stat_user_tables WHERE relname = 'transactions'"
NAMES = ["big", "small", "imported", "imported_before"]
LEGS = ["transfers out", "transfers in"]
EMAIL, PASSWORD = "reader@example.com", "correct horse battery staple 42"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rows(prefix: str, count: int, start: int = 0) -> list[ProviderTransaction]:
    return [
        ProviderTransaction(
            provider_transaction_id=f"{prefix}{i}",
            type=TransactionType.OTHER,
            subtype=TransactionSubtype.OTHER,
            amount=Decimal(i % 100_000) / 100 - 500,
            currency="USD",
            transaction_date=date(2000, 1, 1) + timedelta(days=(i * 7919) % 9000),
            description=f"payee {i % 97} reference {i}",
            raw={"id": f"{prefix}{i}", "amount": str(Decimal(i % 100_000) / 100 - 500), "memo": "x" * 20},
        )
        for i in range(start, start + count)
    ]


async def fill(c: Container, account: Account, prefix: str, count: int, batch: int = 100_000) -> float:
    """``count`` rows into ``account`` through the repository, committed per ``batch``."""
    started = time.perf_counter()
    for start in range(0, count, batch):
        async with c.uow() as uow:
            await uow.transactions.upsert(account, rows(prefix, min(batch, count - start), start))
            await uow.commit()
    return time.perf_counter() - started


async def sql(c: Container, statement: str) -> list[Any]:
    from sqlalchemy import text

    async with c.uow() as uow:
        result = await uow.session.execute(text(statement))  # type: ignore[attr-defined]
        out = list(result) if result.returns_rows else []
        await uow.commit()
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, settings: Settings, src: str | None = None) -> None:
        self.port = free_port()
        self.env = os.environ | {
            "FINSYNC_DATABASE_URL": settings.database_url,
            "FINSYNC_ENCRYPTION_KEYS": settings.encryption_keys[0].get_secret_value(),
            "FINSYNC_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
            "FINSYNC_LOG_LEVEL": "WARNING",
        }
        if src:
            self.env["PYTHONPATH"] = src
        self.base = f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        cmd = [sys.executable, "-c", "from finsync.cli import app; app()", "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=self.env)  # noqa: ASYNC220 (our interpreter; quick)
        async with httpx.AsyncClient(base_url=self.base) as http:
            for _ in range(1200):  # a minute: on a loaded machine the import alone takes seconds
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not start")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        self.proc.wait(timeout=10)


def parse_ms(value: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if found is None:
        raise RuntimeError(f"wrk printed a latency I cannot read: {value!r}")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(url: str, token: str | None, seconds: float, connections: int) -> tuple[int, float, float, float]:
    """(requests, req/s, p50 ms, p99 ms) from one wrk run."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = parse_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return count, rps, p50, p99


def _client(url: str, token: str | None, seconds: float, connections: int, out: Any) -> None:
    async def go() -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        latencies: list[float] = []
        end = time.perf_counter() + seconds
        async with httpx.AsyncClient(headers=headers) as http:

            async def one() -> None:
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    (await http.get(url)).raise_for_status()
                    latencies.append(time.perf_counter() - t)

            await asyncio.gather(*(one() for _ in range(connections)))
        out.extend(latencies)

    asyncio.run(go())


def run_clients(
    url: str, token: str | None, seconds: float, connections: int
) -> tuple[int, float, float, float]:
    """The same figures from a few client processes (when wrk is not installed)."""
    import multiprocessing

    with multiprocessing.Manager() as manager:
        shared = manager.list()
        procs = [
            multiprocessing.Process(target=_client, args=(url, token, seconds, connections // 4, shared))
            for _ in range(4)
        ]
        started = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - started
        latencies = sorted(shared)
    count = len(latencies)
    return count, count / elapsed, latencies[count // 2] * 1000, latencies[int(count * 0.99)] * 1000


class Bench:
    def __init__(self, server: Server, seconds: float, connections: int, repeats: int) -> None:
        self.server, self.seconds, self.connections, self.repeats = server, seconds, connections, repeats
        self.floor: float | None = None
        self.rows: list[str] = []
        self.drive = run_wrk if shutil.which("wrk") else run_clients

    def measure(self, name: str, path: str, token: str | None) -> None:
        """Median over ``repeats`` runs of req/s, p50, p99 and server CPU per request; the
        first row measured is the floor. Every other run is followed by a shorter run of the
        floor, and the row's ratio is the median of each run's req/s over the floor's right
        after it: a shared machine's speed drifts by a third within a run (seen: the floor at
        3,000 and 6,000 req/s ten minutes apart), and a ratio to a floor measured minutes
        earlier carried that drift."""
        url = self.server.base + path
        self.drive(url, token, 1, self.connections)  # warm up (caches, prepared statements)
        figures, ratios = [], []
        for _ in range(self.repeats):
            cpu = cpu_seconds(self.server.proc.pid)
            count, rps, p50, p99 = self.drive(url, token, self.seconds, self.connections)
            figures.append((rps, p50, p99, (cpu_seconds(self.server.proc.pid) - cpu) / max(count, 1) * 1000))
            if self.floor is not None:
                self.settle()
                floor = self.drive(self.server.base + FLOOR, None, self.seconds / 2, self.connections)[1]
                ratios.append(rps / floor)
        rps, p50, p99, cpu_ms = (statistics.median(f[i] for f in figures) for i in range(4))
        if self.floor is None:
            self.floor = rps
        self.settle()
        ratio = statistics.median(ratios) if ratios else 1.0
        row = f"| {name:<44} | {rps:>8,.0f} | {p50:>7.2f} | {p99:>7.2f} | {cpu_ms:>6.2f} | {ratio:>5.2f} |"
        self.rows.append(row)
        print(row, flush=True)

    def settle(self, quiet: float = 0.02, most: float = 120) -> None:
        """Wait until the server has answered what the load generator gave up on (its CPU
        idle over half a second): with two servers measured back to back, one server's
        backlog must not be billed to the other."""
        end = time.monotonic() + most
        while time.monotonic() < end:
            cpu = cpu_seconds(self.server.proc.pid)
            time.sleep(0.5)
            if cpu_seconds(self.server.proc.pid) - cpu < quiet:
                return

    def table(self) -> None:
        print("| request | req/s | p50 ms | p99 ms | CPU ms/req | ratio to the floor after each run |")
        print("|---|---:|---:|---:|---:|---:|")
        print("\n".join(self.rows))


LIST_ROWS = 60  # more than a page of 50 of every list below (webhooks: at most 20 a user)


async def seed_lists(c: Container, user_id: Any, postgres: bool) -> dict[str, str]:
    """Every other list's rows for ``user_id``, made afresh (a reused database keeps none of
    them): the paths to read, by label. Two extra accounts hold transfer legs only."""
    async with c.uow() as uow:
        connection = (await uow.connections.find(user_id, PageRequest(limit=1))).items[0]
        accounts = (await uow.accounts.find(user_id, AccountFilter(), PageRequest(limit=50))).items
    big = next(a for a in accounts if a.name == "big")
    for table in ("transfer_links", "webhook_deliveries", "webhooks", "orders", "sync_runs", "holdings"):
        await sql(c, f"DELETE FROM {table}")
    await sql(c, f"DELETE FROM balance_snapshots WHERE account_id = '{big.id}'")
    await sql(c, "DELETE FROM accounts WHERE name LIKE 'list account %'")
    await sql(c, "DELETE FROM connections WHERE name LIKE 'list connection %'")
    legs_of = f"SELECT id FROM accounts WHERE name IN ('{LEGS[0]}', '{LEGS[1]}')"
    await sql(c, f"DELETE FROM transactions WHERE account_id IN ({legs_of})")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    legs = [
        ProviderAccount(provider_account_id=n, name=n, type=AccountType.CHECKING, currency="USD")
        for n in LEGS
    ]
    fill_up = 50 - len([a for a in accounts if a.name in NAMES]) - len(LEGS)  # a page of 50 accounts
    legs += [
        ProviderAccount(
            provider_account_id=f"list-{i}",
            name=f"list account {i}",
            type=AccountType.SAVINGS,
            currency="EUR",
        )
        for i in range(fill_up)
    ]
    async with c.uow() as uow:
        for i in range(49):  # a page of 50 connections
            await uow.connections.add(
                Connection(user_id=user_id, provider="bench", name=f"list connection {i}")
            )
        upserted = (await uow.accounts.upsert(connection, legs))[0]
        out_of, into = sorted((a for a in upserted if a.name in LEGS), key=lambda a: LEGS.index(a.name))
        for leg, sign in ((out_of, "-"), (into, "")):
            await uow.transactions.upsert(
                leg,
                [
                    ProviderTransaction(
                        provider_transaction_id=f"{leg.name}{i}",
                        type=TransactionType.TRANSFER,
                        subtype=TransactionSubtype.OTHER,
                        amount=Decimal(f"{sign}{100 + i}.25"),
                        currency="USD",
                        transaction_date=date(2025, 1, 1) + timedelta(days=3 * i),
                        description=f"transfer {i}",
                    )
                    for i in range(LIST_ROWS)
                ],
            )
        await uow.holdings.replace(
            big,
            [
                ProviderHolding(
                    symbol=f"SYM{i}", quantity=Decimal(i + 1), currency="USD", market_value=Decimal(i)
                )
                for i in range(LIST_ROWS)
            ],
        )
        await uow.snapshots.add_many(
            [
                BalanceSnapshot(
                    user_id=user_id,
                    account_id=big.id,
                    source=SnapshotSource.SCHEDULED,
                    currency="USD",
                    balance=Decimal(i),
                    taken_at=start + timedelta(hours=i),
                )
                for i in range(LIST_ROWS)
            ]
        )
        for i in range(LIST_ROWS):
            await uow.sync_runs.add(
                SyncRun(
                    user_id=user_id,
                    connection_id=connection.id,
                    trigger=SyncTrigger.SCHEDULED,
                    status=SyncStatus.SUCCEEDED,
                    started_at=start + timedelta(days=i),
                    finished_at=start + timedelta(days=i, seconds=5),
                    counts={"inserted": i, "updated": 0, "unchanged": 100},
                )
            )
            await uow.trading.add_order(
                Order(
                    user_id=user_id,
                    connection_id=connection.id,
                    account_id=big.id,
                    idempotency_key=f"bench-{i}",
                    request_digest="0" * 64,
                    symbol="AAPL",
                    side=OrderSide.BUY,
                    type=OrderType.MARKET,
                    time_in_force=TimeInForce.DAY,
                    currency="USD",
                    created_by="user",
                    quantity=Decimal(i + 1),
                    status=OrderStatus.FILLED,  # final: the order follower has nothing to ask a broker
                    filled_quantity=Decimal(i + 1),
                )
            )
        hooks = [
            Webhook(
                user_id=user_id, url=f"https://hooks.example.com/{i}", events=["sync.succeeded"], secret=b"x"
            )
            for i in range(20)
        ]
        for hook in hooks:
            await uow.webhooks.add(hook)
        await uow.webhooks.add_deliveries(
            [
                WebhookDelivery(
                    user_id=user_id, webhook_id=hooks[0].id, event="sync.succeeded", payload={"n": i}
                )
                for i in range(LIST_ROWS)
            ]
        )
        await uow.commit()
    print(f"lists: {LIST_ROWS} rows each; {await c.labels.detect(user_id)} transfers paired", flush=True)
    if postgres:
        await sql(c, "ANALYZE")
    return {
        "GET /accounts?limit=50": "/api/v1/accounts?limit=50",
        "GET /holdings?limit=50": "/api/v1/holdings?limit=50",
        "an account's balance snapshots, limit=50": f"/api/v1/accounts/{big.id}/balance-snapshots?limit=50",
        "GET /connections?limit=50": "/api/v1/connections?limit=50",
        "a connection's sync runs, limit=50": f"/api/v1/connections/{connection.id}/sync-runs?limit=50",
        "GET /orders?limit=50": "/api/v1/orders?limit=50",
        "GET /transfers?limit=50": "/api/v1/transfers?limit=50",
        "GET /webhooks (20, the most a user has)": "/api/v1/webhooks?limit=50",
        "a webhook's deliveries, limit=50": f"/api/v1/webhooks/{hooks[0].id}/deliveries?limit=50",
    }


async def _filled(rows: int) -> bool:
    """Whether a previous run left the benchmark database with a ``rows``-row account."""
    import asyncpg

    try:
        conn = await asyncpg.connect(f"{PG}/{DB}")
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM transactions t JOIN accounts a ON a.id = t.account_id WHERE a.name = 'big'"
        )
        return bool(count == rows)
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()


async def existing_database(name: str) -> Settings:
    url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    return Settings(
        _env_file=None,
        database_url=url,
        encryption_keys=["ZmFrZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQtMDAwMDA="],
        jwt_secret="fake-benchmark-jwt-secret-not-for-production",
        log_level="WARNING",
    )


async def login(base: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        answer = await http.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})
        answer.raise_for_status()
        return str(answer.json()["access_token"])


async def main(args: argparse.Namespace) -> None:
    reuse = args.reuse and args.backend == "postgresql" and await _filled(args.big)
    if args.backend == "postgresql":
        settings = await (existing_database(DB) if reuse else fresh_database(DB))
    else:
        folder = Path(tempfile.mkdtemp(prefix="finsync-bench-read-"))
        url = f"sqlite+aiosqlite:///{folder / 'finsync.db'}"
        await asyncio.to_thread(migrate_database, url)
        settings = Settings(
            _env_file=None,
            database_url=url,
            encryption_keys=["ZmFrZS10ZXN0LWtleS1ub3QtYS1zZWNyZXQtMDAwMDA="],
            jwt_secret="fake-benchmark-jwt-secret-not-for-production",
            log_level="WARNING",
        )
    c = build(settings)
    postgres = args.backend == "postgresql"
    try:
        if reuse:  # the history as a previous run left it; the imports are done again
            async with c.uow() as uow:
                user = await uow.users.get_by_email(EMAIL)
                assert user is not None
                accounts = (await uow.accounts.find(user.id, AccountFilter(), PageRequest(limit=10))).items
            took = 0.0
        else:
            user = await c.user_auth.register(EMAIL, PASSWORD)
            connection = Connection(user_id=user.id, provider="bench", name="bench")
            async with c.uow() as uow:
                await uow.connections.add(connection)
                accounts, _ = await uow.accounts.upsert(
                    connection,
                    [
                        ProviderAccount(
                            provider_account_id=n, name=n, type=AccountType.CHECKING, currency="USD"
                        )
                        for n in NAMES
                    ],
                )
                await uow.commit()
        big, small, imported, imported_before = sorted(
            (a for a in accounts if a.name in NAMES), key=lambda a: NAMES.index(a.name)
        )
        if reuse:
            await sql(
                c, f"DELETE FROM transactions WHERE account_id IN ('{imported.id}', '{imported_before.id}')"
            )
            await sql(c, "ANALYZE transactions")
        else:
            print(f"{args.backend}: filling {args.big:,} rows into one account ...", flush=True)
            took = await fill(c, big, "b", args.big)
            await fill(c, small, "s", 10)
        if postgres:
            # Steady state: autovacuum has analysed the history. Then switch it off so the
            # import below is read with whatever statistics the import itself left.
            await sql(c, "ANALYZE transactions")
            await sql(c, "ALTER TABLE transactions SET (autovacuum_enabled = false)")
        print(
            f"{'reused the history' if reuse else f'filled in {took:.0f} s'}; {args.seconds:g} s per run, "
            f"median of {args.repeats} runs, {args.connections} connections, "
            f"driver: {'wrk' if shutil.which('wrk') else 'clients'}\n"
        )
        # The cursor is the key of the row before the deep page: a full page follows it (past
        # the last row the page would be empty, and FastAPI's to answer).
        deep_at = min((args.deep_page - 1) * args.limit, args.big - args.limit) - 1
        deep_page = (deep_at + 1) // args.limit + 1
        t = TransactionRow.__table__.c  # type: ignore[attr-defined]
        async with c.uow() as uow:
            day, ident = (
                await uow.session.execute(  # type: ignore[attr-defined]
                    select(t.transaction_date, t.id)
                    .where(t.account_id == big.id)
                    .order_by(t.transaction_date.desc(), t.id.desc())
                    .offset(deep_at)
                    .limit(1)
                )
            ).one()
        key = (day, ident.hex)
        cursor = encode_cursor(("transactions", key[0].isoformat(), key[1]))  # the list, then its key
        limit = args.limit

        lists = await seed_lists(c, user.id, postgres)
        servers = [("after", None)] if not args.before_src else [("before", args.before_src), ("after", None)]
        benches: dict[str, Bench] = {}
        tokens: dict[str, str] = {}
        try:
            for name, src in servers:
                server = await Server(settings, src).__aenter__()
                benches[name] = Bench(server, args.seconds, args.connections, args.repeats)
                tokens[name] = await login(server.base)

            def measure(label: str, path: str, auth: bool = True, only: str | None = None) -> None:
                for name, bench in benches.items():  # back to back: the same noise for both
                    if only in (None, name):
                        bench.measure(label, path, tokens[name] if auth else None)

            measure("GET /health/live (floor)", FLOOR, auth=False)
            measure("GET /users/me", "/api/v1/users/me")
            measure(f"GET /transactions?limit={limit}", f"/api/v1/transactions?limit={limit}")
            page = f"/api/v1/accounts/{{}}/transactions?limit={limit}"
            measure(f"account {args.big:,} rows, page 1", page.format(big.id))
            measure(
                f"account {args.big:,} rows, page {deep_page:,}",
                page.format(big.id) + f"&cursor={cursor}",
            )
            measure("account of 10 rows, page 1", page.format(small.id))
            # Like for like: a page of the big account holding as many items as the small one's.
            measure(
                f"account {args.big:,} rows, page 1, limit=10",
                f"/api/v1/accounts/{big.id}/transactions?limit=10",
            )
            for label, path in lists.items():
                measure(label, path)
            right_after = f"{args.import_rows:,}-row import, right after"
            if "before" in benches:  # the code before: no statistics refresh after the import
                refresh, uow_module.ANALYZE_AFTER = uow_module.ANALYZE_AFTER, 10**18
                await fill(c, imported_before, "j", args.import_rows, batch=args.import_rows)
                uow_module.ANALYZE_AFTER = refresh
                measure(right_after, page.format(imported_before.id), only="before")
            took = await fill(c, imported, "i", args.import_rows, batch=args.import_rows)
            stats = await sql(c, STATS) if postgres else []
            measure(right_after, page.format(imported.id), only="after")
            await sql(c, "ANALYZE transactions" if postgres else "ANALYZE")
            after_analyze = f"{args.import_rows:,}-row import, after ANALYZE"
            if "before" in benches:
                measure(after_analyze, page.format(imported_before.id), only="before")
            measure(after_analyze, page.format(imported.id), only="after")
        finally:
            for bench in benches.values():
                await bench.server.__aexit__()
        for name, bench in benches.items():
            print(f"\n{args.backend}, {name}:\n")
            bench.table()
        print(f"\nimport of {args.import_rows:,} rows took {took:.1f} s", end="")
        if postgres:
            print(f"; right after it: n_mod_since_analyze={stats[0][0]:,}, last_analyze={stats[0][1]}")
            await sql(c, "ALTER TABLE transactions RESET (autovacuum_enabled)")
        else:
            print()
    finally:
        await c.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--big", type=int, default=None, help="rows of the big account (PG 1,000,000; SQLite 200,000)"
    )
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--deep-page", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--reuse", action="store_true", help="PostgreSQL: keep the history a previous run built (same --big)"
    )
    parser.add_argument(
        "--before-src", help="also serve from this source tree (an older commit's src/), measured alternately"
    )
    arguments = parser.parse_args()
    if arguments.big is None:
        arguments.big = 1_000_000 if arguments.backend == "postgresql" else 200_000
    asyncio.run(main(arguments))
