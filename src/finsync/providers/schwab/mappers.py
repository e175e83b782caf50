"""Schwab Trader API payloads → unified records. Pure functions: no I/O, no clock.

Schwab sends numbers as JSON doubles. ``SchwabClient`` decodes them as Decimal
(``ProviderHttp.decode``); ``to_decimal`` still accepts floats (through ``str``) so a
mapper fed a plain ``json.loads`` payload stays exact.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from finsync.domain.enums import (
    AccountType,
    AssetType,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.errors import BadData
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction
from finsync.providers.common import Wire

CURRENCY = "USD"  # the Trader API reports every amount in US dollars
_PRICE_STEP = Decimal("0.00000001")

_ASSET_TYPES = {
    "EQUITY": AssetType.EQUITY,
    "ETF": AssetType.ETF,
    "MUTUAL_FUND": AssetType.FUND,
    "OPTION": AssetType.OPTION,
    "FIXED_INCOME": AssetType.BOND,
    "CASH_EQUIVALENT": AssetType.CASH,
    "CURRENCY": AssetType.CASH,
}
_DEPOSITS = {"ACH_RECEIPT", "CASH_RECEIPT", "WIRE_IN"}
_WITHDRAWALS = {"ACH_DISBURSEMENT", "CASH_DISBURSEMENT", "WIRE_OUT"}
_WORD = re.compile(r"[A-Z0-9]+")
_SYMBOL = re.compile(r"~\S*")
_DIVIDEND_WORDS = frozenset({"DIVIDEND", "DIVIDENDS", "DIV", "DIVS", "DISTRIBUTION", "DISTRIBUTIONS"})
_INTEREST_WORDS = frozenset({"INTEREST", "INT"})
_STATUSES = {
    "PENDING": TransactionStatus.PENDING,
    "CANCELED": TransactionStatus.CANCELLED,
    "CANCELLED": TransactionStatus.CANCELLED,
    "INVALID": TransactionStatus.CANCELLED,
}


WIRE = Wire("schwab")


def _dec(value: Any) -> Decimal | None:
    return WIRE.optional(value, "an amount")


def _first(mapping: dict[str, Any], *keys: str) -> Decimal | None:
    for key in keys:
        if mapping.get(key) is not None:
            return WIRE.number(mapping[key], key)
    return None


def parse_instant(value: str) -> datetime:
    """Schwab mixes ``...Z``, ``...+0000`` and ``...+00:00``; all are ISO 8601 for Python 3.11."""
    return WIRE.instant(value)


def _date(value: Any) -> date | None:
    return parse_instant(value).date() if isinstance(value, str) and value else None


def asset_type(instrument: dict[str, Any]) -> AssetType:
    kind = str(instrument.get("assetType", "")).upper()
    if kind == "COLLECTIVE_INVESTMENT":
        is_etf = str(instrument.get("type", "")).upper() == "EXCHANGE_TRADED_FUND"
        return AssetType.ETF if is_etf else AssetType.FUND
    return _ASSET_TYPES.get(kind, AssetType.OTHER)


def map_account(payload: dict[str, Any]) -> ProviderAccount:
    """One element of ``GET /accounts?fields=positions``; the id is the plain account number."""
    sec = payload.get("securitiesAccount") or {}
    number = str(sec.get("accountNumber") or "")
    if not number:
        raise BadData("Schwab account without accountNumber")
    current = sec.get("currentBalances") or {}
    aggregated = payload.get("aggregatedBalance") or {}
    balance = _first(current, "liquidationValue")
    if balance is None:
        balance = _first(aggregated, "currentLiquidationValue", "liquidationValue")
    positions = sec.get("positions") or []
    holdings_value = sum((_dec(p.get("marketValue")) or Decimal(0) for p in positions), Decimal(0))
    kind = str(sec.get("type") or "").title()
    return ProviderAccount(
        provider_account_id=number,
        name=f"Schwab {kind} …{number[-4:]}".replace("  ", " "),
        type=AccountType.BROKERAGE,
        currency=CURRENCY,
        institution="Charles Schwab",
        balance=balance,
        available_balance=_first(current, "cashAvailableForWithdrawal", "availableFunds"),
        cash_value=_first(current, "cashBalance", "totalCash"),
        holdings_value=holdings_value,
        raw={key: value for key, value in sec.items() if key != "positions"},
    )


def map_position(position: dict[str, Any]) -> ProviderHolding:
    instrument = position.get("instrument") or {}
    quantity = (_dec(position.get("longQuantity")) or Decimal(0)) - (
        _dec(position.get("shortQuantity")) or Decimal(0)
    )
    market_value = _dec(position.get("marketValue"))
    kind = asset_type(instrument)
    price = None
    # Options trade per contract of (usually) 100 shares; without the multiplier a price would lie.
    if market_value is not None and quantity and kind is not AssetType.OPTION:
        price = (market_value / quantity).quantize(_PRICE_STEP).normalize()
    pnl_parts = [_dec(position.get(k)) for k in ("longOpenProfitLoss", "shortOpenProfitLoss")]
    pnl_known = [p for p in pnl_parts if p is not None]
    return ProviderHolding(
        symbol=str(instrument.get("symbol") or instrument.get("cusip") or "?"),
        name=instrument.get("description"),
        cusip=instrument.get("cusip"),
        asset_type=kind,
        quantity=quantity,
        currency=CURRENCY,
        price_currency=CURRENCY,
        average_cost=_dec(position.get("averagePrice")),
        current_price=price,
        market_value=market_value,
        unrealized_pnl=sum(pnl_known, Decimal(0)) if pnl_known else None,
        raw=position,
    )


def map_positions(payload: dict[str, Any]) -> list[ProviderHolding]:
    sec = payload.get("securitiesAccount") or {}
    return [map_position(p) for p in sec.get("positions") or []]


def _security_item(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The transfer item that moved the security (fee and cash legs are CURRENCY or carry feeType)."""
    for item in items:
        instrument = item.get("instrument") or {}
        if not item.get("feeType") and str(instrument.get("assetType", "")).upper() != "CURRENCY":
            return item
    return None


