"""Watching the SQL a container sends, whichever way it goes to the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from finsync.bootstrap import Container
from tests.conftest import PG_DSN


@asynccontextmanager
async def statements(c: Container) -> AsyncIterator[list[str]]:
    """The SQL sent through ``c``'s engine meanwhile: through SQLAlchemy and, on PostgreSQL,
    straight on the asyncpg connection under it (``infrastructure/db/raw.py``)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    def logged(record: Any) -> None:
        seen.append(record.query)

    watched: list[Any] = []

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        if c.engine.dialect.name == "postgresql":
            raw = dbapi_connection.driver_connection
            raw.add_query_logger(logged)
            watched.append(raw)

    event.listen(c.engine.sync_engine, "before_cursor_execute", record)
    event.listen(c.engine.sync_engine.pool, "checkout", checkout)
    try:
        yield seen
        await asyncio.sleep(0)  # asyncpg hands records to loggers with call_soon: they run first
    finally:
        event.remove(c.engine.sync_engine, "before_cursor_execute", record)
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
