"""The hottest reads straight on asyncpg, past SQLAlchemy (PostgreSQL only).

Every API request authenticates (user + live session) and most then read one page: through
SQLAlchemy's async adapter each statement paid for building the query, its cache key, a
greenlet hop and result processing, and the session paid two more hops to check its
connection out and give it back; together they were most of a request's CPU. These few
statements are fixed SQL text with ``$n`` parameters, run with asyncpg's own
prepared-statement cache on a connection of ``DriverPool``: a small pool of asyncpg
connections, which hands one out and takes it back without leaving the event loop.

A request's read unit of work carries the pool: each of these statements checks a
connection out and gives it back at once. The connections are in autocommit (no
transaction is ever begun on them), as the read sessions are, so each statement is a read
on its own snapshot, as it was on the session. Anything else (SQLite, a write unit of work)
takes the generic SQLAlchemy path, which must answer the same; the API tests run both.

A pooled connection found dead is retried once on a fresh one, as ``RetryingSession`` does
for a first read: an autocommitted read has done nothing a retry could repeat.

``pooled`` is the same idea for code that owns its few statements and the engine they run on
(the order desk, the shared rate budgets): the driver connection of a pooled connection of
the engine, checked out without building a SQLAlchemy ``Connection`` around it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.util import greenlet_spawn

log = structlog.get_logger(__name__)

# What asyncpg raises when the connection under it is gone (server restart, dropped by a proxy).
# InternalClientError too: when the server's "terminating connection" notice has arrived but its
# close not yet, asyncpg's protocol is stuck consuming that error and refuses any new statement
# ("another operation is in progress"); such a connection can never be used again either.
LOST_CONNECTION = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)


class PoolClosing(asyncpg.InterfaceError):  # type: ignore[misc]
    """The driver pool is being closed (shutting down): no statement starts on it now."""


READER = "finsync.reader"  # a read session's ``DriverPool`` in ``Session.info``
ACQUIRE_TIMEOUT = 30.0  # seconds, as SQLAlchemy's pool waits for a connection


# jit as create_engine sets it (see there). UTC: a time stored without an offset inside JSON
# (an order's fill) is read as Python reads it.
_SETTINGS = {"jit": "off", "TimeZone": "UTC"}
# Generic plans from the first run: every statement here is a seek in the index its ORDER BY
# names, whatever its values, and a plan made for the values cost as much CPU as running it.
# PostgreSQL kept doing that for a deep page of a big account (it prices the generic plan of
# ``(date, id) < ($n, $m)`` as reading a third of the account, so that plan never won): page
# 10,000 cost half as much again as page 1. Not without asyncpg's statement cache (size 0,
# behind a pooler such as PgBouncer): every statement is planned anew there anyway, and a
# pooler refuses a startup parameter it was not told to ignore.
_GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}
IDLE_SECONDS = 300.0  # a connection unused this long is closed (asyncpg's pool default too)


class DriverPool:
    """Up to ``size`` asyncpg connections on the engine's database, opened on first use:
    connections as the engine makes them (its URL, ``jit`` off) and JSON decoded as SQLAlchemy
    decodes it, so a row read here is the row the generic path reads. Each statement checks a
    connection out and gives it back at once: a request holds none while it does anything
    else (its SQLAlchemy queries, sending its answer), so the pool bounds statements at once,
    not requests. The most recently used connection is handed out first; one idle for
    ``IDLE_SECONDS`` is closed.

    Why not asyncpg's own pool: a checkout and its return cost 20 µs there (a task for the
    timeout of every acquire, a shield and a timeout for every release, the reset protocol,
    a timer per connection), an eighth of an authenticated request's CPU, for what a list
    and a semaphore do here in 2 µs: only single autocommitted statements ever run on these
    connections, so nothing needs resetting between uses."""

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        _, self._connect = engine.dialect.create_connect_args(engine.url)
        # The URL's options for SQLAlchemy's adapter, not asyncpg.connect's (which refuses them):
        # its statement cache size (0 behind PgBouncer) sizes asyncpg's own cache here.
        self._connect.pop("prepared_statement_name_func", None)
        if "prepared_statement_cache_size" in self._connect:
            self._connect["statement_cache_size"] = self._connect.pop("prepared_statement_cache_size")
        cached = self._connect.get("statement_cache_size") != 0
        self._settings = _SETTINGS | _GENERIC_PLANS if cached else _SETTINGS
        self._free = asyncio.Semaphore(size)  # connections that may still be checked out
        self._idle: list[tuple[Any, float]] = []  # (connection, since when), the newest last
        self._out = 0  # checked out, or being opened
        self._lent: set[int] = set()  # ids of the connections checked out
        self._closing: asyncio.Event | None = None  # set when the last one out is back
        self._pruning: asyncio.TimerHandle | None = None
        self._pinned: ContextVar[Any] = ContextVar(f"pinned_{id(self)}", default=None)

    async def acquire(self) -> Any:
        """A connection for one statement. Waiting while ``size`` are out, and opening a new
        one, take ``ACQUIRE_TIMEOUT`` at most together (as asyncpg's pool and SQLAlchemy's
        allow); taking an idle one is a pop, with no timer and no task switch."""
        if self._closing is not None:
            raise PoolClosing("pool is closing")
        if not self._free.locked() and self._idle:
            return await self._take()
        async with asyncio.timeout(ACQUIRE_TIMEOUT):
            return await self._take()

    async def _take(self) -> Any:
        await self._free.acquire()  # returns at once while not locked
        if self._closing is not None:  # began while this one waited
            self._free.release()
            raise PoolClosing("pool is closing")
        self._out += 1
        try:
            while self._idle:
                connection, _ = self._idle.pop()
                if not connection.is_closed():  # its server went away while it sat here
                    break
            else:
                connection = await self._open()
        except BaseException:
            self._back()
            raise
        self._lent.add(id(connection))
        return connection

    async def _open(self) -> Any:
        connection = await asyncpg.connect(**self._connect, server_settings=self._settings)
        try:
            await _json_as_sqlalchemy(connection)
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def release(self, connection: Any, *, lost: bool = False) -> None:
        """Back to the pool; a ``lost`` one (or one left in a transaction, which nothing here
        begins) is closed, never handed out again, and so is every one while closing."""
        if id(connection) not in self._lent:  # twice would hand one connection to two tasks
            raise asyncpg.InterfaceError("a connection given back that this pool did not lend")
        self._lent.discard(id(connection))
        try:
            if lost or connection.is_closed() or connection.is_in_transaction():
                connection.terminate()
            elif self._closing is not None:
                await _close(connection)
            else:
                self._idle.append((connection, time.monotonic()))
                if self._pruning is None:
                    self._pruning = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._prune)
        finally:
            self._back()

    def _back(self) -> None:
        self._out -= 1
        self._free.release()
        if self._closing is not None and not self._out:
            self._closing.set()

    def _prune(self) -> None:
        """Closes the connections idle for ``IDLE_SECONDS`` (the oldest come first), and looks
        again when the next one will be."""
        self._pruning = None
        expired = time.monotonic() - IDLE_SECONDS
        while self._idle and self._idle[0][1] <= expired:
            connection, _ = self._idle.pop(0)
            connection.terminate()  # idle: nothing of it is in flight
        if self._idle:
            due = self._idle[0][1] + IDLE_SECONDS - time.monotonic()
            self._pruning = asyncio.get_running_loop().call_later(max(due, 0.0), self._prune)

    @asynccontextmanager
    async def _checked_out(self) -> AsyncIterator[Any]:
        """A connection of the pool, given back afterwards; one found dead is closed, never
        handed out again."""
        connection, lost = await self.acquire(), False
        try:
            yield connection
        except LOST_CONNECTION:
            lost = True
            raise
        finally:
            await self.release(connection, lost=lost)

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        """One connection for every statement run inside (in this task): one checkout for a
        few statements in a row, nothing else done between them (the fast lane's). A
        connection found dead there is an error: the caller asks again elsewhere."""
        async with self._checked_out() as connection:
            token = self._pinned.set(connection)
            try:
                yield
            finally:
                self._pinned.reset(token)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """The rows of ``sql``; on a connection found dead (a restart, a proxy), once more on
        a fresh one: a read in autocommit has done nothing that a retry could repeat."""
        pinned = self._pinned.get()
        if pinned is not None:
            return list(await pinned.fetch(sql, *args))
        try:
            async with self._checked_out() as connection:
                return list(await connection.fetch(sql, *args))
        except PoolClosing:
            raise
        except LOST_CONNECTION:
            log.warning("database_connection_lost_retrying_read")
        async with self._checked_out() as connection:
            return list(await connection.fetch(sql, *args))

    async def aclose(self) -> None:
        """Closes every connection once those checked out are back: a statement still running
        gives its own back meanwhile (and it is closed then), and one starting now is refused
        ("pool is closing"). Afterwards the pool is empty, and opens again on use."""
        if self._closing is not None:
            await self._closing.wait()
            return
        closing = self._closing = asyncio.Event()
        if self._pruning is not None:
            self._pruning.cancel()
            self._pruning = None
        idle, self._idle = self._idle, []
        try:
            await asyncio.gather(*(_close(connection) for connection, _ in idle))
            if self._out:
                await closing.wait()
        finally:
            closing.set()  # for any other aclose() waiting on it
            self._closing = None


async def _close(connection: Any) -> None:
    """Closes ``connection`` politely (a few seconds at most), else at once."""
    try:
        await connection.close(timeout=5)
    except Exception:  # already gone, or its server does not answer: nothing more to do
        connection.terminate()


async def _json_as_sqlalchemy(connection: Any) -> None:
    """json and jsonb come back decoded, as SQLAlchemy's asyncpg dialect sets them up."""
    await connection.set_type_codec("json", encoder=str, decoder=json.loads, schema="pg_catalog")
    await connection.set_type_codec("jsonb", encoder=str, decoder=json.loads, schema="pg_catalog")


async def fetch(session: AsyncSession, sql: str, args: Sequence[Any]) -> list[Any] | None:
    """The rows of ``sql`` (asyncpg Records) on the session's driver pool, or None when the
    fast path does not apply (none: SQLite, or a write unit of work)."""
    reader: DriverPool | None = session.info.get(READER)
    return None if reader is None else await reader.fetch(sql, args)


@asynccontextmanager
async def pooled(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The driver connection (asyncpg, aiosqlite) under a connection of ``engine``'s pool,
    returned to the pool afterwards. The pool's checkout events still run (the ping after an
    idle spell); one found dead while in use is discarded, never returned to the pool.

    ``engine.connect()`` built a SQLAlchemy ``Connection`` (and its events) around it for
    nothing: these callers never execute through it."""
    fairy = await engine.raw_connection()
    try:
        yield fairy.driver_connection
    except LOST_CONNECTION:
        await greenlet_spawn(fairy.invalidate)
        raise
    finally:
        await greenlet_spawn(fairy.close)  # after invalidate: only detaches


_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


def prepared(statement: ClauseElement) -> tuple[str, tuple[str, ...]]:
    """``statement`` (written with named ``bindparam``s) as PostgreSQL text with ``$n``
    placeholders, and the parameter names in placeholder order: the query stays written once,
    in SQLAlchemy, and is compiled once, at import."""
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), tuple(getattr(compiled, "positiontup", None) or ())


def inline(element: ClauseElement) -> str:
    """``element`` as PostgreSQL text with its values written in (literal binds): a part of a
    statement written as text (``db/written.py``), kept written once in SQLAlchemy."""
    return str(element.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))


@lru_cache(maxsize=256)  # a few statements and offsets, asked on every page: a regex each time
def shifted(sql: str, by: int) -> str:
    """``sql`` (from ``prepared``) with its ``$n`` placeholders moved up by ``by``: a part
    placed after ``by`` arguments of another statement."""
    return re.sub(r"\$(\d+)", lambda found: f"${int(found[1]) + by}", sql)
