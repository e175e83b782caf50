"""The read path's promises (issue 16), as behaviour: what the page query selects and how the
database plans it, one session per request, statistics refreshed after bulk writes, and a
dead pooled connection retried for a read only. Timings live in benchmarks/api_read.py."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest
from sqlalchemy import bindparam, event, func, select, text, update
from sqlalchemy.exc import DBAPIError

from finsync.api.analytics_schemas import TransactionOut
from finsync.api.listing import transactions_body, transactions_body_of
from finsync.bootstrap import Container
from finsync.domain.entities import Account, User
from finsync.domain.ports import PageRequest, TransactionFilter
from finsync.infrastructure.db import raw
from finsync.infrastructure.db.engine import create_engine
from finsync.infrastructure.db.raw import LOST_CONNECTION
from finsync.infrastructure.db.repositories.transactions import listed_query, listed_sql
from finsync.infrastructure.db.tables import TransactionRow
from finsync.infrastructure.db.types import UTCDateTime, json_dumps
from finsync.infrastructure.db.uow import ANALYZE_AFTER
from finsync.providers.registry import ProviderRegistry
from tests.api.helpers import register_and_login
from tests.conftest import PG_DSN, api_client, built, make_settings
from tests.factories import account, seed_connection, seed_user, txn
from tests.sql import driver_checkouts, kept_plan, statements, terminate_backend

pytestmark = pytest.mark.integration
transactions = TransactionRow.__table__  # type: ignore[attr-defined]


async def _accounts(c: Container, user: User, *names: str) -> list[Account]:
    conn = await seed_connection(c, user)
    async with c.uow() as uow:
        found, _ = await uow.accounts.upsert(conn, [account(n) for n in names])
        await uow.commit()
    by_name = {a.provider_account_id: a for a in found}
    return [by_name[n] for n in names]


async def _fill(c: Container, acct: Account, prefix: str, count: int) -> None:
    start = date(2020, 1, 1)
    rows = [txn(f"{prefix}{i}", day=start + timedelta(days=i % 2000)) for i in range(count)]
    async with c.uow() as uow:
        await uow.transactions.upsert(acct, rows)
        await uow.commit()


def _postgres(c: Container) -> None:
    if c.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL behaviour")


async def test_page_query_selects_the_response_columns_and_raw_as_text(container: Container) -> None:
    user = await seed_user(container)
    (acct,) = await _accounts(container, user, "a")
    await _fill(container, acct, "t", 3)
    postgres = container.engine.dialect.name == "postgresql"
    # A use case's unit of work takes SQLAlchemy's path; a request's read one, on PostgreSQL,
    # the statement written for asyncpg (listed_sql): both select the same.
    for factory, fast in ((container.uow, False), (container.read_uow, postgres)):
        async with statements(container) as seen, factory() as uow:
            page = await uow.transactions.listed(
                user.id, TransactionFilter(account_id=acct.id), PageRequest()
            )
        (sql,) = [s for s in seen if "FROM transactions" in s]
        selected = re.split(r"\sFROM\s", sql, maxsplit=1)[0]
        for unneeded in ("content_hash", "tags_set_by", "user_id"):  # stored, never answered
            assert unneeded not in selected
        assert not re.search(r"\braw,", selected)  # never the decoded JSON ...
        assert ("raw::text AS raw_json" in selected) == fast  # ... but its text
        assert ("CAST(transactions.raw AS" in selected) != fast
        assert len(page.items) == 3
        assert all(isinstance(t.raw_json, str) for t in page.items)  # passed through, never decoded
        assert {json.loads(t.raw_json)["id"] for t in page.items} == {"t0", "t1", "t2"}


async def test_list_body_is_what_the_response_model_writes(container: Container) -> None:
    """The hand-written page equals TransactionOut's JSON of the same rows, every field set."""
    async with api_client(container) as client:
        headers = await register_and_login(client)
        async with container.uow() as uow:
            user = await uow.users.get_by_email("ada@example.com")
        assert user is not None
        (acct,) = await _accounts(container, user, "a")
        full = txn(
            "full",
            "1E+2",
            settlement_date=date(2026, 1, 17),
            symbol="ACME",
            raw={"nested": {"x": [1, 2.5, None]}},
        )
        async with container.uow() as uow:
            await uow.transactions.upsert(acct, [full, txn("bare", "-0.10", description=None)])
            await uow.commit()
        category = await client.post("/api/v1/categories", json={"name": "Read path test"}, headers=headers)
        assert category.status_code == 201, category.text
        async with container.uow() as uow:
            (stored,) = [
                t
                for t in (await uow.transactions.find(user.id, TransactionFilter(), PageRequest())).items
                if t.provider_transaction_id == "full"
            ]
        patch = {
            "category_id": category.json()["id"],
            "tags": ["b", "a"],
            "notes": "n",
            "excluded_from_analytics": True,
        }
        r = await client.patch(f"/api/v1/transactions/{stored.id}", json=patch, headers=headers)
        assert r.status_code == 200, r.text
        async with container.uow() as uow:
            entities = (await uow.transactions.find(user.id, TransactionFilter(), PageRequest())).items
        expected = [json.loads(TransactionOut.model_validate(e).model_dump_json()) for e in entities]
        for path in ("/api/v1/transactions", f"/api/v1/accounts/{acct.id}/transactions"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json"
            assert r.json() == {"items": expected, "next_cursor": None}
        assert expected[0]["amount"] in ("100", "-0.10")  # plain decimals, as everywhere


async def test_an_account_page_needs_no_account_lookup_but_still_answers_404(container: Container) -> None:
    async with api_client(container) as client:
        headers = await register_and_login(client)
        async with container.uow() as uow:
            user = await uow.users.get_by_email("ada@example.com")
        assert user is not None
        full, empty = await _accounts(container, user, "full", "empty")
        await _fill(container, full, "t", 3)
        other = await seed_user(container, "eve@example.com")
        (theirs,) = await _accounts(container, other, "theirs")
        await _fill(container, theirs, "x", 3)
        async with statements(container) as seen:
            r = await client.get(f"/api/v1/accounts/{full.id}/transactions", headers=headers)
        assert r.status_code == 200
        assert len(r.json()["items"]) == 3
        assert not [s for s in seen if "FROM accounts" in s and "transactions" not in s]
        r = await client.get(f"/api/v1/accounts/{empty.id}/transactions", headers=headers)
        assert r.status_code == 200
        assert r.json()["items"] == []
        for path in (
            f"/api/v1/accounts/{theirs.id}/transactions",
            f"/api/v1/transactions?account_id={theirs.id}",
        ):
            r = await client.get(path, headers=headers)
            assert r.status_code == 404, path


@pytest.mark.parametrize("fast_reads", [True, False])
async def test_an_authenticated_page_is_at_most_two_statements_and_holds_no_connection_between_them(
    container: Container, fast_reads: bool
) -> None:
    """Through FastAPI each statement checks a driver connection out for itself (the route
    may do anything between them): the session look-up, then the page. On PostgreSQL the fast
    lane asks whether the session is live in the page's own statement: one statement, one
    checkout. SQLite: one session, on the inline reader (a bounded read either way); the lane
    reads the page, then the session (no page leaves without it)."""
    container.settings = container.settings.model_copy(update={"fast_reads": fast_reads})
    pools = {"session": container.engine.sync_engine.pool}
    if container.inline_engine is not None:
        pools["inline"] = container.inline_engine.sync_engine.pool
    async with api_client(container) as client:
        headers = await register_and_login(client)
        await client.get("/api/v1/transactions", headers=headers)  # warm: first-use queries out of the way
        checkouts: list[str] = []
        listeners = {name: partial(_checked_out, checkouts, name) for name in pools}
        for name, pool in pools.items():
            event.listen(pool, "checkout", listeners[name])
        try:
            with driver_checkouts(container, lambda _: checkouts.append("driver")):
                async with statements(container) as seen:
                    r = await client.get("/api/v1/transactions", headers=headers)
        finally:
            for name, pool in pools.items():
                event.remove(pool, "checkout", listeners[name])
    assert r.status_code == 200
    postgres = container.engine.dialect.name == "postgresql"
    expected = ["inline"] if not postgres else ["driver"] if fast_reads else ["driver", "driver"]
    assert checkouts == expected
    if postgres and fast_reads:
        assert len(seen) == 1, seen  # no ping, no look-up of its own
        assert "FROM transactions" in seen[0]
        assert "auth_sessions" in seen[0]
        return
    look_up, page = (1, 0) if fast_reads else (0, 1)
    assert len(seen) == 2  # no ping: the look-up and the page
    assert "auth_sessions" in seen[look_up]
    assert "FROM transactions" in seen[page]


def _checked_out(into: list[str], name: str, *_: object) -> None:
    into.append(name)


async def test_a_read_request_sends_no_begin_or_rollback_on_postgresql(container: Container) -> None:
    """Under READ COMMITTED each statement has its own snapshot anyway: the request's reads
    run in autocommit, two round trips fewer. Writes keep their transactions."""
    _postgres(container)
    sent: list[str] = []
    async with api_client(container) as client:
        headers = await register_and_login(client)
        await client.get("/api/v1/transactions", headers=headers)
        pool = container.engine.sync_engine.pool

        def log(record: Any) -> None:
            sent.append(record.query)

        watched: list[Any] = []

        def checkout(dbapi_connection: Any, *_: Any) -> None:
            raw = dbapi_connection.driver_connection
            raw.add_query_logger(log)
            watched.append(raw)

        event.listen(pool, "checkout", checkout)
        try:
            async with container.uow() as uow:  # a use case's unit of work: a transaction
                await uow.users.get_by_email("ada@example.com")
            await asyncio.sleep(0)  # asyncpg hands records to loggers with call_soon: they run first
            assert [q.split()[0].upper().rstrip(";") for q in sent] == ["BEGIN", "ROLLBACK"]
            sent.clear()
            with driver_checkouts(
                container, lambda c: c.add_query_logger(log), lambda c: c.remove_query_logger(log)
            ):
                r = await client.get("/api/v1/transactions", headers=headers)
                me = await client.get("/api/v1/users/me", headers=headers)
            await asyncio.sleep(0)
        finally:
            event.remove(pool, "checkout", checkout)
            for raw in watched:
                raw.remove_query_logger(log)
    assert r.status_code == 200
    assert me.status_code == 200
    # Only the page (which asks whether the session is live itself) and the user + session
    # look-up, straight on asyncpg: no BEGIN or ROLLBACK. (SQLAlchemy's own prepared statements
    # are not logged; BEGIN and ROLLBACK are.)
    assert len(sent) == 2
    assert all(q.startswith("SELECT") for q in sent)
    assert ["auth_sessions" in q for q in sent] == [True, True]
    assert ["FROM transactions" in q for q in sent] == [True, False]


async def test_statistics_are_fresh_right_after_a_bulk_import(container: Container) -> None:
    _postgres(container)
    user = await seed_user(container)
    small, big = await _accounts(container, user, "small", "big")

    async def stats() -> tuple[int, str | None]:
        conn = await asyncpg.connect(container.settings.database_url.replace("+asyncpg", ""))
        try:
            count = await conn.fetchval(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'transactions'"
            )
            common = await conn.fetchval(
                "SELECT most_common_vals::text FROM pg_stats "
                "WHERE tablename = 'transactions' AND attname = 'account_id'"
            )
            return int(count), common
        finally:
            await conn.close()

    before, _ = await stats()
    await _fill(container, small, "s", 10)
    assert (await stats())[0] == before  # a few rows: autovacuum's business
    await _fill(container, big, "b", ANALYZE_AFTER)
    after, common = await stats()
    assert after == before + 1
    assert common is not None
    assert str(big.id) in common  # the planner knows the new account


async def test_account_page_uses_the_account_index_whatever_the_statistics(container: Container) -> None:
    """A big account (its import refreshed the statistics) and a tiny one written after
    (below the refresh threshold: the statistics do not know it) of the same user: every
    page seeks the account's index in key order, never the user's index filtered by account.

    On PostgreSQL the plan explained is the one the reads run: ``listed_sql`` prepared on a
    driver pool connection, whose plans are made without the values (``db.raw``). A plan made
    for the tiny account's id priced its one estimated row as cheaply read from the unique key
    and sorted as from the account's index, so which one won depended on how bloated each
    index was after the tests before (it failed now and then)."""
    postgres = container.engine.dialect.name == "postgresql"
    user = await seed_user(container)
    big, tiny = await _accounts(container, user, "big", "tiny")
    await _fill(container, big, "b", ANALYZE_AFTER * 3)
    await _fill(container, tiny, "t", 10)
    async with container.uow() as uow:
        raw = await uow.session.execute(  # type: ignore[attr-defined]
            select(transactions.c.transaction_date, transactions.c.id)
            .where(transactions.c.account_id == big.id)
            .order_by(transactions.c.transaction_date.desc(), transactions.c.id.desc())
            .offset(ANALYZE_AFTER * 2)
            .limit(1)
        )
        day, ident = raw.one()
    deep = PageRequest(limit=50, after=("transactions", day.isoformat(), ident.hex))
    dialect = container.engine.dialect
    for acct in (big, tiny):
        for page in (PageRequest(limit=50), deep):
            filters = TransactionFilter(account_id=acct.id)
            if postgres:
                assert container.reader is not None
                driver = await container.reader.acquire()
                try:
                    plan = await kept_plan(driver, *listed_sql(user.id, filters, page))
                finally:
                    await container.reader.release(driver)
            else:
                stmt = listed_query(user.id, filters, page, postgres=postgres)
                sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                async with container.uow() as uow:
                    rows = await uow.session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))  # type: ignore[attr-defined]
                    plan = "\n".join(str(r[-1]) for r in rows)
            if postgres:
                assert "Index Scan Backward using ix_transactions_account_date_id" in plan, plan
                assert "Sort" not in plan, plan
            else:
                assert "USING INDEX ix_transactions_account_date_id" in plan, plan
                assert "TEMP B-TREE" not in plan, plan
            assert "ix_transactions_user_date_id" not in plan, plan


