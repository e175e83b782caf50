"""On a SQLite file, the bounded reads (``db/inline_sqlite.py``) run on the event loop's own
thread, read what writers committed, beside a writer that holds the write lock, and refuse to
write at all (a write waiting for the lock would stall the loop)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from finsync.domain.entities import User
from finsync.domain.ports import PageRequest, TransactionFilter
from finsync.infrastructure.db.engine import create_engine, create_inline_reader
from tests.conftest import built, make_settings
from tests.factories import account, seed_connection, seed_user, txn

pytestmark = pytest.mark.integration


@contextmanager
def _on_each_connection(
    engine: AsyncEngine, hook: Callable[[sqlite3.Connection, bool], None]
) -> Iterator[None]:
    """``hook(connection, True)`` on each sqlite3 connection ``engine`` checks out meanwhile
    (aiosqlite's or the inline one's ``_conn``), ``hook(connection, False)`` when it is back."""

    def checked_out(dbapi_connection: Any, *_: Any) -> None:
        hook(dbapi_connection.driver_connection._conn, True)

    def checked_in(dbapi_connection: Any, *_: Any) -> None:
        hook(dbapi_connection.driver_connection._conn, False)

    event.listen(engine.sync_engine.pool, "checkout", checked_out)
    event.listen(engine.sync_engine.pool, "checkin", checked_in)
    try:
        yield
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checked_out)
        event.remove(engine.sync_engine.pool, "checkin", checked_in)


@contextmanager
def _threads(engine: AsyncEngine) -> Iterator[list[int]]:
    """The threads ``engine``'s statements run on meanwhile (seen by SQLite itself)."""
    seen: list[int] = []

    def traced(_statement: str) -> None:
        seen.append(threading.get_ident())

    def trace(connection: sqlite3.Connection, on: bool) -> None:
        connection.set_trace_callback(traced if on else None)

    with _on_each_connection(engine, trace):
        yield seen


async def test_bounded_reads_run_on_the_loop_s_thread_and_read_what_was_committed(
    sqlite_database: str, tmp_path: Path
) -> None:
    async with built(make_settings(sqlite_database, tmp_path)) as c:
        assert c.bounded_read_uow is not None
        assert c.inline_engine is not None
        with _threads(c.engine) as writer_threads:
            async with c.uow() as uow:
                await uow.users.add(User(email="ada@example.com", password_hash="x"))
                await uow.commit()
        with _threads(c.inline_engine) as reader_threads:
            async with c.bounded_read_uow() as uow:
                found = await uow.users.get_by_email("ada@example.com")
        assert found is not None
        assert found.email == "ada@example.com"
        here = threading.get_ident()
        assert reader_threads
        assert set(reader_threads) == {here}
        assert writer_threads
        assert here not in writer_threads


async def test_bounded_reads_go_on_beside_a_writer_and_refuse_to_write(
    sqlite_database: str, tmp_path: Path
) -> None:
    async with built(make_settings(sqlite_database, tmp_path)) as c:
        assert c.bounded_read_uow is not None
        async with c.uow() as uow:
            await uow.users.add(User(email="ada@example.com", password_hash="x"))
            await uow.commit()
        async with c.uow() as writer:  # holds SQLite's write lock until it ends
            await writer.users.add(User(email="bob@example.com", password_hash="x"))
            async with c.bounded_read_uow() as reader:
                assert await reader.users.get_by_email("ada@example.com") is not None
                assert await reader.users.get_by_email("bob@example.com") is None  # not committed
                with pytest.raises(OperationalError, match="readonly"):  # not "locked": no wait
                    await reader.users.add(User(email="eve@example.com", password_hash="x"))
            await writer.commit()
        async with c.bounded_read_uow() as reader:
            assert await reader.users.get_by_email("bob@example.com") is not None
            with pytest.raises(OperationalError, match="readonly"):  # with no writer either
                await reader.session.execute(text("DELETE FROM users"))  # type: ignore[attr-defined]
        async with c.read_uow() as uow:
            assert await uow.users.count() == 2


