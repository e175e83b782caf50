"""The hottest reads straight on the asyncpg connection under a session (PostgreSQL only).

Every API request authenticates (user + live session) and most then read one page: through
SQLAlchemy's async adapter each statement paid for building the query, its cache key, a
greenlet hop and result processing, which together were most of a request's CPU. These few
statements are fixed SQL text with ``$n`` parameters, run with asyncpg's own
prepared-statement cache on the *same pooled connection* the session checked out: no second
pool, no second connection per request, and the unit of work still releases it.

Only on a connection in autocommit mode (the request's read unit of work): a statement sent
past the adapter inside a transaction the adapter has not begun yet would run outside it.
Anything else (SQLite, a write unit of work) takes the generic SQLAlchemy path, which must
answer the same; the API tests run both.

A pooled connection found dead is retried once on a fresh one, as ``RetryingSession`` does:
only when the statement was the session's first, so nothing of the request happened yet.

``pooled`` is the same idea without a session, for code that owns its few statements (the
order desk, the shared rate budgets): the driver connection of a pooled connection, checked
out without building a SQLAlchemy ``Connection`` around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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


async def driver(session: AsyncSession) -> Any | None:
    """The asyncpg connection under ``session``'s connection when it is PostgreSQL in
    autocommit mode, else None (take the generic path). Checks the connection out if the
    session has none yet."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    connection = await session.connection()
    adapted = (await connection.get_raw_connection()).dbapi_connection
    if adapted is None or not adapted.autocommit:
        return None
    return adapted.driver_connection


async def fetch(session: AsyncSession, sql: str, args: Sequence[Any]) -> list[Any] | None:
    """The rows of ``sql`` (asyncpg Records), or None when the fast path does not apply."""
    first = not session.in_transaction()
    conn = await driver(session)
    if conn is None:
        return None
    try:
        return list(await conn.fetch(sql, *args))
    except LOST_CONNECTION:
        await (await session.connection()).invalidate()  # never back into the pool
        await session.rollback()  # the session starts anew on a fresh connection
        if not first:
            raise
    log.warning("database_connection_lost_retrying_read")
    conn = await driver(session)
    if conn is None:  # pragma: no cover - the same session, the same engine
        return None
    return list(await conn.fetch(sql, *args))


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