async def _backend_pid(c: Container) -> int:
    async with c.uow() as uow:
        return int((await uow.session.execute(select(func.pg_backend_pid()))).scalar_one())  # type: ignore[attr-defined]


async def test_a_dead_pooled_connection_is_retried_once_for_a_first_read(container: Container) -> None:
    _postgres(container)
    pid = await _backend_pid(container)
    assert container.engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    await terminate_backend(pid)
    fresh = await _backend_pid(container)  # the first read of a transaction: retried on a new connection
    assert fresh != pid


async def test_a_dead_connection_is_never_retried_for_a_write_nor_mid_transaction(
    container: Container,
) -> None:
    _postgres(container)
    user = await seed_user(container)
    await terminate_backend(await _backend_pid(container))
    with pytest.raises(DBAPIError) as raised:
        async with container.uow() as uow:
            await uow.session.execute(  # type: ignore[attr-defined]
                update(transactions).where(transactions.c.user_id == user.id).values(notes="x")
            )
    assert raised.value.connection_invalidated
    async with container.uow() as uow:  # a read after a statement: the transaction is gone, no retry
        session: Any = uow.session  # type: ignore[attr-defined]
        await terminate_backend(int((await session.execute(select(func.pg_backend_pid()))).scalar_one()))
        with pytest.raises(DBAPIError):
            await uow.users.get_by_email(user.email)
    async with container.uow() as uow:  # and the pool recovers
        assert (await uow.users.get_by_email(user.email)) is not None


