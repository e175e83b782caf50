"""Watching the SQL a container sends, whichever way it goes to the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from finsync.bootstrap import Container
from tests.conftest import PG_DSN

T = TypeVar("T")


@contextmanager
def driver_checkouts(
    c: Container, on_checkout: Callable[[Any], object], on_checkin: Callable[[Any], object] | None = None
) -> Iterator[None]:
    """Calls ``on_checkout`` with each asyncpg connection ``c``'s driver pool hands out
    meanwhile (the read path's, ``infrastructure/db/raw.py``; none on SQLite), and
    ``on_checkin`` when it comes back (its next statement may be another request's)."""
    reader = c.reader
    if reader is None:
        yield
        return
    acquire, release = reader.acquire, reader.release

    async def acquired() -> Any:
        connection = await acquire()
        on_checkout(connection)
        return connection

    async def released(connection: Any, *, lost: bool = False) -> None:
        if on_checkin is not None:
            on_checkin(connection)
        await release(connection, lost=lost)

    reader.acquire, reader.release = acquired, released  # type: ignore[method-assign]
    try:
        yield
    finally:
        reader.acquire, reader.release = acquire, release  # type: ignore[method-assign]


@asynccontextmanager
async def statements(c: Container) -> AsyncIterator[list[str]]:
    """The SQL sent through ``c``'s engines meanwhile: through SQLAlchemy (on SQLite also the
    inline reader's) and, on PostgreSQL, straight on asyncpg, under the engine's connections or
    on the driver pool's."""
    async with _watched(c, lambda statement, _: statement) as seen:
        yield seen


@asynccontextmanager
async def sent(c: Container) -> AsyncIterator[list[tuple[str, Any]]]:
    """``statements``, each with its parameters (to EXPLAIN it as it was sent)."""
    async with _watched(c, lambda statement, parameters: (statement, parameters)) as seen:
        yield seen


@asynccontextmanager
async def _watched(c: Container, keep: Callable[[str, Any], T]) -> AsyncIterator[list[T]]:
    seen: list[T] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append(keep(statement, parameters))

    def logged(record: Any) -> None:
        seen.append(keep(record.query, record.args))

    watched: list[Any] = []

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        if c.engine.dialect.name == "postgresql":
            raw = dbapi_connection.driver_connection
            raw.add_query_logger(logged)
            watched.append(raw)

    def driver(connection: Any) -> None:
        connection.add_query_logger(logged)

    def back(connection: Any) -> None:
        connection.remove_query_logger(logged)

    engines = [e.sync_engine for e in (c.engine, c.inline_engine) if e is not None]  # SQLite: both
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    event.listen(c.engine.sync_engine.pool, "checkout", checkout)
    try:
        with driver_checkouts(c, driver, back):
            yield seen
        await asyncio.sleep(0)  # asyncpg hands records to loggers with call_soon: they run first
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
        event.remove(c.engine.sync_engine.pool, "checkout", checkout)
        for raw in watched:
            raw.remove_query_logger(logged)


async def until_waiting(
    probe: AsyncConnection, table: str = "", sessions: int = 1, *, unless: asyncio.Future[Any] | None = None
) -> None:
    """Until ``sessions`` backends of this database wait for a lock (PostgreSQL), taken on
    ``table`` if given: the state of PostgreSQL, not a timer, says the other writers have
    reached that point. With ``unless``, also done once that task is (it did not wait)."""
    sql = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query ILIKE :pattern"
    )
    for _ in range(2000):
        if unless is not None and unless.done():
            return
        waiting = (await probe.execute(sql, {"pattern": f"%{table}%"})).scalar()
        await probe.rollback()  # pg_stat_activity is read once per transaction
        if waiting >= sessions:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{sessions} session(s) never waited for a lock{f' on {table}' if table else ''}")


async def terminate_backend(pid: int) -> None:
    """End PostgreSQL backend ``pid`` as a restart or a proxy would, and wait until it is gone."""
    admin = await asyncpg.connect(f"{PG_DSN}/postgres")
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(200):
            if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                return
            await asyncio.sleep(0.01)
    finally:
        await admin.close()


async def kept_plan(driver: Any, sql: str, args: Any) -> str:
    """The plan asyncpg connection ``driver`` keeps for ``sql`` run with ``args`` (on the
    driver pool's connections, made without the values: generic plans)."""
    await driver.execute(f"PREPARE kept_plan AS {sql}")
    try:
        given = ", ".join("'{}'".format(str(value).replace("'", "''")) for value in args)
        return "\n".join(r[0] for r in await driver.fetch(f"EXPLAIN EXECUTE kept_plan({given})"))
    finally:
        await driver.execute("DEALLOCATE kept_plan")
