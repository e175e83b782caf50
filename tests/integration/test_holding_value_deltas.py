"""Recorded holdings' stored value moves (``holding_value_deltas``, PostgreSQL) never change a
figure: after every write path that moves them (a sync recording or closing positions, new and
corrected closes, an instrument appearing, a connection's and a user's deletion) the table is
what a recomputation from scratch gives, and the history statement equals the Python reference.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from finsync.application.net_worth import _history_in_python, _Shadows, period_ends
from finsync.application.valuation import rounded
from finsync.domain.analytics_ports import Interval
from finsync.domain.enums import AccountType, AssetType
from finsync.domain.market import Instrument, PriceBar
from tests.api.analytics_helpers import World, days, world_fixture  # noqa: F401 - the fixture
from tests.factories import account, holding

pytestmark = pytest.mark.integration
D = Decimal
_ROWS = "SELECT account_id, currency, day, value, held, unpriced FROM holding_value_deltas ORDER BY 1, 2, 3"
_ALL = "SELECT holding_values_refresh(ARRAY(SELECT DISTINCT account_id FROM holding_history))"


@pytest.fixture(autouse=True)
def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite values holdings in Python: no stored moves")


async def _stored_and_recomputed(world: World) -> tuple[list[Any], list[Any]]:
    """The stored rows, and the rows a recomputation of every account gives (rolled back)."""
    async with world.container.uow() as uow:
        session = uow.session  # type: ignore[attr-defined]
        stored = [tuple(r) for r in (await session.execute(text(_ROWS))).all()]
        await session.execute(text(_ALL))
        recomputed = [tuple(r) for r in (await session.execute(text(_ROWS))).all()]
        await uow.rollback()
    return stored, recomputed


async def _check(world: World, week: list[date]) -> int:
    """Stored rows == recomputed; statement == Python reference over ranges, intervals, targets."""
    stored, recomputed = await _stored_and_recomputed(world)
    assert stored == recomputed
    assert world.user is not None
    checked = 0
    for start, end in ((week[0], week[-1]), (week[3], week[7]), (week[0] - timedelta(days=40), week[-1])):
        for interval in (Interval.DAY, Interval.WEEK, Interval.MONTH):
            for target in ("EUR", "USD"):
                points = period_ends(start, end, interval)
                async with world.container.uow() as uow:
                    found = await uow.analytics.history_points(
                        world.user.id, start, end, points, interval is Interval.DAY, target, {}
                    )
                    reference = await _history_in_python(
                        uow, world.user.id, start, end, interval, target, points, _Shadows()
                    )
                assert found is not None
                totals = [rounded(t, target) for t in found.totals]
                assert totals == [v for _, v in reference.points], (start, end, interval, target)
                assert sorted(found.missing) == reference.missing_rates
                checked += 1
    return checked


async def _instrument_id(world: World, key: str) -> UUID:
    async with world.container.uow() as uow:
        return next(i.id for i in await uow.market.instruments() if i.key == key)


async def _save_prices(world: World, key: str, bars: dict[date, str], currency: str = "USD") -> None:
    iid = await _instrument_id(world, key)
    async with world.container.uow() as uow:
        await uow.market.save_prices(iid, [PriceBar(d, D(c), currency, "yahoo") for d, c in bars.items()])
        await uow.commit()


async def test_every_write_path_keeps_the_stored_moves_and_the_history_exact(world: World) -> None:
    await world.login()
    week = days(date(2024, 3, 1), 12)
    await world.fixings({d: {"USD": str(D("1.08") + D(i) / 1000)} for i, d in enumerate(week) if i != 4})
    world.bank.accounts = [
        account("eur", currency="EUR", balance=D("100.10")),
        account("isa", type=AccountType.ISA, currency="EUR", balance=D("500"), cash_value=D("25.5")),
        account("gia", type=AccountType.BROKERAGE, currency="USD", balance=D("900"), cash_value=D("10")),
    ]
    world.bank.holdings = {
        "isa": [holding("ACME", currency="USD", quantity=D("2"), asset_type=AssetType.EQUITY)],
        "gia": [holding("ACME", currency="USD", quantity=D("7"), asset_type=AssetType.EQUITY)],
    }
    await world.prices("ticker:ACME", "ACME", {week[2]: "20.5", week[3]: "21", week[6]: "19.75"}, "USD")
    checked = 0
    # A sync records the positions (inserted spans).
    await world.sync(week[1])
    checked += await _check(world, week)
    # A later sync changes a quantity and adds a position never priced (a span closed, two opened).
    world.bank.holdings["isa"][0].quantity = D("5")
    world.bank.holdings["isa"].append(holding("NEWCO", currency="USD", quantity=D("3")))
    await world.sync(week[4])
    checked += await _check(world, week)
    # Its instrument appears, then its closes: the position is priced from its first close.
    async with world.container.uow() as uow:
        await uow.market.add_instrument(Instrument(key="ticker:NEWCO", symbol="NEWCO", currency="USD"))
        await uow.commit()
    checked += await _check(world, week)
    await _save_prices(world, "ticker:NEWCO", {week[5]: "3.25", week[8]: "3.5"})
    checked += await _check(world, week)
    # A new close, then a corrected one (an upsert of a stored day: an update alone).
    await _save_prices(world, "ticker:ACME", {week[7]: "22"})
    checked += await _check(world, week)
    await _save_prices(world, "ticker:ACME", {week[3]: "21.4"})
    checked += await _check(world, week)
    # A sale: the position's span closes.
    world.bank.holdings["isa"] = world.bank.holdings["isa"][1:]
    await world.sync(week[6])
    checked += await _check(world, week)
    async with world.container.uow() as uow:
        rows = (await uow.session.execute(text("SELECT count(*) FROM holding_value_deltas"))).scalar()  # type: ignore[attr-defined]
    assert rows  # the comparisons above ran on stored moves
    assert rows > 10
    assert checked == 7 * 18
    # Deleting the connection deletes its accounts: their moves go too.
    assert world.connection_id is not None
    assert world.user is not None
    await world.container.connections.delete(world.connection_id, world.user.id)
    assert await _stored_and_recomputed(world) == ([], [])


async def _one_position(world: World, week: list[date]) -> None:
    """Signed in, an ISA holding 2 ACME (closed at 20.50 USD on the week's second day), synced
    on its third."""
    await world.login()
    world.bank.accounts = [
        account("isa", type=AccountType.ISA, currency="EUR", balance=D("5"), cash_value=D("1"))
    ]
    world.bank.holdings = {"isa": [holding("ACME", currency="USD", quantity=D("2"))]}
    await world.prices("ticker:ACME", "ACME", {week[1]: "20.5"}, "USD")
    await world.sync(week[2])


async def test_a_user_deleted_leaves_no_stored_moves(world: World) -> None:
    await _one_position(world, days(date(2024, 3, 1), 6))
    assert (await _stored_and_recomputed(world))[0]
    assert world.user is not None
    await world.container.userdata.delete_account(world.user.id)
    assert await _stored_and_recomputed(world) == ([], [])


async def test_a_quote_currency_changed_after_the_range_is_revalued_from_the_closes(world: World) -> None:
    """The moves are keyed by the currency of the latest close; a history ending before the
    instrument's quotes changed currency values it in the currency it had then, as before."""
    await world.login()
    week = days(date(2024, 3, 1), 12)
    await world.fixings({d: {"USD": "1.08", "GBP": "0.85"} for d in week})
    world.bank.accounts = [
        account("isa", type=AccountType.ISA, currency="EUR", balance=D("500"), cash_value=D("25.5"))
    ]
    world.bank.holdings = {"isa": [holding("ACME", currency="USD", quantity=D("2"))]}
    await world.prices("ticker:ACME", "ACME", {week[1]: "20", week[3]: "21"}, "USD")
    await world.sync(week[2])
    await _save_prices(world, "ticker:ACME", {week[9]: "17"}, currency="GBP")
    assert await _check(world, week[:8]) == 18  # ends before the GBP close: still USD
    assert await _check(world, week) == 18


async def test_two_writers_repricing_one_account_at_once_leave_it_exact(
    world: World, database_url: str
) -> None:
    """Two transactions add closes of one held instrument at once: the second recomputes after
    the first commits (advisory lock per account), from both closes. Without the lock it would
    insert next to rows it cannot see (a duplicate key) or miss the other's close."""
    from finsync.infrastructure.db.engine import create_engine

    week = days(date(2024, 3, 1), 8)
    await _one_position(world, week)
    iid = await _instrument_id(world, "ticker:ACME")
    add = "INSERT INTO prices VALUES (:iid, :day, :close, 'USD', 'yahoo', false)"
    engine = create_engine(database_url)
    try:
        async with engine.connect() as first, engine.connect() as second, engine.connect() as watcher:
            await first.begin()
            await first.execute(text(add), {"iid": iid, "day": week[4], "close": D("21")})

            async def other() -> None:
                async with second.begin():
                    await second.execute(text(add), {"iid": iid, "day": week[6], "close": D("22.5")})

            task = asyncio.create_task(other())
            # Until the second writer waits for the first (on its lock; without the lock, on a
            # row the first deleted) or is done.
            waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"
            while not task.done() and not (await watcher.execute(text(waiting))).scalar():  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # (another connection is watched: no event to await)
            await first.commit()
            await task
    finally:
        await engine.dispose()
    stored, recomputed = await _stored_and_recomputed(world)
    assert stored == recomputed
    assert [r[2] for r in stored] == [week[2], week[4], week[6]]
    assert await _check(world, week) == 18
