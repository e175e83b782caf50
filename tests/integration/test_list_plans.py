"""Every list pages from an index in key order, in one statement (issue 16): a page costs the
same at any depth and whatever else the user holds. The repositories' own statements are
captured as sent and explained: on PostgreSQL with sorting and sequential scans priced out
(so a Sort in the plan means no index gives the order), on SQLite by its query plan (no
temporary B-tree)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from finsync.bootstrap import Container
from finsync.domain.categories import TransferStatus
from finsync.domain.entities import Account, BalanceSnapshot, Connection, SyncRun, User, new_id
from finsync.domain.enums import SnapshotSource, SyncStatus, SyncTrigger
from finsync.domain.ports import AccountFilter, Page, PageRequest, UnitOfWork
from finsync.domain.webhooks import Webhook, WebhookDelivery
from tests.conftest import api_client
from tests.factories import SEEDED_PASSWORD, account, holding, seed_connection, seed_order, seed_user, txn
from tests.sql import kept_plan, sent

pytestmark = pytest.mark.integration


def _unseeking(plan: str, *, cursor: bool) -> list[str]:
    """What in a PostgreSQL page ``plan`` (sorting and sequential scans priced out) shows the
    page not read from its index in key order: a Sort or a Seq Scan (no index gives the order),
    a Gather (parallel workers would not keep the order the page's aggregates take its rows in,
    ``written.folded``) and, past a ``cursor``, no Index Cond seeking it (a seek done by
    filtering what was read)."""
    found = [word for word in ("Sort", "Seq Scan", "Gather") if word in plan]
    seeks = any("Index Cond" in line and (" < " in line or " > " in line) for line in plan.splitlines())
    return found if seeks or not cursor else [*found, "no seek past the cursor"]


async def _plan(c: Container, uow: UnitOfWork, statement: str, parameters: Any) -> str:
    connection = await uow.session.connection()  # type: ignore[attr-defined]
    if c.engine.dialect.name == "postgresql":
        await connection.exec_driver_sql("SET LOCAL enable_sort = off")
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
    else:
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return "\n".join(str(r[-1]) for r in rows)


Lister = Callable[[UnitOfWork, PageRequest], Awaitable[Page[Any]]]


@dataclass
class Seeded:
    user: User
    conn: Connection
    accts: list[Account]
    hooks: list[Webhook]


async def _two_of_each(c: Container) -> Seeded:
    """Two rows of every list (a second page exists), for one user."""
    user = await seed_user(c)
    conn = await seed_connection(c, user)
    await seed_connection(c, user)  # connections list: two
    async with c.uow() as uow:
        accts, _ = await uow.accounts.upsert(conn, [account("a1"), account("a2")])
        await uow.holdings.replace(accts[0], [holding("VWRL"), holding("VUSA")])
        await uow.transactions.upsert(accts[0], [txn(f"o{i}", "-10", date(2026, 1, 1 + i)) for i in range(2)])
        await uow.transactions.upsert(accts[1], [txn(f"i{i}", "10", date(2026, 1, 1 + i)) for i in range(2)])
        start = datetime(2026, 1, 1, tzinfo=UTC)
        await uow.snapshots.add_many(
            [
                BalanceSnapshot(
                    user_id=user.id,
                    account_id=accts[0].id,
                    source=SnapshotSource.MANUAL,
                    currency="GBP",
                    balance=Decimal(i),
                    taken_at=start + timedelta(hours=i),
                )
                for i in range(2)
            ]
        )
        for _ in range(2):
            await uow.sync_runs.add(
                SyncRun(
                    user_id=user.id,
                    connection_id=conn.id,
                    trigger=SyncTrigger.MANUAL,
                    status=SyncStatus.SUCCEEDED,
                )
            )
        hooks = [
            Webhook(user_id=user.id, url=f"https://example.com/{i}", events=["sync.succeeded"], secret=b"x")
            for i in range(2)
        ]
        for hook in hooks:
            await uow.webhooks.add(hook)
        await uow.webhooks.add_deliveries(
            [
                WebhookDelivery(user_id=user.id, webhook_id=hooks[0].id, event="sync.succeeded", payload={})
                for _ in range(2)
            ]
        )
        await uow.commit()
    await seed_order(c, user.id, conn.id, accts[0].id)
    assert await c.labels.detect(user.id) == 2
    async with c.uow() as uow:  # a second order (seed_order's key is fixed)
        first = (await uow.trading.orders(user.id, PageRequest(limit=1))).items[0]
        first.id, first.idempotency_key = new_id(), "second"
        assert await uow.trading.add_order(first)
        await uow.commit()

    return Seeded(user, conn, accts, hooks)


async def test_every_list_pages_from_an_index_in_key_order(container: Container) -> None:
    c = container
    seeded = await _two_of_each(c)
    user, conn, accts, hooks = seeded.user, seeded.conn, seeded.accts, seeded.hooks
    lists: dict[str, Lister] = {
        "accounts": lambda u, p: u.accounts.find(user.id, AccountFilter(), p),
        "accounts of a connection": lambda u, p: u.accounts.find(
            user.id, AccountFilter(connection_id=conn.id), p
        ),
        "holdings": lambda u, p: u.holdings.find(user.id, None, p),
        "an account's holdings": lambda u, p: u.holdings.find(user.id, accts[0].id, p),
        "balance snapshots": lambda u, p: u.snapshots.find(user.id, accts[0].id, None, None, p),
        "connections": lambda u, p: u.connections.find(user.id, p),
        "sync runs": lambda u, p: u.sync_runs.find(user.id, conn.id, p),
        "orders": lambda u, p: u.trading.orders(user.id, p),
        "an account's orders": lambda u, p: u.trading.orders(user.id, p, account_id=accts[0].id),
        "transfers": lambda u, p: u.transfers.find(user.id, None, p),
        "transfers of a status": lambda u, p: u.transfers.find(user.id, TransferStatus.DETECTED, p),
        "webhooks": lambda u, p: u.webhooks.find(user.id, p),
        "deliveries": lambda u, p: u.webhooks.deliveries(user.id, hooks[0].id, p),
    }
    postgres = c.engine.dialect.name == "postgresql"
    for name, lister in lists.items():
        async with c.uow() as uow:
            first_page = await lister(uow, PageRequest(limit=1))
            assert first_page.next_key is not None, name  # two rows: a second page exists
            async with sent(c) as seen:
                second = await lister(uow, PageRequest(limit=1, after=first_page.next_key))
            assert len(second.items) == 1, name
            # One statement a page, whatever it holds (transfers looked their legs up one
            # link at a time: a 50-link page was 101 statements).
            assert len(seen) == 1, f"{name}: {[s for s, _ in seen]}"
            (statement, parameters), *_ = seen
            # The limit is in the text (PostgreSQL keeps one plan: see the last test).
            assert re.search(r"LIMIT \d+", statement), statement
            plan = await _plan(c, uow, statement, parameters)
            # PostgreSQL: a Sort or a Seq Scan despite their prices means no index gives the
            # order; SQLite: a temporary B-tree sorts, a SCAN reads the whole table.
            unwanted = ("Sort", "Seq Scan") if postgres else ("TEMP B-TREE", "SCAN ")
            found = [word for word in unwanted if word in plan.replace("SCAN CONSTANT", "")]
            assert not found, f"{name}:\n{statement}\n{plan}"


async def test_the_pages_postgresql_writes_seek_an_index_too(container: Container) -> None:
    """The fast lane's own page statements (``db/written.py``: the page, which asks whether the
    session is live too, on the driver pool) for the second page of every list it answers: no
    Sort, no Seq Scan, no Gather, the cursor sought in the index."""
    c = container
    if c.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL writes these pages")
    seeded = await _two_of_each(c)
    lists = [
        "/accounts",
        "/connections",
        "/holdings",
        "/orders",
        "/transfers",
        "/webhooks",
        "/transactions",
        f"/accounts/{seeded.accts[0].id}/holdings",
        f"/accounts/{seeded.accts[0].id}/balance-snapshots",
        f"/accounts/{seeded.accts[0].id}/transactions",
        f"/connections/{seeded.conn.id}/sync-runs",
        f"/webhooks/{seeded.hooks[0].id}/deliveries",
    ]
    async with api_client(c) as http:
        token = await http.post(
            "/api/v1/auth/token", data={"username": seeded.user.email, "password": SEEDED_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        admin = await asyncpg.connect(c.settings.database_url.replace("+asyncpg", ""))
        try:
            await admin.execute("SET enable_sort = off")
            await admin.execute("SET enable_seqscan = off")
            for path in lists:
                first = (await http.get(f"/api/v1{path}?limit=1", headers=headers)).json()
                async with sent(c) as lane:
                    answer = await http.get(
                        f"/api/v1{path}?limit=1&cursor={first['next_cursor']}", headers=headers
                    )
                assert answer.status_code == 200, answer.text
                # The page asks whether the session is live itself: one statement a page.
                assert len(lane) == 1, (path, lane)
                assert "auth_sessions" in lane[-1][0], (path, lane)
                for at, (query, args) in enumerate(lane):
                    plan = "\n".join(r[0] for r in await admin.fetch(f"EXPLAIN {query}", *args))
                    found = _unseeking(plan, cursor=at == 0)  # the page, past the first page's cursor
                    assert not found, f"{path}: {found}\n{query}\n{plan}"
        finally:
            await admin.close()


async def test_the_pages_postgresql_writes_keep_one_plan(container: Container) -> None:
    """PostgreSQL plans each of the lane's page statements once and reuses the plan (issue 16):
    planning one for the values cost as much CPU as running it. With the page's LIMIT passed
    as an argument it priced the reusable (generic) plan as reading a tenth of the table, and
    a cursor's ``(date, id) < ($n, $m)`` as reading a third of a big account, so it planned
    every execution anew. The LIMIT is in the text, and the driver pool's connections use the
    generic plan from the first run. Each statement of the first and second page of every
    list is prepared on a connection of the driver pool and run ten times;
    pg_prepared_statements counts the plans it used, and the generic plan of each is explained:
    it seeks the index as the plans made for the values do."""
    c = container
    if c.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL writes these pages")
    seeded = await _two_of_each(c)
    async with c.uow() as uow:  # enough rows that a plan priced for a tenth of them loses
        days = [date(2024, 1, 1) + timedelta(days=i % 700) for i in range(3000)]
        await uow.transactions.upsert(seeded.accts[0], [txn(f"m{i}", day=d) for i, d in enumerate(days)])
        await uow.commit()
    paths = [f"/accounts/{seeded.accts[0].id}/transactions", "/transactions", "/accounts", "/holdings"]
    paths += ["/orders", "/transfers", "/webhooks", f"/connections/{seeded.conn.id}/sync-runs"]
    paths += [f"/accounts/{seeded.accts[0].id}/balance-snapshots"]
    paths += [f"/webhooks/{seeded.hooks[0].id}/deliveries"]
    admin = await asyncpg.connect(c.settings.database_url.replace("+asyncpg", ""))
    try:
        await admin.execute("ANALYZE")
        async with api_client(c) as http:
            token = await http.post(
                "/api/v1/auth/token", data={"username": seeded.user.email, "password": SEEDED_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            pages: list[tuple[str, Any]] = []
            for path in paths:
                async with sent(c) as lane:
                    first = (await http.get(f"/api/v1{path}?limit=1", headers=headers)).json()
                    await http.get(f"/api/v1{path}?limit=1&cursor={first['next_cursor']}", headers=headers)
                pages += [(query, args) for query, args in lane if "LIMIT" in query]
        assert len(pages) == 2 * len(paths), pages
        assert c.reader is not None
        driver = await c.reader.acquire()
        try:
            kept = []  # asyncpg deallocates a statement nothing refers to
            for query, args in pages:
                assert "LIMIT $" not in query, query  # the limit is in the text, not an argument
                kept.append(await driver.prepare(query))
                for _ in range(10):
                    await kept[-1].fetch(*args)
            ours = {query for query, _ in pages}
            sql = "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            used = [row for row in await driver.fetch(sql) if row["statement"] in ours]
            # The plan kept is made without the values: it must seek the index as well as a
            # plan made for them does (sorting and sequential scans priced out, as above).
            await driver.execute("SET enable_sort = off; SET enable_seqscan = off")
            for at, (query, args) in enumerate(pages):
                plan = await kept_plan(driver, query, args)
                assert "$" in plan, plan  # a generic plan: the values are parameters in it
                found = _unseeking(plan, cursor=bool(at % 2))  # each list's second page has one
                assert not found, f"{found}\n{query}\n{plan}"
        finally:  # its settings changed: closed, not given back for another statement
            await c.reader.release(driver, lost=True)
        # The lane's own runs of them on this connection are there too (asyncpg's statement cache).
        assert {row["statement"] for row in used if row["generic_plans"] >= 10} == ours
        replanned = [(row["statement"], row["custom_plans"]) for row in used if row["custom_plans"]]
        assert not replanned, replanned
    finally:
        await admin.close()
