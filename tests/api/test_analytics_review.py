"""Analytics figures a review found wrong, through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from finsync.domain.enums import AccountType, AssetType, TransactionSubtype, TransactionType
from tests.api.analytics_helpers import World, world_fixture  # noqa: F401 - the fixture
from tests.factories import account, holding, txn

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


async def test_unrealised_gain_of_a_listing_quoted_in_another_currency_than_the_accounts(
    world: World,
) -> None:
    await world.login()
    await world.fixings({date(2024, 1, 2): {"USD": "1.25"}})
    world.bank.accounts = [
        account("isa", type=AccountType.ISA, currency="EUR", balance=D("1000"), cash_value=D("0"))
    ]
    world.bank.holdings = {  # 10 ACME, a US listing, held in a EUR account
        "isa": [
            holding(
                "ACME",
                currency="USD",
                quantity=D(10),
                average_cost=D(100),
                market_value=D(1250),
                current_price=D(125),
                asset_type=AssetType.EQUITY,
            )
        ]
    }
    await world.sync(date(2024, 1, 2))
    await world.sync(date(2024, 1, 31))
    isa = await world.account_id("isa")
    period = {"from": "2024-01-01", "to": "2024-01-31", "currency": "EUR"}
    # Worth 1,250 USD = 1,000 EUR, bought at 100 USD each = 800 EUR: 200 EUR unrealised.
    for perf in (
        await world.get("/analytics/performance", account_id=isa, **period),
        await world.get("/analytics/performance", **period),
    ):
        assert perf["unrealised_gain"] == {"value": "200.00", "reason": None}
    # Our own close (in USD) too: 10 x 130 USD = 1,040 EUR, minus 800.
    await world.prices("ticker:ACME", "ACME", {date(2024, 1, 30): "130"}, "USD")
    perf = await world.get("/analytics/performance", account_id=isa, **period)
    assert perf["unrealised_gain"] == {"value": "240.00", "reason": None}


async def test_income_leaves_out_what_you_excluded_from_analytics(world: World) -> None:
    await world.login()
    dividend = {"type": TransactionType.INCOME, "subtype": TransactionSubtype.DIVIDEND, "currency": "EUR"}
    tax = {"type": TransactionType.TAX, "subtype": TransactionSubtype.TAX, "currency": "EUR"}
    world.bank.accounts = [account("isa", type=AccountType.ISA, currency="EUR")]
    world.bank.transactions = {
        "isa": [
            txn("d1", "100.00", date(2024, 1, 10), symbol="ACME", **dividend),
            txn("d2", "50.00", date(2024, 1, 11), symbol="ACME", **dividend),  # booked twice, say
            txn("t2", "-7.50", date(2024, 1, 11), symbol="ACME", **tax),
        ]
    }
    await world.sync(date(2024, 2, 1))
    items = (await world.get("/transactions"))["items"]
    for pid in ("d2", "t2"):
        row = next(i for i in items if i["provider_transaction_id"] == pid)
        r = await world.client.patch(
            f"/api/v1/transactions/{row['id']}", headers=world.headers, json={"excluded_from_analytics": True}
        )
        assert r.status_code == 200, r.text
    period = {"from": "2024-01-01", "to": "2024-01-31", "currency": "EUR"}
    (month,) = (await world.get("/analytics/income", **period))["periods"]
    assert month["values"] == {"gross": "100.00", "withholding_tax": "0.00", "net": "100.00"}
    assert month["count"] == 1
    (month,) = (await world.get("/analytics/cash-flow", **period))["periods"]
    assert month["values"]["income"] == "100.00"