def test_listed_fields_follow_the_response_model() -> None:
    from dataclasses import fields

    from finsync.domain.ports import ListedTransaction

    names = [f.name.replace("raw_json", "raw") for f in fields(ListedTransaction)]
    assert names == list(TransactionOut.model_fields)


async def test_a_route_that_only_authenticates_hands_its_connection_back(container: Container) -> None:
    """Routes writing through use cases (own units of work) must not hold the request's
    connection meanwhile; routes reading through the request's unit of work keep it."""
    from fastapi.routing import APIRoute

    from finsync.api.deps import _reads_request_uow
    from finsync.api.routers import auth, connections, data

    routes = {
        (r.path, m): r
        for module in (auth, connections, data)
        for r in module.router.routes
        if isinstance(r, APIRoute)
        for m in r.methods
    }
    assert not _reads_request_uow(routes["/users/me", "GET"])
    assert not _reads_request_uow(routes["/connections/{connection_id}/sync", "POST"])
    assert _reads_request_uow(routes["/transactions", "GET"])
    assert _reads_request_uow(routes["/accounts/{account_id}/transactions", "GET"])
    async with api_client(container) as client:
        headers = await register_and_login(client)
        pool: Any = container.engine.pool
        r = await client.get("/api/v1/users/me", headers=headers)
        assert r.status_code == 200
        assert pool.checkedout() == 0


