"""Alpaca wire → domain records. Pure; every decimal arrives as a string and stays exact."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from finsync.domain.enums import (
    AccountType,
    AssetType,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.errors import BadData
from finsync.domain.money import currency_code
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction
from finsync.providers.common import Wire

INSTITUTION = "Alpaca"
_ASSETS = {"us_equity": AssetType.EQUITY, "crypto": AssetType.CRYPTO, "us_option": AssetType.OPTION}
# Withholding and fee variants of DIV* are not income: keep the unified types honest.
_DIV_TAX = frozenset({"DIVNRA", "DIVFT", "DIVTW"})
_SIMPLE: dict[str, tuple[TransactionType, TransactionSubtype]] = {
    "INT": (TransactionType.INCOME, TransactionSubtype.INTEREST),
    "FEE": (TransactionType.FEE, TransactionSubtype.FEE),
    "DIVFEE": (TransactionType.FEE, TransactionSubtype.FEE),
    "CSD": (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT),
    "CSW": (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL),
}


WIRE = Wire("alpaca")
_dec, _opt = WIRE.number, WIRE.optional
# Alpaca's trading day (and the date of its non-trade activities) is New York's.
NEW_YORK = ZoneInfo("America/New_York")


def parse_time(value: Any) -> datetime:
    """RFC 3339 instants, or bare dates (non-trade activities) as midnight UTC; always timezone-aware."""
    return WIRE.instant(value, date_is_midnight_utc=True)


def _day(value: Any) -> date:
    return parse_time(value).date()


def map_account(account: dict[str, Any], *, environment: str) -> ProviderAccount:
    try:
        account_id = str(account["id"])
        currency = currency_code(str(account.get("currency") or "USD"))
    except (KeyError, ValueError):
        raise BadData("alpaca account lacks id or currency") from None
    long_value = _opt(account.get("long_market_value"), "long_market_value")
    short_value = _opt(account.get("short_market_value"), "short_market_value")
    holdings = None
    if long_value is not None or short_value is not None:
        holdings = (long_value or Decimal(0)) + (short_value or Decimal(0))
    number = account.get("account_number") or account_id
    return ProviderAccount(
        provider_account_id=account_id,
        name=f"Alpaca {'Paper' if environment == 'paper' else 'Brokerage'} {number}",
        type=AccountType.BROKERAGE,
        currency=currency,
        institution=INSTITUTION,
        balance=_opt(account.get("equity") or account.get("portfolio_value"), "equity"),
        available_balance=_opt(account.get("cash"), "cash"),
        cash_value=_opt(account.get("cash"), "cash"),
        holdings_value=holdings,
        raw={**account, "environment": environment},
    )


def map_position(position: dict[str, Any], account_currency: str) -> ProviderHolding:
    symbol = position.get("symbol")
    if not symbol:
        raise BadData("alpaca position without a symbol")
    quantity = abs(_dec(position.get("qty"), "qty"))
    if str(position.get("side", "long")).lower() == "short":
        quantity = -quantity
    return ProviderHolding(
        symbol=str(symbol),
        quantity=quantity,
        currency=account_currency,
        price_currency=account_currency,  # Alpaca trades and values everything in the account's USD
        asset_type=_ASSETS.get(str(position.get("asset_class")), AssetType.OTHER),
        average_cost=_opt(position.get("avg_entry_price"), "avg_entry_price"),
        current_price=_opt(position.get("current_price"), "current_price"),
        market_value=_opt(position.get("market_value"), "market_value"),
        unrealized_pnl=_opt(position.get("unrealized_pl"), "unrealized_pl"),
        raw=position,
    )


def _status(value: Any) -> TransactionStatus:
    text = str(value or "").lower()
    if text in ("canceled", "cancelled"):
        return TransactionStatus.CANCELLED
    if text in ("pending", "queued", "new"):
        return TransactionStatus.PENDING
    return TransactionStatus.SETTLED


def _map_fill(item: dict[str, Any], currency: str) -> ProviderTransaction:
    qty = abs(_dec(item.get("qty"), "qty"))
    price = _dec(item.get("price"), "price")
    side = str(item.get("side", "")).lower()
    buy = side == "buy"
    return ProviderTransaction(
        provider_transaction_id=str(item["id"]),
        type=TransactionType.TRADE,
        subtype=TransactionSubtype.BUY if buy else TransactionSubtype.SELL,
        amount=-(qty * price) if buy else qty * price,
        currency=currency,
        # The New York day, not the UTC one: an after-hours fill is already tomorrow in UTC.
        transaction_date=parse_time(item.get("transaction_time")).astimezone(NEW_YORK).date(),
        symbol=item.get("symbol"),
        quantity=qty,
        unit_price=price,
        description=f"{side.replace('_', ' ').title()} {qty} {item.get('symbol')}",
        raw=item,
    )


def map_activity(item: dict[str, Any], currency: str) -> ProviderTransaction:
    """One account activity; unknown kinds become other/other (``raw`` keeps ``activity_type``)."""
    if not item.get("id"):
        raise BadData("alpaca activity without an id")
    kind = str(item.get("activity_type", "")).upper()
    if kind == "FILL":
        return _map_fill(item, currency)
    amount = _dec(item.get("net_amount", "0"), "net_amount")
    if kind in _SIMPLE:
        tx_type, subtype = _SIMPLE[kind]
    elif kind in _DIV_TAX:
        tx_type, subtype = TransactionType.TAX, TransactionSubtype.TAX
    elif kind.startswith("DIV"):
        tx_type, subtype = TransactionType.INCOME, TransactionSubtype.DIVIDEND
    elif kind == "TRANS":  # Alpaca's cash transactions, deposits (CSD) and withdrawals (CSW) alike
        tx_type = TransactionType.TRANSFER
        subtype = TransactionSubtype.DEPOSIT if amount >= 0 else TransactionSubtype.WITHDRAWAL
    elif kind.startswith("JNL"):
        tx_type = TransactionType.TRANSFER
        subtype = TransactionSubtype.TRANSFER_IN if amount >= 0 else TransactionSubtype.TRANSFER_OUT
    else:
        tx_type, subtype = TransactionType.OTHER, TransactionSubtype.OTHER
    return ProviderTransaction(
        provider_transaction_id=str(item["id"]),
        type=tx_type,
        subtype=subtype,
        amount=amount,
        currency=currency,
        transaction_date=_day(item.get("date") or item.get("transaction_time")),
        status=_status(item.get("status")),
        symbol=item.get("symbol"),
        quantity=_opt(item.get("qty"), "qty"),
        unit_price=_opt(item.get("per_share_amount"), "per_share_amount"),
        description=item.get("description") or kind,
        raw=item,
    )
