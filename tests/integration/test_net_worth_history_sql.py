"""Net worth history as the store computes it (PostgreSQL: running sums and revaluation in SQL)
equals the reference computation in Python over the same stored rows, on both databases.

The reference is the algorithm SQLite runs: every delta and close read back, summed with
Decimals point by point. Mixed currencies, a currency without fixings, a liability, holdings
whose quantities change, an instrument quoted in another currency and one never priced.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from finsync.application.net_worth import (
    _currency_totals,
    _position_values,
    _revalue,
    period_ends,
)
from finsync.application.valuation import Prices, all_accounts, load_book, rounded
from finsync.domain.analytics_ports import Interval, PositionSpan
from finsync.domain.enums import AccountType, AssetType
from tests.api.analytics_helpers import World, days, world_fixture  # noqa: F401 - the fixture
from tests.factories import account, holding

pytestmark = pytest.mark.integration
D = Decimal
_LOOKBACK = timedelta(days=14)


async def _reference(
    world: World, start: date, end: date, interval: Interval, target: str
) -> tuple[list[tuple[str, str]], list[str]]:
    assert world.user is not None
    user_id = world.user.id
    async with world.container.uow() as uow:
        points = period_ends(start, end, interval)
        spans = await uow.positions.spans(user_id)
        by_account: dict[object, list[PositionSpan]] = defaultdict(list)
        for span in spans:
            by_account[span.account_id].append(span)
        first_held = min((s.valid_from for s in spans), default=end + timedelta(days=1))
        revalue_from = max(first_held, start)
        deltas = await uow.analytics.net_worth_deltas(user_id, end)
        prices = await Prices.load(uow, {s.instrument_key for s in spans}, end, revalue_from - _LOOKBACK)
        currencies = {c for c, _, _ in deltas} | {target}
        currencies |= {b.currency for bars in prices.bars.values() for b in bars[-1:]}
        book = await load_book(uow, end, start - _LOOKBACK, currencies | {s.currency for s in spans})
        rates = {c: book.series(c, target, points) for c in currencies}
        missing: set[str] = set()
        totals = _currency_totals(deltas, points, rates, missing)
        if by_account and revalue_from <= end:
            accounts = {a.id: a for a in await all_accounts(uow, user_id) if a.id in by_account}
            series = await uow.analytics.snapshot_values(user_id, list(accounts), end, revalue_from)
            values = _position_values(by_account, points, prices, book, target)  # type: ignore[arg-type]
            _revalue(accounts, series, by_account, points, values, book, target, totals)  # type: ignore[arg-type]
    return [(p.isoformat(), str(rounded(totals[i], target))) for i, p in enumerate(points)], sorted(missing)


async def test_history_in_the_database_equals_the_reference_computation(world: World) -> None:
    await world.login()
    week = days(date(2024, 3, 1), 12)
    await world.fixings(
        {
            d: {"USD": str(D("1.08") + D(i) / 1000), "GBP": str(D("0.85") + D(i) / 2000)}
            for i, d in enumerate(week)
        }
    )
    world.bank.accounts = [
        account("eur", currency="EUR", balance=D("100.10")),
        account("usd", currency="USD", type=AccountType.SAVINGS, balance=D("110.55")),
        account("card", type=AccountType.CREDIT_CARD, balance=D("42.42")),  # a liability, in GBP
        account("yen", currency="JPY", balance=D("10000")),  # no JPY fixing: left out, named
        account("isa", type=AccountType.ISA, currency="EUR", balance=D("500"), cash_value=D("25.5")),
    ]
    world.bank.holdings = {
        "isa": [
            holding("ACME", currency="USD", quantity=D("2"), asset_type=AssetType.EQUITY),
            holding("LSE", currency="GBP", quantity=D("3.5"), asset_type=AssetType.EQUITY),
        ]
    }
    await world.prices("ticker:ACME", "ACME", {week[2]: "20.5", week[3]: "21", week[6]: "19.75"}, "USD")
    await world.prices("ticker:LSE", "LSE", {week[1]: "7.1", week[5]: "7.3"}, "GBP")
    await world.sync(week[2])
    world.bank.accounts[0].balance = D("150")
    world.bank.accounts[2].balance = D("60")
    world.bank.holdings["isa"][0].quantity = D("5")  # a new span from this day
    world.bank.holdings["isa"].append(holding("GHOST", currency="USD", quantity=D("1")))  # never priced
    await world.sync(week[4])
    world.bank.accounts[1].balance = D("99.99")
    world.bank.accounts[4].cash_value = D("30")
    world.bank.holdings["isa"] = world.bank.holdings["isa"][:2]  # GHOST sold: priced again
    await world.sync(week[6])
    world.clock.at(week[6], hour=21)  # a later value the same day replaces the earlier one
    world.bank.accounts[0].balance = D("175.25")
    await world.sync()

    checked = 0
    for start, end in ((week[0], week[-1]), (week[3], week[8]), (date(2024, 1, 1), date(2024, 4, 30))):
        for interval in (Interval.DAY, Interval.WEEK, Interval.MONTH):
            for target in ("EUR", "GBP", "USD"):
                got = await world.get(
                    "/net-worth/history",
                    **{"from": str(start), "to": str(end), "interval": interval.value, "currency": target},
                )
                points, missing = await _reference(world, start, end, interval, target)
                assert [(p["date"], p["value"]) for p in got["points"]] == points, (start, interval, target)
                assert got["missing_rates"] == missing
                checked += 1
    assert checked == 27
    daily = await world.get("/net-worth/history", **{"from": str(week[0]), "to": str(week[-1])})
    assert daily["missing_rates"] == ["JPY"]
    assert len({p["value"] for p in daily["points"]}) > 4  # the figures move: the comparison means something
