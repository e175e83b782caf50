"""Net worth history as PostgreSQL computes it in one statement (``net_worth_history``): its
exact cross rates (half-even at the tenth place, like ``RateBook``), the last earlier fixing
on days without one, and the revaluation of an account counted elsewhere only before its cut.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from finsync.application.net_worth import _history_in_python, _Shadows, period_ends
from finsync.application.valuation import rounded
from finsync.domain.analytics_ports import Interval
from finsync.domain.enums import AccountType, AssetType
from finsync.domain.fx import RateBook
from tests.api.analytics_helpers import World, days, world_fixture  # noqa: F401 - the fixture
from tests.factories import account, holding

pytestmark = pytest.mark.integration
D = Decimal


async def test_a_rate_that_ties_at_its_tenth_place_rounds_half_even(world: World) -> None:
    """1/81.92 = 0.01220703125: half-even keeps ...312 (half-up would make 100,000,000 JPY
    1,220,703.13 EUR); Saturday and Sunday use Friday's fixing; Thursday has none yet."""
    await world.login()
    thursday = date(2024, 3, 7)
    friday, monday = thursday + timedelta(days=1), thursday + timedelta(days=4)
    await world.fixings({friday: {"JPY": "81.92"}, monday: {"JPY": "80"}})
    world.bank.accounts = [account("yen", currency="JPY", balance=D("100000000"))]
    await world.sync(thursday)
    got = await world.get(
        "/net-worth/history", **{"from": str(thursday), "to": str(monday), "currency": "EUR"}
    )
    assert [p["value"] for p in got["points"]] == [
        "0.00",
        "1220703.12",
        "1220703.12",
        "1220703.12",
        "1250000.00",
    ]
    assert got["missing_rates"] == ["JPY"]  # Thursday: held, but no fixing yet
    rate = RateBook.of([("JPY", friday, D("81.92"))]).rate("JPY", "EUR", friday + timedelta(days=2))
    assert rate is not None  # the rule the statement follows, from the Python side
    assert (rate.value, rate.day) == (D("0.0122070312"), friday)


async def test_a_shadow_is_revalued_only_before_its_cut_as_in_python(world: World, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite computes history in Python: there is no statement to compare")
    await world.login()
    week = days(date(2024, 3, 1), 10)
    await world.fixings({d: {"USD": str(D("1.08") + D(i) / 1000)} for i, d in enumerate(week) if i != 4})
    world.bank.accounts = [
        account("eur", currency="EUR", balance=D("100.10")),
        account("isa", type=AccountType.ISA, currency="EUR", balance=D("500"), cash_value=D("25.5")),
    ]
    world.bank.holdings = {
        "isa": [holding("ACME", currency="USD", quantity=D("2"), asset_type=AssetType.EQUITY)]
    }
    await world.prices("ticker:ACME", "ACME", {week[2]: "20.5", week[3]: "21", week[6]: "19.75"}, "USD")
    await world.sync(week[1])
    world.bank.holdings["isa"][0].quantity = D("5")
    world.bank.accounts[1].cash_value = D("30")
    await world.sync(week[4])
    assert world.user is not None
    isa = await world.account_id("isa")
    checked = 0
    for cut in (None, week[3], week[5]):
        for interval in (Interval.DAY, Interval.WEEK):
            for target in ("EUR", "USD"):
                start, end = week[0], week[-1]
                points = period_ends(start, end, interval)
                shadows = _Shadows(cut={} if cut is None else {UUID(isa): cut})
                async with world.container.uow() as uow:
                    found = await uow.analytics.history_points(
                        world.user.id, start, end, points, interval is Interval.DAY, target, shadows.cut
                    )
                    reference = await _history_in_python(
                        uow, world.user.id, start, end, interval, target, points, shadows
                    )
                assert found is not None
                totals = [rounded(t, target) for t in found.totals]
                assert totals == [v for _, v in reference.points], (cut, interval, target)
                assert sorted(found.missing) == reference.missing_rates
                checked += 1
    assert checked == 12
