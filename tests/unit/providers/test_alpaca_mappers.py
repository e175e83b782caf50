"""Alpaca mappers on realistic payloads (every decimal a string, as Alpaca sends it)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import AssetType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData
from finsync.providers.alpaca import mappers

pytestmark = pytest.mark.unit

ACCOUNT = {
    "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA3QNWXUQ0ZR", "status": "ACTIVE",
    "currency": "USD", "cash": "4120.55", "equity": "11873.2", "last_equity": "11790.01",
    "buying_power": "23746.4", "long_market_value": "7952.65", "short_market_value": "-200",
    "portfolio_value": "11873.2", "created_at": "2024-02-01T15:04:05.123456Z",
}  # fmt: skip
POSITION = {
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "symbol": "AAPL", "exchange": "NASDAQ",
    "asset_class": "us_equity", "avg_entry_price": "171.02", "qty": "13", "qty_available": "13",
    "side": "long", "market_value": "2436.59", "cost_basis": "2223.26", "unrealized_pl": "213.33",
    "unrealized_plpc": "0.0959",
    "current_price": "187.43", "lastday_price": "185.1", "change_today": "0.0126",
}  # fmt: skip
FILL = {
    "activity_type": "FILL", "id": "20250303143001512::8efc7b9a-8b2b-4000-9955-d36e7db0df74",
    "transaction_time": "2025-03-03T14:30:01.512Z", "type": "partial_fill", "price": "187.43", "qty": "3",
    "side": "buy", "symbol": "AAPL", "leaves_qty": "2", "cum_qty": "3",
    "order_id": "904837e3-3b76-47ec-b432-046db6215712", "order_status": "partially_filled",
}  # fmt: skip


def activity(kind: str, net: str, **extra: str) -> dict[str, Any]:
    return {
        "activity_type": kind, "id": f"20250110000000000::{kind.lower()}-1", "date": "2025-01-10",
        "net_amount": net, "description": f"{kind}", "status": "executed", **extra,
    }  # fmt: skip


def test_account() -> None:
    account = mappers.map_account(ACCOUNT, environment="paper")
    assert account.provider_account_id == ACCOUNT["id"]
    assert (account.balance, account.cash_value) == (Decimal("11873.2"), Decimal("4120.55"))
    assert account.holdings_value == Decimal("7752.65")  # long + (negative) short
    assert account.name == "Alpaca Paper PA3QNWXUQ0ZR"


def test_long_and_short_positions() -> None:
    holding = mappers.map_position(POSITION, "USD")
    assert (holding.symbol, holding.quantity, holding.asset_type) == ("AAPL", Decimal("13"), AssetType.EQUITY)
    assert (holding.average_cost, holding.current_price) == (Decimal("171.02"), Decimal("187.43"))
    assert (holding.market_value, holding.unrealized_pnl) == (Decimal("2436.59"), Decimal("213.33"))
    assert (holding.currency, holding.price_currency) == ("USD", "USD")
    short = mappers.map_position({**POSITION, "symbol": "TSLA", "qty": "2", "side": "short"}, "USD")
    assert short.quantity == Decimal("-2")
    assert mappers.map_position(
        {**POSITION, "symbol": "BTCUSD", "asset_class": "crypto"}, "USD"
    ).asset_type is (AssetType.CRYPTO)


def test_buy_fill_is_money_out() -> None:
    tx = mappers.map_activity(FILL, "USD")
    assert tx.provider_transaction_id == FILL["id"]
    assert (tx.type, tx.subtype) == (TransactionType.TRADE, TransactionSubtype.BUY)
    assert (tx.amount, tx.quantity, tx.unit_price) == (Decimal("-562.29"), Decimal("3"), Decimal("187.43"))
    assert tx.transaction_date == date(2025, 3, 3)


def test_sell_fill_is_money_in() -> None:
    tx = mappers.map_activity({**FILL, "side": "sell_short"}, "USD")
    assert (tx.subtype, tx.amount) == (TransactionSubtype.SELL, Decimal("562.29"))


@pytest.mark.parametrize(
    ("kind", "net", "expected"),
    [
        ("DIV", "3.12", (TransactionType.INCOME, TransactionSubtype.DIVIDEND)),
        ("DIVCGL", "1.00", (TransactionType.INCOME, TransactionSubtype.DIVIDEND)),
        ("DIVNRA", "-0.47", (TransactionType.TAX, TransactionSubtype.TAX)),
        ("INT", "0.87", (TransactionType.INCOME, TransactionSubtype.INTEREST)),
        ("FEE", "-1.00", (TransactionType.FEE, TransactionSubtype.FEE)),
        ("CSD", "5000", (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT)),
        ("CSW", "-250", (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL)),
        ("JNLC", "100", (TransactionType.TRANSFER, TransactionSubtype.TRANSFER_IN)),
        ("JNLS", "-100", (TransactionType.TRANSFER, TransactionSubtype.TRANSFER_OUT)),
        ("SSO", "0", (TransactionType.OTHER, TransactionSubtype.OTHER)),
    ],
)
def test_non_trade_activities(
    kind: str, net: str, expected: tuple[TransactionType, TransactionSubtype]
) -> None:
    tx = mappers.map_activity(activity(kind, net), "USD")
    assert (tx.type, tx.subtype) == expected
    assert tx.amount == Decimal(net)
    assert tx.transaction_date == date(2025, 1, 10)
    assert tx.raw["activity_type"] == kind


def test_dividend_keeps_per_share_amount() -> None:
    tx = mappers.map_activity(
        activity("DIV", "3.12", symbol="AAPL", qty="13", per_share_amount="0.24"), "USD"
    )
    assert (tx.symbol, tx.quantity, tx.unit_price) == ("AAPL", Decimal("13"), Decimal("0.24"))


def test_cancelled_activity_status() -> None:
    tx = mappers.map_activity({**activity("CSD", "10"), "status": "canceled"}, "USD")
    assert tx.status is TransactionStatus.CANCELLED


def test_garbage_is_bad_data() -> None:
    with pytest.raises(BadData):
        mappers.map_activity({**FILL, "price": "n/a"}, "USD")
    with pytest.raises(BadData):
        mappers.map_activity({**activity("CSD", "1"), "id": ""}, "USD")
    with pytest.raises(BadData):
        mappers.map_activity({**activity("CSD", "1"), "date": "10/01/2025"}, "USD")


def test_times_are_always_timezone_aware() -> None:
    assert mappers.parse_time("2025-03-03T14:30:01.512Z") == datetime(2025, 3, 3, 14, 30, 1, 512000, UTC)
    assert mappers.parse_time("2025-01-10") == datetime(2025, 1, 10, tzinfo=UTC)
    with pytest.raises(BadData, match="without zone"):
        mappers.parse_time("2025-03-03T14:30:01")
    with pytest.raises(BadData, match="without zone"):
        mappers.map_activity({**FILL, "transaction_time": "2025-03-03T14:30:01"}, "USD")


def test_an_accepted_order_without_an_id_is_ambiguous_not_a_refusal() -> None:
    """A 2xx without an order id may have placed it: BadData (reconciled by client_order_id)."""
    from finsync.providers.alpaca import orders

    with pytest.raises(BadData):
        orders.to_order({"status": "new", "symbol": "AAPL"})


def test_an_after_hours_fill_is_dated_on_its_new_york_trading_day() -> None:
    """19:30 in New York on 31 December is already 1 January in UTC: the trade is 2024's."""
    late = mappers.map_activity({**FILL, "transaction_time": "2025-01-01T00:30:00Z"}, "USD")
    assert late.transaction_date == date(2024, 12, 31)
    summer = mappers.map_activity({**FILL, "transaction_time": "2025-07-01T23:45:00Z"}, "USD")
    assert summer.transaction_date == date(2025, 7, 1)  # 19:45 EDT, the same day
