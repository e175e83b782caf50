"""Schwab wire payloads → unified records: types, signs and exact decimals."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import AssetType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData
from finsync.providers.schwab.flow import needs_refresh
from finsync.providers.schwab.mappers import map_account, map_position, map_transaction

pytestmark = pytest.mark.unit
Sub = TransactionSubtype


def wire(text: str) -> Any:
    """Parse as ProviderHttp.decode does: doubles become Decimal through their text."""
    return json.loads(text, parse_float=Decimal)


def activity(kind: str, net: float, description: str = "", **extra: Any) -> dict[str, Any]:
    return {"activityId": 1, "time": "2024-03-01T15:00:00+0000", "type": kind, "status": "VALID",
            "description": description, "netAmount": net, "transferItems": [], **extra}  # fmt: skip


def test_trade_buy_with_fees_is_exact() -> None:
    item = wire("""{"activityId": 77, "time": "2024-03-01T15:00:00+0000",
        "tradeDate": "2024-03-01T15:00:00+0000",
        "settlementDate": "2024-03-04T00:00:00.000Z", "type": "TRADE", "status": "VALID", "netAmount": -170.6,
        "transferItems": [
          {"instrument": {"assetType": "CURRENCY", "symbol": "CURRENCY_USD"}, "amount": 0.1, "cost": -0.1,
           "feeType": "COMMISSION"},
          {"instrument": {"assetType": "CURRENCY", "symbol": "CURRENCY_USD"}, "amount": 0.2, "cost": -0.2,
           "feeType": "SEC_FEE"},
          {"instrument": {"assetType": "EQUITY", "symbol": "AAPL", "cusip": "037833100"},
           "amount": 1.0, "cost": -170.3, "price": 170.3, "positionEffect": "OPENING"}]}""")
    tx = map_transaction(item)
    assert tx.provider_transaction_id == "77"
    assert (tx.type, tx.subtype) == (TransactionType.TRADE, TransactionSubtype.BUY)
    assert tx.fees == Decimal("0.3")  # 0.1 + 0.2 as doubles would be 0.30000000000000004
    assert (tx.quantity, tx.unit_price, tx.amount) == (Decimal("1.0"), Decimal("170.3"), Decimal("-170.6"))
    assert (tx.symbol, tx.transaction_date, tx.settlement_date) == (
        "AAPL",
        date(2024, 3, 1),
        date(2024, 3, 4),
    )


def test_floats_from_plain_json_are_exact_too() -> None:
    tx = map_transaction(activity("ACH_RECEIPT", 0.1 + 0.2))
    assert tx.amount == Decimal("0.30000000000000004")  # the double's shortest text, never binary noise
    assert map_transaction(activity("ACH_RECEIPT", 1234.56)).amount == Decimal("1234.56")


def test_trade_sell_uses_the_security_leg_sign() -> None:
    leg = {"instrument": {"assetType": "EQUITY", "symbol": "TSLA"}, "amount": -3.0, "price": 250.0}
    tx = map_transaction(activity("TRADE", 750.0, transferItems=[leg]))
    assert (tx.subtype, tx.quantity, tx.fees) == (TransactionSubtype.SELL, Decimal("3.0"), Decimal(0))


@pytest.mark.parametrize(
    ("kind", "net", "description", "expected"),
    [
        (
            "DIVIDEND_OR_INTEREST",
            2.4,
            "QUALIFIED DIVIDEND",
            (TransactionType.INCOME, TransactionSubtype.DIVIDEND),
        ),
        (
            "DIVIDEND_OR_INTEREST",
            0.01,
            "BANK INTEREST",
            (TransactionType.INCOME, TransactionSubtype.INTEREST),
        ),
        ("ACH_RECEIPT", 10.0, "", (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT)),
        ("CASH_RECEIPT", 10.0, "", (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT)),
        ("WIRE_IN", 10.0, "", (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT)),
        ("ELECTRONIC_FUND", 10.0, "", (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT)),
        ("ELECTRONIC_FUND", -10.0, "", (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL)),
        ("ACH_DISBURSEMENT", -10.0, "", (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL)),
        ("CASH_DISBURSEMENT", -10.0, "", (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL)),
        ("WIRE_OUT", -10.0, "", (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL)),
        ("JOURNAL", -10.0, "", (TransactionType.TRANSFER, TransactionSubtype.TRANSFER_OUT)),
        ("JOURNAL", 10.0, "", (TransactionType.TRANSFER, TransactionSubtype.TRANSFER_IN)),
        ("MEMORANDUM", 0.0, "", (TransactionType.OTHER, TransactionSubtype.OTHER)),
        ("RECEIVE_AND_DELIVER", 0.0, "", (TransactionType.OTHER, TransactionSubtype.OTHER)),
    ],
)
def test_classification(kind: str, net: float, description: str, expected: tuple[Any, Any]) -> None:
    tx = map_transaction(activity(kind, net, description))
    assert (tx.type, tx.subtype) == expected
    assert tx.amount == Decimal(str(net))


_DIVIDEND = (TransactionType.INCOME, TransactionSubtype.DIVIDEND)
_INTEREST = (TransactionType.INCOME, TransactionSubtype.INTEREST)


@pytest.mark.parametrize(
    ("net", "description", "expected"),
    [
        (2.4, "QUALIFIED DIVIDEND", _DIVIDEND),
        (1.1, "ORDINARY DIVIDEND ~XYZ", _DIVIDEND),
        (0.7, "NON-QUALIFIED DIV ~ABC", _DIVIDEND),
        (3.0, "PR YR SPECIAL DIVIDEND", _DIVIDEND),
        (0.9, "DIVIDEND REINVESTMENT", _DIVIDEND),  # the purchase arrives as its own trade
        (5.5, "LONG TERM CAP GAIN ~VTI", _DIVIDEND),  # a fund's distribution
        (0.3, "TAX EXEMPT DIVIDEND ~MUB", _DIVIDEND),
        (1.2, "QUALIFIED DIVIDEND INTERESTING CORP", _DIVIDEND),  # whole words only
        (1.2, "SPECIAL DIVIDEND FIRST INTEREST BANCORP", _DIVIDEND),  # dividends before interest
        (0.4, "ORDINARY DIVIDEND ~INT", _DIVIDEND),  # a ~SYMBOL is not a word
        (0.01, "BANK INTEREST", _INTEREST),
        (0.02, "CREDIT INTEREST", _INTEREST),
        (0.05, "BANK INT 092523-102523", _INTEREST),
        (0.06, "SCHWAB1 INT 09/28-10/30", _INTEREST),
        (4.1, "BOND INTEREST ~912828YK0", _INTEREST),
        (0.1, "TAX FREE INTEREST", _INTEREST),
        (0.02, "INTEREST ON DIVIDEND", _INTEREST),  # "X ON Y" is an X
        (0.02, "INTEREST ON CREDIT BALANCE", _INTEREST),
        (-3.12, "MARGIN INTEREST", (TransactionType.FEE, TransactionSubtype.INTEREST)),  # paid, not earned
        (-0.45, "FOREIGN TAX PAID ~ABC", (TransactionType.TAX, TransactionSubtype.TAX)),
        (-0.3, "NON-RESIDENT ALIEN TAX WITHHELD", (TransactionType.TAX, TransactionSubtype.TAX)),
        (1.0, "INTERNATIONAL EQUITY FUND", _DIVIDEND),  # neither word: a distribution, as before
        (1.0, "", _DIVIDEND),
    ],
)
def test_dividend_or_interest_is_read_from_whole_words(
    net: float, description: str, expected: tuple[Any, Any]
) -> None:
    tx = map_transaction(activity("DIVIDEND_OR_INTEREST", net, description))
    assert (tx.type, tx.subtype) == expected
    assert tx.amount == Decimal(str(net))


def test_status_and_missing_fields() -> None:
    assert map_transaction(activity("JOURNAL", 1.0, status="PENDING")).status is TransactionStatus.PENDING
    assert map_transaction(activity("JOURNAL", 1.0, status="CANCELED")).status is TransactionStatus.CANCELLED
    with pytest.raises(BadData):
        map_transaction({"type": "JOURNAL", "time": "2024-03-01T15:00:00+0000"})
    with pytest.raises(BadData):
        map_transaction({"activityId": 1, "type": "JOURNAL", "time": "yesterday"})


def test_position_quantity_is_long_minus_short() -> None:
    short = wire("""{"longQuantity": 0.0, "shortQuantity": 3.0, "averagePrice": 250.0, "marketValue": -600.0,
        "shortOpenProfitLoss": 150.0,
        "instrument": {"assetType": "EQUITY", "symbol": "TSLA", "cusip": "88160R101"}}""")
    holding = map_position(short)
    assert (holding.quantity, holding.market_value, holding.current_price) == (
        Decimal("-3.0"),
        Decimal("-600.0"),
        Decimal("200"),
    )
    assert (holding.unrealized_pnl, holding.cusip, holding.currency) == (Decimal("150.0"), "88160R101", "USD")
    assert holding.price_currency == "USD"  # Schwab prices US listings in dollars
    option = map_position(
        wire("""{"longQuantity": 1.0, "shortQuantity": 0.0, "marketValue": 120.0,
        "instrument": {"assetType": "OPTION", "symbol": "AAPL  240621C00200000"}}""")
    )
    assert (option.asset_type, option.current_price) == (AssetType.OPTION, None)  # no multiplier: no price


@pytest.mark.parametrize(
    ("instrument", "expected"),
    [
        ({"assetType": "EQUITY"}, AssetType.EQUITY),
        ({"assetType": "COLLECTIVE_INVESTMENT", "type": "EXCHANGE_TRADED_FUND"}, AssetType.ETF),
        ({"assetType": "COLLECTIVE_INVESTMENT", "type": "CLOSED_END_FUND"}, AssetType.FUND),
        ({"assetType": "FIXED_INCOME"}, AssetType.BOND),
        ({"assetType": "CASH_EQUIVALENT"}, AssetType.CASH),
        ({"assetType": "FUTURE"}, AssetType.OTHER),
    ],
)
def test_asset_types(instrument: dict[str, Any], expected: AssetType) -> None:
    position = {"longQuantity": 1.0, "marketValue": 1.0, "instrument": {"symbol": "X", **instrument}}
    assert map_position(position).asset_type is expected


def test_account_balance_precedence() -> None:
    margin = wire("""{"securitiesAccount": {"type": "MARGIN", "accountNumber": "12345678",
        "positions": [{"marketValue": 0.1}, {"marketValue": 0.2}],
        "currentBalances": {"cashBalance": 10.1, "availableFunds": 5.5, "liquidationValue": 10.4}},
        "aggregatedBalance": {"currentLiquidationValue": 999.0}}""")
    account = map_account(margin)
    assert (account.balance, account.cash_value, account.holdings_value) == (
        Decimal("10.4"),
        Decimal("10.1"),
        Decimal("0.3"),
    )
    assert account.name == "Schwab Margin …5678"
    assert "positions" not in account.raw
    cash = wire("""{"securitiesAccount": {"type": "CASH", "accountNumber": "87654321",
        "currentBalances": {"totalCash": 0.3, "cashAvailableForWithdrawal": 0.25}},
        "aggregatedBalance": {"currentLiquidationValue": 0.7, "liquidationValue": 0.6}}""")
    account = map_account(cash)
    assert (account.balance, account.cash_value, account.available_balance) == (
        Decimal("0.7"),
        Decimal("0.3"),
        Decimal("0.25"),
    )


def test_refresh_margin() -> None:
    assert not needs_refresh({"access_expires_at": 1000}, now=699)
    assert needs_refresh({"access_expires_at": 1000}, now=700)
    assert needs_refresh({}, now=0)
