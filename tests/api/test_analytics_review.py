"""Analytics figures a review found wrong, through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from tests.api.analytics_helpers import World, world_fixture  # noqa: F401 - the fixture
from tests.factories import account, txn

pytestmark = pytest.mark.e2e
D = Decimal


async def test_a_day_trade_listed_newest_first_realises_its_gain(world: World) -> None:
    await world.login()
    world.bank.accounts = [account("b", type=AccountType.BROKERAGE, currency="EUR", balance=D("1100"))]
    trade = {"type": TransactionType.TRADE, "symbol": "ACME", "currency": "EUR", "quantity": D(10)}
    world.bank.transactions = {  # the provider lists the day's rows newest first: the sale, then the buy
        "b": [
            txn("sell", "1100", date(2024, 1, 10), subtype=TransactionSubtype.SELL, **trade),
            txn("buy", "-1000", date(2024, 1, 10), subtype=TransactionSubtype.BUY, **trade),
        ]
    }
    world.bank.holdings = {"b": []}
    await world.sync(date(2024, 1, 31))
    perf = await world.get(
        "/analytics/performance",
        account_id=await world.account_id("b"),
        **{"from": "2024-01-01", "to": "2024-01-31"},
    )
    # 10 ACME bought for 1,000 and sold for 1,100 the same day: 100 realised, nothing left held.
    assert D(perf["realised_gain"]) == D("100.00")
    assert D(perf["unrealised_gain"]["value"]) == D("0.00")
