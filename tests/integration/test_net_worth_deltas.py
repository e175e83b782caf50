"""The per-currency daily net worth deltas, kept in step with snapshots, equal a rebuild."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.enums import AccountType
from tests.api.analytics_helpers import World, world_fixture  # noqa: F401 - the fixture
from tests.factories import account

pytestmark = pytest.mark.integration
D = Decimal


async def _deltas(world: World) -> list[tuple[str, date, Decimal]]:
    assert world.user is not None
    async with world.container.uow() as uow:
        return [r for r in await uow.analytics.net_worth_deltas(world.user.id, date(2100, 1, 1)) if r[2]]


async def test_incremental_deltas_equal_a_rebuild_whatever_the_order_of_snapshots(world: World) -> None:
    await world.login()
    world.bank.accounts = [
        account("cur", balance=D("100")),
        account("card", type=AccountType.CREDIT_CARD, balance=D("30")),
        account("usd", currency="USD", balance=None, available_balance=None),
    ]
    await world.sync(date(2024, 1, 1))
    world.bank.accounts[0].balance = D("120")
    world.bank.accounts[2].balance = D("7")
    await world.sync(date(2024, 1, 3))
    world.clock.at(date(2024, 1, 3), hour=20)  # a second sync the same day replaces its value
    world.bank.accounts[0].balance = D("125")
    await world.sync()
    world.bank.accounts[0].balance = D("110")  # a snapshot dated between two stored ones
    world.bank.accounts[1].balance = D("-45")
    await world.sync(date(2024, 1, 2))
    incremental = await _deltas(world)
    assert world.user is not None
    async with world.container.uow() as uow:
        await uow.analytics.rebuild_net_worth(world.user.id)
        await uow.commit()
    assert sorted(incremental) == sorted(await _deltas(world))
    # The running sum is each day's carried-forward total: GBP 100 - 30, 110 - 45, then 125 - 30.
    totals: dict[date, Decimal] = {}
    running = D(0)
    for currency, day, delta in sorted(incremental, key=lambda r: r[1]):
        if currency == "GBP":
            running += delta
            totals[day] = running
    assert totals == {date(2024, 1, 1): D(70), date(2024, 1, 2): D(65), date(2024, 1, 3): D(95)}
    r = await world.client.delete(f"/api/v1/connections/{world.connection_id}", headers=world.headers)
    assert r.status_code == 204
    assert await _deltas(world) == []


async def test_an_account_stated_in_another_currency_stops_counting_in_the_old_one(world: World) -> None:
    """A provider that now states an account in EUR (it was GBP): the account's value moves to
    EUR, and GBP no longer carries the old balance (the sum was GBP 100 + EUR 0 incrementally,
    GBP 100 + EUR 80 after a rebuild), whatever the order the snapshots arrive in."""
    await world.login()
    world.bank.accounts = [account("cur", balance=D("100"))]
    await world.sync(date(2024, 1, 1))
    world.bank.accounts = [account("cur", currency="EUR", balance=D("80"))]
    await world.sync(date(2024, 1, 3))
    world.bank.accounts = [account("cur", balance=D("90"))]  # a snapshot dated between the two
    await world.sync(date(2024, 1, 2))
    world.bank.accounts = [account("cur", currency="EUR", balance=D("85"))]
    await world.sync(date(2024, 1, 4))

    def totals(rows: list[tuple[str, date, Decimal]]) -> dict[tuple[str, date], Decimal]:
        running: dict[str, Decimal] = {}
        out: dict[tuple[str, date], Decimal] = {}
        for day in sorted({r[1] for r in rows}):
            for currency, at, delta in rows:
                if at == day:
                    running[currency] = running.get(currency, D(0)) + delta
            out |= {(c, day): v for c, v in running.items()}
        return out

    incremental = await _deltas(world)
    assert totals(incremental) == {
        ("GBP", date(2024, 1, 1)): D(100),
        ("GBP", date(2024, 1, 2)): D(90),
        ("GBP", date(2024, 1, 3)): D(0),
        ("EUR", date(2024, 1, 3)): D(80),
        ("GBP", date(2024, 1, 4)): D(0),
        ("EUR", date(2024, 1, 4)): D(85),
    }
    assert world.user is not None
    async with world.container.uow() as uow:
        await uow.analytics.rebuild_net_worth(world.user.id)
        await uow.commit()
    assert totals(await _deltas(world)) == totals(incremental)
