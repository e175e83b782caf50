"""Provider rate budgets shared between processes through PostgreSQL.

An API process validates a Trading 212 key (account summary: 1 call per 5 s) and a worker
process syncs right after it (account summary again). Each has its own limiter; only the
shared budget keeps the second call from earning a 429. Two containers on one database
stand for the two processes; the fake and both sides share one virtual clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from finsync.domain.enums import SyncStatus
from finsync.domain.errors import RateLimited
from finsync.infrastructure.db.engine import create_engine
from finsync.infrastructure.ratelimits import PgBuckets
from finsync.providers.http import RateLimit
from finsync.providers.ratelimit import SHARED_BUCKETS as _SHARED_BUCKETS
from tests.conftest import built, make_settings
from tests.factories import seed_user
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.fakes.trading212 import Trading212Store
from tests.fakes.trading212 import create_app as t212_app

pytestmark = pytest.mark.integration
KEY, SECRET = "fake-t212-key-for-budgets", "fake-t212-secret-for-budgets"


@pytest.fixture
def pg_url(pg_database: str | None) -> str:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    return pg_database


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def t212(clock: VirtualClock) -> Iterator[tuple[Trading212Store, str]]:
    store = Trading212Store()
    store.add_position("AAPL_US_EQ", "15.5", "170.25", "185.5", fx="0.79", currency="USD")
    with serve(t212_app(clock, api_key=KEY, api_secret=SECRET, store=store)) as url:
        yield store, url


async def test_two_processes_share_one_budget(pg_url: str, clock: VirtualClock) -> None:
    engines = [create_engine(pg_url), create_engine(pg_url)]
    try:
        first, second = (PgBuckets(e).bucket("exchange:budget-test:*", RateLimit(3, 60.0)) for e in engines)
        for _ in range(3):
            await first.acquire(clock, 1.0, "exchange")
        with pytest.raises(RateLimited):  # the other process sees those three sends
            await second.acquire(clock, 1.0, "exchange")
        start = clock.now()
        await second.acquire(clock, 120.0, "exchange")
        assert clock.now() - start == pytest.approx(60.0, abs=0.01)
    finally:
        for engine in engines:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DELETE FROM rate_budgets")
            await engine.dispose()


async def test_a_bucket_that_saw_an_older_row_never_overwrites_other_sends(
    pg_url: str, clock: VirtualClock
) -> None:
    """Each change is a compare-and-set on the row as the bucket last saw it: a bucket whose
    view is stale (another process sent meanwhile) reads again instead of writing over it, and
    twelve reservations racing from two processes get exactly the budget's five."""
    engines = [create_engine(pg_url), create_engine(pg_url)]
    try:
        first, second = (PgBuckets(e).bucket("exchange:cas-test:*", RateLimit(3, 60.0)) for e in engines)
        await first.acquire(clock, 1.0, "exchange")  # first has seen the row with one send
        await second.acquire(clock, 1.0, "exchange")
        await second.acquire(clock, 1.0, "exchange")
        with pytest.raises(RateLimited):  # first's one-send view is stale: the budget is spent
            await first.acquire(clock, 1.0, "exchange")

        racers = [PgBuckets(engines[i % 2]).bucket("exchange:race:*", RateLimit(5, 60.0)) for i in range(12)]
        outcomes = await asyncio.gather(
            *(bucket.acquire(clock, 0.0, "exchange") for bucket in racers), return_exceptions=True
        )
        assert sum(not isinstance(o, BaseException) for o in outcomes) == 5
        assert all(isinstance(o, RateLimited) for o in outcomes if isinstance(o, BaseException))
        async with engines[0].connect() as conn:
            stored = (
                await conn.exec_driver_sql("SELECT sent FROM rate_budgets WHERE key = 'exchange:race:*'")
            ).scalar_one()
        assert len(stored) == 5
    finally:
        for engine in engines:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DELETE FROM rate_budgets")
            await engine.dispose()


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-process"])
async def test_a_validation_in_the_api_and_a_sync_in_a_worker_earn_no_429(
    pg_url: str, tmp_path: Path, clock: VirtualClock, t212: tuple[Trading212Store, str], shared: bool
) -> None:
    fake, url = t212
    settings = make_settings(pg_url, tmp_path, trading212_live_url=url, shared_rate_limits=shared)
    options = {"adapter_options": {"clock": clock}}
    async with built(settings, **options) as api, built(settings, **options) as worker:
        user = await seed_user(api)
        created = await api.connections.create(
            user.id, "trading212", "ISA", "live", {"api_key": KEY, "api_secret": SECRET}
        )
        assert created.sync_run is not None
        _SHARED_BUCKETS.clear()  # what one process's memory knows, another's does not
        await worker.jobs.drain()  # the worker process runs the initial sync
        async with worker.uow() as uow:
            run = await uow.sync_runs.get(created.sync_run.id)
        assert run is not None
        assert run.status is SyncStatus.SUCCEEDED
        if shared:
            assert sum(fake.throttled.values()) == 0
        else:  # control: each process spends the whole budget, and the provider says so
            assert fake.throttled["account_summary"] >= 1


async def _stored(engine: AsyncEngine, key: str) -> tuple[list[float], float]:
    async with engine.connect() as conn:
        row = (
            await conn.exec_driver_sql(
                "SELECT CAST(sent AS text), blocked_until FROM rate_budgets WHERE key = $1", (key,)
            )
        ).one()
    return json.loads(row[0]), row[1]


async def test_a_settlement_is_stored_with_the_next_change_or_at_close(
    pg_url: str, clock: VirtualClock
) -> None:
    """Moving a send to its answer's time costs no round trip of its own: it rides with the
    bucket's next reservation, or ``flush`` (the client closing). An answer saying the
    provider counts sends we do not know of is stored at once."""
    engine = create_engine(pg_url)
    key = "exchange:settle-test:*"
    try:
        bucket = PgBuckets(engine).bucket(key, RateLimit(10, 60.0))
        sent = await bucket.acquire(clock, 1.0, "exchange")
        await clock.sleep(0.5)
        await bucket.answered(sent, clock.now(), remaining=9, reset=clock.now() + 60)
        assert (await _stored(engine, key))[0] == [sent]  # not stored yet: nothing new to others
        second = await bucket.acquire(clock, 1.0, "exchange")
        assert (await _stored(engine, key))[0] == [sent + 0.5, second]  # rode with the reservation
        await clock.sleep(0.5)
        await bucket.answered(second, clock.now(), remaining=None, reset=None)
        await bucket.flush()
        assert (await _stored(engine, key))[0] == [sent + 0.5, second + 0.5]

        await bucket.answered(second, clock.now(), remaining=0, reset=clock.now() + 30)
        assert (await _stored(engine, key))[1] >= clock.now() + 30  # the provider's block, at once
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM rate_budgets")
        await engine.dispose()