async def test_a_burst_within_the_pool_reuses_its_connections(container: Container) -> None:
    """Fifteen reads at once, twice: the second burst opens no connection. With SQLAlchemy's
    default pool (5 kept, 10 overflow closed after use) a fifth of the requests under a steady
    load of 16 paid a whole connect, its CPU cost several times the request's own."""
    _postgres(container)
    opened: list[object] = []

    def connected(*_: Any) -> None:
        opened.append(None)

    event.listen(container.engine.sync_engine, "connect", connected)
    try:
        for burst in range(2):
            together = asyncio.Barrier(15)

            async def read(together: asyncio.Barrier) -> None:
                async with container.read_uow() as uow:
                    await uow.users.count()  # holds a connection ...
                    await together.wait()  # ... until all fifteen hold one

            before = len(opened)
            await asyncio.gather(*(read(together) for _ in range(15)))
            if burst == 1:
                assert len(opened) == before, "the second burst opened new connections"
    finally:
        event.remove(container.engine.sync_engine, "connect", connected)


async def test_the_asyncpg_page_query_answers_what_the_sqlalchemy_one_does(container: Container) -> None:
    """``listed_sql`` (a PostgreSQL request's page) and ``listed_query`` (everything else)
    agree for every filter, alone and together, page after page: the read unit of work takes
    the first, a use case's unit of work the second."""
    _postgres(container)
    from uuid import uuid4

    from finsync.domain.categories import Category, CategoryKind
    from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType

    user = await seed_user(container)
    other = await seed_user(container, "eve@example.com")
    first, second = await _accounts(container, user, "first", "second")
    (theirs,) = await _accounts(container, other, "theirs")
    start = date(2025, 1, 1)
    rows = [
        txn(
            f"t{i}",
            day=start + timedelta(days=i % 9),  # ties on the date: the id breaks them
            symbol=("ACME", "acme", None, "Other")[i % 4],
            description=(f"Coffee 50% off_{i}", "rent \\ flat", None)[i % 3],
            type=(TransactionType.TRANSFER, TransactionType.TRADE)[i % 2],
            subtype=(TransactionSubtype.WITHDRAWAL, TransactionSubtype.BUY)[i % 2],
            status=(TransactionStatus.SETTLED, TransactionStatus.PENDING)[i % 5 == 0],
        )
        for i in range(40)
    ]
    async with container.uow() as uow:
        await uow.transactions.upsert(first, rows[:25])
        await uow.transactions.upsert(second, rows[25:])
        await uow.transactions.upsert(theirs, rows[:5])
        food = Category(user_id=user.id, name="Food", kind=CategoryKind.EXPENSE)
        await uow.categories.add(food)
        await uow.session.execute(  # type: ignore[attr-defined]
            update(transactions)
            .where(
                transactions.c.user_id == user.id, transactions.c.provider_transaction_id.in_(["t1", "t7"])
            )
            .values(tags=["trip", "food"], category_id=food.id)
        )
        await uow.commit()
    filters = [
        TransactionFilter(),
        TransactionFilter(account_id=first.id),
        TransactionFilter(account_id=theirs.id),  # not theirs to read: nothing
        TransactionFilter(account_id=uuid4()),
        TransactionFilter(date_from=date(2025, 1, 3), date_to=date(2025, 1, 6)),
        TransactionFilter(type=TransactionType.TRADE, subtype=TransactionSubtype.BUY),
        TransactionFilter(status=TransactionStatus.PENDING, account_id=second.id),
        TransactionFilter(symbol="acme"),
        TransactionFilter(text="50% OFF_1"),  # LIKE wildcards are matched literally
        TransactionFilter(text="rent \\"),
        TransactionFilter(text="other"),  # the symbol, exactly, in any case
        TransactionFilter(category_ids=(food.id, uuid4())),
        TransactionFilter(tag="trip", account_id=first.id),
        TransactionFilter(tag="nope"),
    ]
    for f in filters:
        pages: dict[bool, list[list[str]]] = {}
        for factory, fast in ((container.uow, False), (container.read_uow, True)):
            async with statements(container) as seen:
                pages[fast] = await _all_pages(factory, user.id, f)
            assert any("raw::text AS raw_json" in s for s in seen) == fast, f
        assert pages[True] == pages[False], f
    assert sum(map(len, await _all_pages(container.read_uow, user.id, TransactionFilter()))) == 40


