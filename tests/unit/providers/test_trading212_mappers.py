"""Trading 212 mappers on realistic payloads, decoded the way the client decodes them."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData
from finsync.providers.trading212 import mappers

pytestmark = pytest.mark.unit


def wire(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


SUMMARY = wire("""{"id": 31415926, "currency": "GBP", "totalValue": 14012.3,
  "cash": {"availableToTrade": 1523.37, "reservedForOrders": 20.0, "inPies": 105.5},
  "investments": {"currentValue": 12363.43, "totalCost": 10500.0, "realizedProfitLoss": 84.12,
                  "unrealizedProfitLoss": 1863.4300000000003}}""")

POSITION = wire("""{
  "instrument": {"ticker": "AAPL_US_EQ", "name": "Apple", "isin": "US0378331005", "currency": "USD"},
  "quantity": 15.5, "quantityAvailableForTrading": 12.5, "quantityInPies": 3.0,
  "averagePricePaid": 170.25, "currentPrice": 185.5, "createdAt": "2024-01-10T09:15:00Z",
  "walletImpact": {"currency": "GBP", "currentValue": 2275.1, "totalCost": 2089.4500000000003,
                   "unrealizedProfitLoss": 185.65, "fxImpact": 12.3}}""")

ORDER = wire("""{
 "order": {"id": 40000000123, "strategy": "QUANTITY", "type": "MARKET", "ticker": "AAPL_US_EQ",
  "quantity": 2.5, "filledQuantity": 2.5, "limitPrice": null, "stopPrice": null, "status": "FILLED",
  "side": "BUY", "currency": "USD", "value": 463.75, "filledValue": 463.75,
  "createdAt": "2025-03-03T14:30:00.000Z"},
 "fill": {"id": 50000000123, "filledAt": "2025-03-03T14:30:01.512Z", "price": 185.5, "quantity": 2.5,
  "type": "TRADE", "walletImpact": {"currency": "GBP", "fxRate": 0.79, "netValue": 366.91,
  "realisedProfitLoss": 0.0, "taxes": [
    {"name": "CURRENCY_CONVERSION_FEE", "quantity": 0.55, "currency": "GBP",
     "chargedAt": "2025-03-03T14:30:01.512Z"},
    {"name": "FINRA_FEE", "quantity": 0.01, "currency": "GBP",
     "chargedAt": "2025-03-03T14:30:01.512Z"}]}}}""")

DIVIDEND = wire("""{"ticker": "AAPL_US_EQ", "reference": "DIV-00000042", "quantity": 15.5, "amount": 2.6,
  "amountInEuro": 3.04, "grossAmountPerShare": 0.25, "currency": "GBP", "tickerCurrency": "USD",
  "paidOn": "2025-02-13T00:00:00.000Z", "type": "ORDINARY"}""")


def cash(kind: str, amount: str) -> Any:
    return wire(
        f'{{"type": "{kind}", "amount": {amount}, "currency": "GBP", '
        '"dateTime": "2025-01-02T08:00:00.000+00:00", "reference": "0000002a-7c1e-4a8b"}'
    )


def test_account_summary() -> None:
    account = mappers.map_account(SUMMARY, environment="live")
    assert account.provider_account_id == "31415926"
    assert account.type is AccountType.BROKERAGE
    assert (account.currency, account.balance) == ("GBP", Decimal("14012.3"))
    assert account.cash_value == Decimal("1648.87")  # available + reserved + in pies
    assert account.available_balance == Decimal("1523.37")
    assert account.holdings_value == Decimal("12363.43")
    assert account.raw["unrealizedProfitLoss"] == Decimal("1863.4300000000003")
    assert "Practice" in mappers.map_account(SUMMARY, environment="demo").name


def test_account_without_currency_is_bad_data() -> None:
    with pytest.raises(BadData):
        mappers.map_account({"id": 1, "totalValue": 1}, environment="live")


def test_position_quantity_already_includes_pies() -> None:
    holding = mappers.map_position(POSITION, "GBP")
    assert holding.quantity == Decimal("15.5")  # 12.5 tradable + 3 in pies
    assert (holding.symbol, holding.isin, holding.name) == ("AAPL_US_EQ", "US0378331005", "Apple")
    assert (holding.average_cost, holding.current_price) == (Decimal("170.25"), Decimal("185.5"))  # USD
    assert (holding.market_value, holding.unrealized_pnl) == (Decimal("2275.1"), Decimal("185.65"))  # GBP
    assert holding.currency == "GBP"


def test_position_prices_carry_the_instrument_currency() -> None:
    holding = mappers.map_position(POSITION, "GBP")
    assert (holding.currency, holding.price_currency) == ("GBP", "USD")
    # quantity x price is in dollars; the market value in pounds (at about 0.79 GBP per USD)
    assert holding.current_price is not None
    assert holding.market_value is not None
    assert holding.quantity * holding.current_price == Decimal("2875.25")
    rate = holding.market_value / (holding.quantity * holding.current_price)
    assert Decimal("0.78") < rate < Decimal("0.80")
    pence = {**POSITION, "instrument": {**POSITION["instrument"], "ticker": "VUSAl_EQ", "currency": "GBX"}}
    assert mappers.map_position(pence, "GBP").price_currency == "GBX"
    bare = {**POSITION, "instrument": {"ticker": "AAPL_US_EQ"}}  # no instrument currency sent
    assert mappers.map_position(bare, "GBP").price_currency == "GBP"


def test_filled_buy_is_money_out_whatever_the_wire_sign() -> None:
    trade = mappers.map_order(ORDER, "GBP")
    assert trade is not None
    assert trade.provider_transaction_id == "order:40000000123"
    assert (trade.type, trade.subtype) == (TransactionType.TRADE, TransactionSubtype.BUY)
    assert trade.amount == Decimal("-366.91")
    assert (trade.quantity, trade.unit_price, trade.fees) == (
        Decimal("2.5"),
        Decimal("185.5"),
        Decimal("0.56"),
    )
    assert trade.transaction_date == date(2025, 3, 3)
    assert trade.symbol == "AAPL_US_EQ"


def test_sell_is_money_in() -> None:
    item = json.loads(json.dumps(ORDER, default=str), parse_float=Decimal)
    item["order"]["side"] = "SELL"
    item["fill"]["walletImpact"]["netValue"] = Decimal("-366.91")
    trade = mappers.map_order(item, "GBP")
    assert trade is not None
    assert trade.subtype is TransactionSubtype.SELL
    assert trade.amount == Decimal("366.91")


def test_legacy_negative_quantity_means_sell() -> None:
    item = {
        "order": {
            "id": 7,
            "ticker": "VODl_EQ",
            "quantity": Decimal("-100"),
            "createdAt": "2025-01-01T10:00:00Z",
        },
        "fill": {"price": Decimal("71.2"), "quantity": Decimal("-100"), "filledAt": "2025-01-01T10:00:01Z"},
    }
    trade = mappers.map_order(item, "GBP")
    assert trade is not None
    assert (trade.subtype, trade.quantity, trade.amount) == (
        TransactionSubtype.SELL,
        Decimal(100),
        Decimal("7120.0"),
    )
    assert trade.fees is None


def test_unfilled_orders_are_skipped_but_partial_fills_kept() -> None:
    cancelled = {"order": {**ORDER["order"], "status": "CANCELLED", "filledQuantity": 0}, "fill": None}
    assert mappers.map_order(cancelled, "GBP") is None
    partial = {"order": {**ORDER["order"], "status": "CANCELLED"}, "fill": {**ORDER["fill"], "quantity": 1}}
    trade = mappers.map_order(partial, "GBP")
    assert trade is not None
    assert trade.quantity == 1


def test_dividend() -> None:
    tx = mappers.map_dividend(DIVIDEND, "GBP")
    assert tx.provider_transaction_id == "dividend:DIV-00000042"
    assert (tx.type, tx.subtype) == (TransactionType.INCOME, TransactionSubtype.DIVIDEND)
    assert (tx.amount, tx.unit_price, tx.quantity) == (Decimal("2.6"), Decimal("0.25"), Decimal("15.5"))
    assert tx.transaction_date == date(2025, 2, 13)


@pytest.mark.parametrize(
    ("kind", "amount", "expected_type", "expected_subtype", "expected_amount"),
    [
        ("DEPOSIT", "1000", TransactionType.TRANSFER, TransactionSubtype.DEPOSIT, "1000"),
        ("WITHDRAW", "-250.5", TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL, "-250.5"),
        ("WITHDRAW", "250.5", TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL, "-250.5"),
        ("FEE", "1.5", TransactionType.FEE, TransactionSubtype.FEE, "-1.5"),
        ("TRANSFER", "-40", TransactionType.TRANSFER, TransactionSubtype.TRANSFER_OUT, "-40"),
        ("TRANSFER", "40", TransactionType.TRANSFER, TransactionSubtype.TRANSFER_IN, "40"),
        ("CASHBACK", "3", TransactionType.OTHER, TransactionSubtype.OTHER, "3"),
    ],
)
def test_cash_movements(
    kind: str,
    amount: str,
    expected_type: TransactionType,
    expected_subtype: TransactionSubtype,
    expected_amount: str,
) -> None:
    tx = mappers.map_cash(cash(kind, amount), "GBP")
    assert tx.provider_transaction_id == "cash:0000002a-7c1e-4a8b"
    assert (tx.type, tx.subtype, tx.amount) == (expected_type, expected_subtype, Decimal(expected_amount))
    assert tx.transaction_date == date(2025, 1, 2)


def test_numbers_stay_exact_decimals() -> None:
    holding = mappers.map_position(POSITION, "GBP")
    assert holding.raw["walletImpact"]["totalCost"] == Decimal("2089.4500000000003")
    for value in (holding.quantity, holding.average_cost, holding.current_price, holding.market_value):
        assert type(value) is Decimal
    # ints and plain doubles (if a caller decoded without parse_float) still become exact via str
    assert mappers.map_dividend({**DIVIDEND, "amount": 0.1}, "GBP").amount == Decimal("0.1")


def test_garbage_is_bad_data() -> None:
    with pytest.raises(BadData):
        mappers.map_position({**POSITION, "quantity": "lots"}, "GBP")
    with pytest.raises(BadData):
        mappers.map_dividend({**DIVIDEND, "paidOn": "yesterday"}, "GBP")
    with pytest.raises(BadData):
        mappers.map_cash({**cash("DEPOSIT", "1"), "reference": None}, "GBP")


def test_an_order_body_keeps_every_digit_of_its_decimals() -> None:
    """Money is exact on the way out too: a float would send 1.0 for 0.99999999999999999999 and
    ``Infinity`` (not JSON) for 1e400."""
    import orjson

    from finsync.domain.trading import OrderRequest, OrderSide, OrderType
    from finsync.providers.trading212 import orders
    from finsync.providers.trading212.client import _json_number

    request = OrderRequest(
        symbol="AAPL_US_EQ",
        side=OrderSide.SELL,
        type=OrderType.LIMIT,
        quantity=Decimal("0.99999999999999999999"),
        limit_price=Decimal("1E+400"),
    )
    sent = orjson.dumps(orders.body(request), default=_json_number)
    assert b'"quantity":-0.99999999999999999999' in sent
    assert b'"limitPrice":1' + b"0" * 400 in sent
    assert json.loads(sent, parse_float=Decimal)["quantity"] == Decimal("-0.99999999999999999999")


def test_an_accepted_order_without_an_id_is_ambiguous_not_a_refusal() -> None:
    """A 2xx without an order id may well have placed the order: BadData (reconciled), never
    the ProviderError a refusal is (that would record it rejected and leave it unaccounted)."""
    from finsync.providers.trading212 import orders

    with pytest.raises(BadData):
        orders.to_order({"status": "NEW", "ticker": "AAPL_US_EQ"})


def test_a_fill_without_wallet_impact_is_in_the_instrument_currency() -> None:
    """Without ``walletImpact`` the value is quantity x fill price, which Trading 212 quotes
    in the instrument's currency (GBX = pence for London shares): labelling it with the
    account currency would book 100 Vodafone shares at 71.2p as GBP 7,120 instead of GBP 71.20."""
    item = wire("""{"order": {"id": 8, "ticker": "VODl_EQ", "side": "BUY", "quantity": 100,
      "currency": "GBX", "createdAt": "2025-01-01T10:00:00Z"},
     "fill": {"id": 9, "price": 71.2, "quantity": 100, "filledAt": "2025-01-01T10:00:01Z"}}""")
    trade = mappers.map_order(item, "GBP")
    assert trade is not None
    assert (trade.amount, trade.currency) == (Decimal("-7120.0"), "GBX")
    usd = wire("""{"order": {"id": 10, "ticker": "AAPL_US_EQ", "side": "SELL", "quantity": 2,
      "currency": "USD", "createdAt": "2025-01-01T15:00:00Z"},
     "fill": {"id": 11, "price": 185.5, "quantity": 2, "filledAt": "2025-01-01T15:00:01Z"}}""")
    sold = mappers.map_order(usd, "GBP")
    assert sold is not None
    assert (sold.amount, sold.currency) == (Decimal("371.0"), "USD")