def dividend_or_interest(description: str, amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    """Schwab's ``DIVIDEND_OR_INTEREST`` items, told apart by whole words of the description.

    ``~SYMBOL`` tokens are dropped; in "X ON Y" only X counts ("INTEREST ON DIVIDEND" is
    interest). Tax withheld is tax (unless "TAX EXEMPT/FREE"); then dividend words (DIVIDEND,
    DIV, CAP GAIN, DISTRIBUTION) win over interest words (INTEREST, INT); interest paid
    (negative, e.g. margin interest) is a fee. Neither: a dividend (a fund's distribution).
    """
    words = _WORD.findall(_SYMBOL.sub(" ", description.upper()))
    if "ON" in words:
        words = words[: words.index("ON")]
    taxed = "WITHHELD" in words or "WITHHOLDING" in words or "TAX" in words
    if taxed and not {"EXEMPT", "FREE"} & set(words):
        return TransactionType.TAX, TransactionSubtype.TAX
    dividend = bool(_DIVIDEND_WORDS & set(words)) or any(
        words[i : i + 2] in (["CAP", "GAIN"], ["CAPITAL", "GAIN"], ["CAP", "GAINS"])
        for i in range(len(words))
    )
    if not dividend and _INTEREST_WORDS & set(words):
        if amount < 0:
            return TransactionType.FEE, TransactionSubtype.INTEREST
        return TransactionType.INCOME, TransactionSubtype.INTEREST
    return TransactionType.INCOME, TransactionSubtype.DIVIDEND


def _classify(kind: str, description: str, amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    if kind == "DIVIDEND_OR_INTEREST":
        return dividend_or_interest(description, amount)
    if kind in _DEPOSITS or (kind == "ELECTRONIC_FUND" and amount >= 0):
        return TransactionType.TRANSFER, TransactionSubtype.DEPOSIT
    if kind in _WITHDRAWALS or kind == "ELECTRONIC_FUND":
        return TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL
    if kind == "JOURNAL":
        sub = TransactionSubtype.TRANSFER_IN if amount >= 0 else TransactionSubtype.TRANSFER_OUT
        return TransactionType.TRANSFER, sub
    return TransactionType.OTHER, TransactionSubtype.OTHER


def map_transaction(item: dict[str, Any]) -> ProviderTransaction:
    if item.get("activityId") is None:
        raise BadData("Schwab transaction without activityId")
    kind = str(item.get("type") or "").upper()
    description = str(item.get("description") or "")
    amount = _dec(item.get("netAmount")) or Decimal(0)
    items: list[dict[str, Any]] = item.get("transferItems") or []
    security = _security_item(items)
    instrument = (security or {}).get("instrument") or {}
    when = _date(item.get("tradeDate")) or _date(item.get("time"))
    if when is None:
        raise BadData(f"Schwab transaction {item['activityId']} has no date")

    tx_type, subtype = _classify(kind, description, amount)
    quantity = price = fees = None
    if kind == "TRADE":
        tx_type = TransactionType.TRADE
        moved = _dec((security or {}).get("amount"))
        # Shares in (+) is a buy; fall back to cash out (-) when the security leg is missing.
        is_buy = moved > 0 if moved else amount < 0
        subtype = TransactionSubtype.BUY if is_buy else TransactionSubtype.SELL
        quantity = abs(moved) if moved is not None else None
        price = _dec((security or {}).get("price"))
        fee_legs = [_first(i, "cost", "amount") for i in items if i.get("feeType")]
        fees = sum((abs(f) for f in fee_legs if f is not None), Decimal(0))

    return ProviderTransaction(
        provider_transaction_id=str(item["activityId"]),
        type=tx_type,
        subtype=subtype,
        amount=amount,
        currency=CURRENCY,
        transaction_date=when,
        settlement_date=_date(item.get("settlementDate")),
        status=_STATUSES.get(str(item.get("status") or "").upper(), TransactionStatus.SETTLED),
        symbol=instrument.get("symbol"),
        quantity=quantity,
        unit_price=price,
        fees=fees,
        description=description or None,
        raw=item,
    )