async def _all_pages(factory: Any, user_id: Any, f: TransactionFilter) -> list[list[str]]:
    """Every page of 4 (ids and the raw text, in order), following the cursors."""
    pages: list[list[str]] = []
    after = None
    while True:
        async with factory() as uow:
            page = await uow.transactions.listed(user_id, f, PageRequest(limit=4, after=after))
        pages.append([f"{t.id}|{t.raw_json}|{t.tags}|{t.created_at.isoformat()}" for t in page.items])
        if page.next_key is None:
            return pages
        after = page.next_key


async def _driver_pid(c: Container) -> int:
    """The backend of the read path's pooled asyncpg connection (one is open: reads run one
    after another here)."""
    async with c.read_uow() as uow:
        found = await raw.fetch(uow.session, "SELECT pg_backend_pid()", [])  # type: ignore[attr-defined]
        assert found is not None
        return int(found[0][0])


async def test_a_dead_connection_under_the_asyncpg_path_is_retried_once_on_a_fresh_one(
    container: Container,
) -> None:
    """The auth look-up and the page run straight on asyncpg: a pooled connection found dead
    is replaced and the read asked again, once; the dead one never goes back to the pool."""
    _postgres(container)
    async with api_client(container) as client:
        headers = await register_and_login(client)
        pid = await _driver_pid(container)
        await terminate_backend(pid)
        r = await client.get("/api/v1/transactions", headers=headers)  # the look-up: retried
        assert r.status_code == 200
    user = await seed_user(container, "eve@example.com")
    async with container.read_uow() as uow:
        fresh = await _driver_pid(container)
        assert fresh != pid
        await terminate_backend(fresh)
        page = await uow.transactions.listed(user.id, TransactionFilter(), PageRequest())  # retried
        assert page.items == []
    assert await _driver_pid(container) not in (pid, fresh)


