"""The read path's own connection pool (``db/raw.py``'s ``DriverPool``) against PostgreSQL: it
bounds the connections out, hands the newest idle one out first, waits a bounded time, closes
what sat idle too long and never hands out a connection whose server ended it. Closing it
and a connection lost mid-statement are held in ``test_read_path.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from structlog.testing import capture_logs

from finsync.bootstrap import Container
from finsync.infrastructure.db import raw
from finsync.infrastructure.db.engine import create_engine
from tests.sql import terminate_backend

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(container: Container) -> AsyncIterator[raw.DriverPool]:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL behaviour")
    made = raw.DriverPool(container.engine, 2)
    try:
        yield made
    finally:  # waits for every connection out: a failed test may have left one
        await asyncio.wait_for(made.aclose(), 5)


async def _pid(connection: object) -> int:
    return int(await connection.fetchval("SELECT pg_backend_pid()"))  # type: ignore[attr-defined]


async def _until_closed(connection: object) -> bool:
    """Whether ``connection`` is closed within a second (asyncpg sees a closed socket when
    the loop reads it)."""
    for _ in range(100):
        if connection.is_closed():  # type: ignore[attr-defined]
            return True
        await asyncio.sleep(0.01)
    return False


async def test_the_pool_reuses_the_connection_given_back_last(pool: raw.DriverPool) -> None:
    first, second = await pool.acquire(), await pool.acquire()
    assert await _pid(first) != await _pid(second)
    await pool.release(first)
    await pool.release(second)
    again = await pool.acquire()
    assert again is second  # the newest: the others may age out
    await pool.release(again)


async def test_a_checkout_past_the_size_waits_for_one_to_come_back(pool: raw.DriverPool) -> None:
    held = [await pool.acquire(), await pool.acquire()]
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # both are out
    await pool.release(held[0])
    assert await asyncio.wait_for(waiting, 5) is held[0]
    for connection in (held[1], waiting.result()):
        await pool.release(connection)


async def test_a_checkout_waits_at_most_the_acquire_timeout(
    pool: raw.DriverPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw, "ACQUIRE_TIMEOUT", 0.05)
    held = [await pool.acquire(), await pool.acquire()]
    with pytest.raises(TimeoutError):
        await pool.acquire()
    cancelled = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    for connection in held:
        await pool.release(connection)
    # Neither the timed-out wait nor the cancelled one kept a place: both fit again.
    again = [await asyncio.wait_for(pool.acquire(), 5) for _ in range(2)]
    for connection in again:
        await pool.release(connection)


async def test_a_connection_ended_while_idle_is_never_handed_out(pool: raw.DriverPool) -> None:
    connection = await pool.acquire()
    pid = await _pid(connection)
    await pool.release(connection)
    await terminate_backend(pid)
    await _until_closed(connection)
    fresh = await pool.acquire()
    assert fresh is not connection
    assert await _pid(fresh) != pid
    await pool.release(fresh)


async def test_a_connection_lost_or_left_in_a_transaction_is_closed_not_kept(pool: raw.DriverPool) -> None:
    lost, in_transaction = await pool.acquire(), await pool.acquire()
    await in_transaction.execute("BEGIN")
    await pool.release(lost, lost=True)
    await pool.release(in_transaction)
    assert lost.is_closed()
    assert in_transaction.is_closed()
    fresh = [await pool.acquire(), await pool.acquire()]
    assert not {id(c) for c in fresh} & {id(lost), id(in_transaction)}
    for connection in fresh:
        await pool.release(connection)


async def test_idle_connections_are_closed_after_idle_seconds(
    pool: raw.DriverPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw, "IDLE_SECONDS", 0.05)
    old, kept = await pool.acquire(), await pool.acquire()
    await pool.release(old)
    await asyncio.sleep(0.03)
    await pool.release(kept)  # idle for less than the other: closed later
    assert await _until_closed(old)
    assert await _until_closed(kept)
    assert [tuple(r) for r in await pool.fetch("SELECT 1", [])] == [(1,)]  # opens a new one


async def test_a_connection_given_back_twice_is_refused(pool: raw.DriverPool) -> None:
    connection = await pool.acquire()
    await pool.release(connection)
    with pytest.raises(asyncpg.InterfaceError, match="did not lend"):
        await pool.release(connection)  # else two tasks could get it at once
    first, second = await pool.acquire(), await pool.acquire()
    assert first is not second
    for each in (first, second):
        await pool.release(each)


async def test_opening_a_connection_counts_against_the_acquire_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database that accepts the connection and never answers: the checkout fails after
    ``ACQUIRE_TIMEOUT``, not after asyncpg's own minute of connect timeout, and keeps no place."""
    server = await asyncio.start_server(lambda *_: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/silent")
    pool = raw.DriverPool(engine, 1)
    monkeypatch.setattr(raw, "ACQUIRE_TIMEOUT", 0.1)
    try:
        for _ in range(2):  # the second would wait for the first's place if it were kept
            checkout = asyncio.create_task(pool.acquire())
            await asyncio.wait({checkout}, timeout=5)
            if not checkout.done():  # still connecting: only asyncpg's own timeout would end it
                checkout.cancel()
                pytest.fail("the checkout was still opening its connection after 5 s")
            with pytest.raises(TimeoutError):
                checkout.result()
    finally:
        await asyncio.wait_for(pool.aclose(), 5)
        server.close()
        await engine.dispose()


async def test_a_read_while_closing_is_refused_not_retried_as_a_lost_connection(
    pool: raw.DriverPool,
) -> None:
    held = await pool.acquire()
    closing = asyncio.create_task(pool.aclose())
    await asyncio.sleep(0.01)
    with capture_logs() as logs, pytest.raises(raw.PoolClosing):
        await pool.fetch("SELECT 1", [])
    assert not [entry for entry in logs if entry["event"] == "database_connection_lost_retrying_read"]
    await pool.release(held)
    await asyncio.wait_for(closing, 5)
