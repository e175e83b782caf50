"""SQLite reads run on the event loop's own thread: for the fast lane's short reads only.

aiosqlite runs every call (a cursor, a statement, its rows, closing the cursor) on its
connection's thread and wakes the event loop for the answer: four thread hand-overs a
statement, each a queue, a futex, the GIL and the loop's self-pipe. Measured in process on a
SQLite page of 50 items with 16 requests at once, those hand-overs were most of a request's
CPU (``GET /users/me`` 0.73 ms with them, 0.20 ms without; a page of transactions 2.4 ms,
1.0 ms). An index seek for a page takes SQLite far less than one hand-over.

The catch is that a statement run here holds the whole event loop until it ends, so this
engine serves only reads whose cost is bounded: a user by primary key, a page sought in an
index (``tests/integration/test_list_plans.py`` holds those plans). Every other read keeps
aiosqlite, whose thread lets the loop go on meanwhile. The connections are read-only
(``query_only``): a write waiting for SQLite's write lock would stall the loop, and the loop
would never get to the writer that holds it. In WAL mode (``engine.py``) readers never wait
for a writer; whatever else makes one wait (another process holding the file in exclusive
locking mode, a recovery after a crash) is seen within ``READ_BUSY_SECONDS``, and the statement
is then asked again on a worker thread, on a read-only connection of that thread's own, with
the usual busy timeout: the loop goes on meanwhile, the request waits as it would have on
aiosqlite, and the pooled connection never leaves the loop's thread (a request cancelled
meanwhile may close it at once).

The classes below stand in for aiosqlite's connection and cursor, whose methods SQLAlchemy's
aiosqlite dialect awaits: the same calls on ``sqlite3``, done before the await returns.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from functools import partial
from typing import Any

import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger(__name__)
READ_BUSY_SECONDS = 0.05  # the longest a read may hold the loop waiting for a lock
WAIT_BUSY_SECONDS = 30.0  # then on a worker thread, as long as the threaded engine waits
# Threads of their own for those waits: the default executor's few also hash passwords and
# parse imports, which a long lock must not hold up.
_WAITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="finsync-sqlite-wait")
Opener = Callable[[], sqlite3.Connection]


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor, open_waiting: Opener) -> None:
        self._cursor = cursor
        self._open_waiting = open_waiting
        self._waited: tuple[deque[Any], Any] | None = None  # rows and description read on a thread

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description if self._waited is None else self._waited[1]

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        self._waited = None
        try:
            self._cursor.execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            log.info("sqlite_read_busy_waiting_on_a_thread")
            wait = partial(_read_waiting, self._open_waiting, sql, parameters)
            rows, description = await asyncio.get_running_loop().run_in_executor(_WAITERS, wait)
            self._waited = (deque(rows), description)
        return self

    async def executemany(self, sql: str, parameters: Any) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        if self._waited is None:
            return self._cursor.fetchall()
        rows = list(self._waited[0])
        self._waited[0].clear()
        return rows

    async def fetchone(self) -> Any:
        if self._waited is None:
            return self._cursor.fetchone()
        return self._waited[0].popleft() if self._waited[0] else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if self._waited is None:
            return self._cursor.fetchmany(size or self._cursor.arraysize)
        rows = self._waited[0]
        return [rows.popleft() for _ in range(min(size or self._cursor.arraysize, len(rows)))]

    async def close(self) -> None:
        self._cursor.close()


def _read_waiting(open_waiting: Opener, sql: str, parameters: Any) -> tuple[list[Any], Any]:
    """On a worker thread: ``sql``'s rows and description, read on a connection of this call's
    own that waits for the lock as long as the threaded engine would."""
    with closing(open_waiting()) as connection:
        cursor = connection.execute(sql, parameters)
        return cursor.fetchall(), cursor.description


class _Calls:
    """What the dialect puts on aiosqlite's queue (to set the isolation level): done at once."""

    def __init__(self) -> None:
        self.closed = False

    def put_nowait(self, call: tuple[Any, Callable[[], Any]]) -> None:
        future, function = call
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    def __init__(self, connection: sqlite3.Connection, open_waiting: Opener) -> None:
        self._conn = connection  # the names aiosqlite's connection has, which the dialect reads
        self._tx = _Calls()
        self._open_waiting = open_waiting

    @property
    def _connection(self) -> sqlite3.Connection:
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor(), self._open_waiting)

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def create_aggregate(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_aggregate(*args, **kwargs)


def inline_connector(url: str) -> Callable[[], Awaitable[InlineConnection]]:
    """``create_async_engine``'s ``async_creator`` for ``url`` (a SQLite file): read-only
    connections on the caller's thread, opened with the arguments aiosqlite would get (and
    the same for the waits on a worker thread, with the longer busy timeout)."""
    parsed = make_url(url)
    args, options = parsed.get_dialect()().create_connect_args(parsed)

    def opened(timeout: float) -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(  # type: ignore[call-overload]
            *args, **{**options, "timeout": timeout, "check_same_thread": False}
        )
        connection.execute("PRAGMA query_only=ON")  # refuses writes
        return connection

    async def connect() -> InlineConnection:
        return InlineConnection(opened(READ_BUSY_SECONDS), partial(opened, WAIT_BUSY_SECONDS))

    return connect