async def test_a_dead_connection_under_the_fast_lane_sends_the_request_on_to_fastapi(
    container: Container,
) -> None:
    """The lane's look-up and page share one connection: found dead, the lane gives up (the
    connection is closed, not pooled again) and FastAPI's route answers on a fresh one."""
    _postgres(container)
    async with api_client(container) as client:
        headers = await register_and_login(client)
        for path in ("/api/v1/users/me", "/api/v1/transactions"):
            pid = await _driver_pid(container)
            await terminate_backend(pid)
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, r.text
            assert await _driver_pid(container) != pid


async def test_a_read_found_dead_twice_is_an_error(container: Container) -> None:
    """Once is a restart or a dropped connection; a second dead one is an outage: the error,
    not a loop."""
    _postgres(container)
    reader = container.reader
    assert reader is not None
    kill = "SELECT pg_terminate_backend(pg_backend_pid())"  # each try ends its own connection
    with pytest.raises(LOST_CONNECTION):
        await reader.fetch(kill, [])
    assert [tuple(r) for r in await reader.fetch("SELECT 1", [])] == [(1,)]  # the pool recovers


async def test_a_request_holds_no_driver_connection_between_its_statements(
    database_url: str, tmp_path: Path
) -> None:
    """Requests at once outnumber the driver pool: each statement checks a connection out
    and gives it back, so a read unit of work left open (a route still reading through
    SQLAlchemy, an answer still being sent) keeps nobody else waiting."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL behaviour")
    async with built(make_settings(database_url, tmp_path, database_read_pool_size=1)) as c:
        user = await seed_user(c)
        async with c.read_uow() as first, c.read_uow() as second:
            for uow in (first, second, first):
                found = uow.users.get_in_session(user.id, user.id, c.clock())
                assert await asyncio.wait_for(found, 5) is None


async def test_closing_the_driver_pool_waits_for_a_connection_still_out(container: Container) -> None:
    """Shutting down while a statement still holds its connection: it gives it back to the
    pool being closed, and the close, which waits for every connection out, then ends; a
    statement starting meanwhile is refused, never given a new pool nobody would close."""
    _postgres(container)
    reader = container.reader
    assert reader is not None
    assert [tuple(r) for r in await reader.fetch("SELECT 1", [])] == [(1,)]
    connection = await reader.acquire()
    closing = asyncio.create_task(reader.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waits for the statement's connection
    with pytest.raises(asyncpg.InterfaceError, match="closing"):
        await reader.fetch("SELECT 1", [])
    await reader.release(connection)
    await asyncio.wait_for(closing, 5)
    assert [tuple(r) for r in await reader.fetch("SELECT 1", [])] == [(1,)]  # a new pool, on use
    await reader.aclose()


async def test_a_read_cancelled_at_its_end_still_gives_its_session_connection_back(
    container: Container,
) -> None:
    """A request cancelled while its unit of work ends (the scope of a streamed response whose
    client went away cancels every await until it is left): nothing of it stays checked out."""
    _postgres(container)
    user = await seed_user(container)
    pool = container.engine.sync_engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    with anyio.CancelScope() as scope:
        async with container.read_uow() as uow:
            await uow.users.get_in_session(user.id, user.id, container.clock())  # the driver pool
            await uow.users.get(user.id)  # the session's connection
            scope.cancel()
            await asyncio.sleep(0)
    assert scope.cancelled_caught
    assert pool.checkedout() == before  # type: ignore[attr-defined]


async def test_the_driver_pool_takes_the_url_options_of_sqlalchemys_adapter(container: Container) -> None:
    """``prepared_statement_cache_size`` in FINSYNC_DATABASE_URL (0 behind PgBouncer) is an
    option of SQLAlchemy's asyncpg adapter: asyncpg's pool gets it as its own cache size."""
    _postgres(container)
    url = container.engine.url.update_query_dict({"prepared_statement_cache_size": "0"})
    engine = create_engine(url.render_as_string(hide_password=False))
    reader = raw.DriverPool(engine, 1)
    try:
        assert [tuple(r) for r in await reader.fetch("SELECT 1", [])] == [(1,)]
    finally:
        await reader.aclose()
        await engine.dispose()


class _HeldClose:
    """TCP between the app and PostgreSQL that passes every byte; once armed, it holds back the
    next close by the server until the client writes again: the client has read the FATAL
    "terminating connection" and still sees an open socket, the moment a pool may hand that
    connection out (seen under load)."""

    def __init__(self) -> None:
        self.armed = False
        self.held = asyncio.Event()
        self.port = 0

    async def __aenter__(self) -> _HeldClose:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()

    def arm(self) -> None:
        self.armed = True
        self.held.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        pg = urlsplit(PG_DSN)
        server_r, server_w = await asyncio.open_connection(pg.hostname, pg.port or 5432)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()

        upstream = asyncio.create_task(pipe(client_r, server_w))
        try:
            await pipe(server_r, client_w)  # until the server ends the connection
            upstream.cancel()
            await asyncio.wait([upstream])
            if self.armed:
                self.armed = False
                self.held.set()
                await client_r.read(1)  # the client's next statement (or its own close)
        finally:
            upstream.cancel()
            client_w.close()
            server_w.close()


async def test_a_connection_the_server_ended_but_not_yet_closed_is_retried_as_lost(
    database_url: str, tmp_path: Path, registry: ProviderRegistry
) -> None:
    """asyncpg refuses a statement on such a connection with InternalClientError ("another
    operation is in progress"), not as a lost connection. SQLAlchemy takes it as a disconnect;
    the straight-to-asyncpg path must too: retry a first read on a fresh connection and never
    pool the broken one again (it failed CI once, and left its test database unemptied)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL behaviour")
    async with _HeldClose() as proxy:
        url = urlsplit(database_url)._replace(netloc=f"{urlsplit(PG_DSN).username}@127.0.0.1:{proxy.port}")
        settings = make_settings(url.geturl(), tmp_path)
        async with built(settings, registry=registry) as c, api_client(c) as client:
            headers = await register_and_login(client)
            for read in ("asyncpg", "sqlalchemy"):
                pid = await _backend_pid(c)
                proxy.arm()
                await terminate_backend(pid)
                await asyncio.wait_for(proxy.held.wait(), 10)
                await asyncio.sleep(0.05)  # the client reads the FATAL notice (loopback)
                if read == "asyncpg":  # the auth look-up, straight on the driver
                    r = await client.get("/api/v1/transactions", headers=headers)
                    assert r.status_code == 200, r.text
                assert await _backend_pid(c) != pid


async def test_the_page_the_database_writes_is_the_page_python_writes(container: Container) -> None:
    """``listed_json`` (each item written by the database) against ``api/listing.py`` writing
    the same rows, byte for byte: every control character, quotes, backslashes and non-ASCII in
    text, decimals of every scale, nulls, tags, timestamps with and without microseconds. On
    SQLite a page holding a decimal kept with an exponent (``1E-8``) is Python's to write."""
    postgres = container.engine.dialect.name == "postgresql"
    user = await seed_user(container)
    (acct,) = await _accounts(container, user, "a")
    odd = "".join(chr(c) for c in range(1, 128)) + "é☕😀\u2028\u2029\ufeff"
    rows = [
        txn("t0", amount="0.00001", description=odd, symbol='A"B\\', raw={"x": odd, "n": [1, 2.5]}),
        txn("t1", amount="-1000.000001", description=None, day=date(2026, 1, 14)),
        txn(
            "t2",
            amount="5",
            quantity=Decimal("1.50"),
            unit_price=Decimal("123456789012.123456789"),
            fees=Decimal("0"),
            settlement_date=date(2026, 1, 17),
            day=date(2026, 1, 16),
        ),
        txn("t3", amount="-0.10", description="plain", day=date(2026, 1, 16)),
        txn("t4", amount="-0.00", quantity=Decimal("1E-8"), day=date(2026, 1, 10)),
        txn("t5", amount="1E+3", day=date(2026, 1, 9)),
    ]
    async with container.uow() as uow:
        await uow.transactions.upsert(acct, rows)
        await uow.commit()
    tags = "CAST(:tags AS jsonb)" if postgres else ":tags"
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                f"UPDATE transactions SET tags = {tags}, notes = :notes, category_set_by = 'user', "
                "excluded_from_analytics = true, created_at = :created, updated_at = :updated "
                "WHERE provider_transaction_id = 't0'"
            ).bindparams(
                bindparam("created", type_=UTCDateTime()), bindparam("updated", type_=UTCDateTime())
            ),
            {
                "tags": json_dumps(['a"b', "☕", "x\ny", odd]),  # as the app writes JSON (orjson)
                "notes": odd,
                "created": datetime(2026, 1, 1, tzinfo=UTC),
                "updated": datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
            },
        )
        await conn.execute(text("UPDATE transactions SET tags = '[]' WHERE provider_transaction_id = 't1'"))
    for f in (TransactionFilter(), TransactionFilter(account_id=acct.id)):
        for limit in (1, 3, 50):
            after = None
            while True:
                page = PageRequest(limit=limit, after=after)
                async with container.read_uow() as uow:
                    written, count = await transactions_body_of(uow, user.id, f, page)
                    by_database = await uow.transactions.listed_json(user.id, f, page)
                async with (
                    container.uow() as uow
                ):  # a use case's unit of work: SQLAlchemy's rows, Python's JSON
                    listed = await uow.transactions.listed(user.id, f, page)
                assert written == transactions_body(listed)
                assert count == len(listed.items)
                exponent = any(t.provider_transaction_id in ("t4", "t5") for t in listed.items)
                assert (by_database is None) == (exponent and not postgres)  # else the database's
                if listed.next_key is None:
                    break
                after = listed.next_key
