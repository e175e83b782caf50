"""Engine and session factory, built by bootstrap (never at import)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import CompoundSelect, Select, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as SAAsyncSession

from finsync.infrastructure.db.inline_sqlite import inline_connector
from finsync.infrastructure.db.types import json_dumps

log = structlog.get_logger(__name__)


def create_engine(url: str, *, ping_after_idle: float = 5.0, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
    elif parsed.get_backend_name() == "postgresql":
        # No JIT: it compiles a query whose *estimated* cost passes jit_above_cost, and the
        # analytics queries (set-returning functions, unnested arrays) are estimated far above
        # what they cost: compiling took 1-2 s of CPU for a query that runs in ~100 ms. It is
        # set per connection because the API reads in autocommit, where SET LOCAL is a no-op.
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("server_settings", {}).setdefault("jit", "off")
    # No pool_pre_ping (a round trip per checkout cost every request as much as its query):
    # an idle connection is pinged (_ping_when_idle), and one found dead anyway is retried
    # once by RetryingSession (first reads only).
    # hide_parameters: SQL errors end up in logs and must not carry provider payloads or ids.
    engine = create_async_engine(url, json_serializer=json_dumps, hide_parameters=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    elif not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle)
    return engine


def create_inline_reader(engine: AsyncEngine) -> AsyncEngine | None:
    """For ``engine`` on a SQLite file in WAL mode: an engine of read-only connections that run
    on the event loop's thread, for reads of bounded cost (``inline_sqlite``). None otherwise:
    an in-memory database would be another database, and without WAL (a file not made yet, a
    filesystem without shared memory) a reader waits for every writer's commit."""
    url = engine.url
    if engine.dialect.name != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if not _in_wal(Path(url.database)):
        log.info("sqlite_reads_all_threaded", reason="the database is not in WAL mode")
        return None
    rendered = url.render_as_string(hide_password=False)
    # Not _sqlite_pragmas: WAL is the file's (a reader must not try to set it).
    return create_async_engine(rendered, async_creator=inline_connector(rendered), hide_parameters=True)


def _in_wal(path: Path) -> bool:
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return bool(db.execute("PRAGMA journal_mode").fetchone()[0] == "wal")
    except sqlite3.Error:  # no such file (yet), or not a database
        return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the sync writer; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class RetryingSession(SAAsyncSession):
    """A session that retries once when the pooled connection under it turns out to be dead
    (the server restarted, a proxy dropped it): only for a read that is the transaction's
    first statement, so nothing of the transaction can have happened yet. A write is never
    retried, whatever its position: its fate on the server is unknown.

    This replaces ``pool_pre_ping``, which paid a round trip on every checkout to catch what
    happens after a restart. SQLAlchemy invalidates the dead connection (and the pool's older
    ones) before the retry, so the retry checks out a fresh one."""

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if self.in_transaction() or not isinstance(statement, Select | CompoundSelect):
            return await super().execute(statement, params, **kw)
        try:
            return await super().execute(statement, params, **kw)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("database_connection_lost_retrying_read")
            await self.rollback()
        return await super().execute(statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return (await self.execute(statement, params, **kw)).scalar()

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return (await self.execute(statement, params, **kw)).scalars()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[SAAsyncSession]:
    return async_sessionmaker(engine, class_=RetryingSession, expire_on_commit=False, autoflush=False)


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """A pooled connection is checked before use only when it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` checks on every checkout, and on asyncpg a check is three
    round trips (BEGIN, a no-op, ROLLBACK): a sync checks out a connection for each of its
    transactions and shared-budget updates, so pings were a third of its round trips. A
    connection returned moments ago was alive then; one idle longer (a database restart
    meanwhile drops it) is pinged, and replaced if the ping fails."""

    @event.listens_for(engine.sync_engine, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # just connected, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool discards it and connects anew
            raise DisconnectionError("pooled connection is gone") from exc