async def test_no_inline_reader_where_it_would_read_another_database_or_wait(
    pg_database: str | None, tmp_path: Path
) -> None:
    memory = create_engine("sqlite+aiosqlite://")
    try:
        assert create_inline_reader(memory) is None  # a second in-memory database would be empty
    finally:
        await memory.dispose()
    for name, mode in (("rollback-journal.db", "DELETE"), ("wal.db", "WAL")):
        with closing(sqlite3.connect(tmp_path / name)) as db:
            db.execute(f"PRAGMA journal_mode={mode}")
    for name, made in (("rollback-journal.db", False), ("wal.db", True), ("not-made-yet.db", False)):
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / name}")
        inline = create_inline_reader(engine)
        try:
            assert (inline is not None) is made, name  # without WAL a reader waits for writers
        finally:
            await engine.dispose()
            if inline is not None:
                await inline.dispose()
    if pg_database is not None:
        postgres = create_engine(pg_database)
        try:
            assert create_inline_reader(postgres) is None
        finally:
            await postgres.dispose()


async def test_a_read_that_finds_the_file_locked_waits_on_a_thread_not_on_the_loop(
    sqlite_database: str, tmp_path: Path
) -> None:
    """Another process holding the file in exclusive locking mode makes even a WAL reader wait:
    the read is asked again on a worker thread (on a connection of its own) with the usual busy
    timeout, so the loop goes on (this test's own loop below runs meanwhile), a read cancelled
    meanwhile ends at once (its pooled connection closed on the loop, untouched by the thread),
    and the other read succeeds once the lock is gone."""
    async with built(make_settings(sqlite_database, tmp_path)) as c:
        assert c.bounded_read_uow is not None
        async with c.uow() as uow:
            await uow.users.add(User(email="ada@example.com", password_hash="x"))
            await uow.commit()
        assert c.inline_engine is not None
        for engine in (c.engine, c.inline_engine):  # nobody else has the file open: it can be locked
            await engine.dispose()
        holder = sqlite3.connect(make_url(sqlite_database).database or "", check_same_thread=False)
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("SELECT count(*) FROM users").fetchone()

        async def read() -> User | None:
            async with c.bounded_read_uow() as uow:  # type: ignore[misc]
                return await uow.users.get_by_email("ada@example.com")

        try:
            with capture_logs() as logs:
                cancelled, reading = asyncio.create_task(read()), asyncio.create_task(read())
                for _ in range(3000):  # until both reads wait on their threads, or one fails
                    if cancelled.done() or reading.done() or _waiting(logs) == 2:
                        break
                    await asyncio.sleep(0.01)
                assert _waiting(logs) == 2, logs
                assert not reading.done()  # waiting, not failed
                cancelled.cancel()  # a shutdown, a timeout around the request
                with pytest.raises(asyncio.CancelledError):
                    await cancelled  # at once, though the lock is still held
                assert not reading.done()
        finally:
            holder.rollback()
            holder.close()
        found = await reading
        assert found is not None
        assert found.email == "ada@example.com"


def _waiting(logs: list[dict[str, Any]]) -> int:
    return sum(e["event"] == WAITING for e in logs)


WAITING = "sqlite_read_busy_waiting_on_a_thread"


async def test_a_page_of_an_account_that_is_not_yours_reads_nothing(
    sqlite_database: str, tmp_path: Path
) -> None:
    """On the loop's thread a page must cost what it shows: asking for another user's account
    seeks nothing (SQLite walked that account's whole index range, filtering each row by the
    owner check), counted in SQLite's own virtual-machine steps, not time."""
    async with built(make_settings(sqlite_database, tmp_path)) as c:
        assert c.bounded_read_uow is not None
        assert c.inline_engine is not None
        owner, other = await seed_user(c), await seed_user(c, "eve@example.com")
        connection = await seed_connection(c, owner)
        async with c.uow() as uow:
            (acct,), _ = await uow.accounts.upsert(connection, [account("big")])
            await uow.transactions.upsert(acct, [txn(f"t{i}") for i in range(2000)])
            await uow.commit()
        steps: dict[str, int] = {}
        for name, user in (("owner", owner), ("other", other)):
            with _vm_steps(c.inline_engine) as counted:
                async with c.bounded_read_uow() as uow:
                    page = await uow.transactions.listed_json(
                        user.id, TransactionFilter(account_id=acct.id), PageRequest(limit=50)
                    )
            assert page is not None
            assert page.count == (50 if name == "owner" else 0)
            steps[name] = counted[0]
        assert steps["other"] * 20 < steps["owner"], steps  # 2,000 rows walked would be far more


@contextmanager
def _vm_steps(engine: AsyncEngine) -> Iterator[list[int]]:
    """How many hundreds of SQLite VM instructions ``engine``'s statements ran meanwhile."""
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    def watch(connection: sqlite3.Connection, on: bool) -> None:
        connection.set_progress_handler(tick if on else None, 100)

    with _on_each_connection(engine, watch):
        yield counted
