"""ccxt's unified records → finsync records. Pure functions, no I/O.

Asset codes are not currencies (``domain.money.asset_code``): a holding's ``symbol`` is the
asset and its ``quantity`` the amount held, while its value is in the connection's quote
currency (ISO-4217). An asset the exchange cannot price in the quote currency (Binance has
no USD markets) may be priced in another fiat currency it quotes (``FiatPrice``): its
``price_currency`` says which, and its value is converted at a stored reference rate.
A trade's cash leg is in the pair's quote asset, which may be a coin
(``USDT``): its ``currency`` is that asset code, never a pretended ISO code, so analytics
that convert currencies leave it out rather than misread it. Numbers arrive from ccxt as
strings (``exchange.number = str``) and become Decimals exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from finsync.domain.enums import AssetType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.fx import Rate
from finsync.domain.money import asset_code, is_iso_currency
from finsync.domain.records import VALUE_CONVERSION, ProviderHolding, ProviderTransaction
from finsync.providers.common import Wire

__all__ = ["FiatPrice", "Prices", "charged_fees", "holdings", "ledger_income", "trade", "transfer"]

Prices = Mapping[str, Decimal]
"""Asset code → price in the quote currency (the quote currency itself is 1)."""


@dataclass(frozen=True, slots=True)
class FiatPrice:
    """An asset's price in ``currency``, a fiat currency the exchange quotes other than the
    connection's, and ``rate`` (quote-currency units per 1 ``currency``, from a stored
    reference rate of ``rate.day``) that converts its value; ``rate`` None: none stored yet,
    so the holding keeps its price and quantity but has no value."""

    price: Decimal
    currency: str
    rate: Rate | None


_STATUS = {
    "ok": TransactionStatus.SETTLED,
    "pending": TransactionStatus.PENDING,
    "failed": TransactionStatus.CANCELLED,
    "canceled": TransactionStatus.CANCELLED,
}


def _day(timestamp: Any) -> Any:
    return datetime.fromtimestamp(int(timestamp) / 1000, UTC).date()


def _fee(wire: Wire, fee: Any) -> tuple[Decimal | None, str | None]:
    if not isinstance(fee, Mapping) or fee.get("cost") in (None, ""):
        return None, None
    currency = fee.get("currency")
    return wire.number(fee["cost"], "fee"), asset_code(str(currency)) if currency else None


def _raw(item: Mapping[str, Any]) -> dict[str, Any]:
    """What to keep of a ccxt record: its unified fields as text (the exchange's ``info`` is big)."""
    return {k: v for k, v in item.items() if k != "info" and isinstance(v, (str, int, dict, type(None)))}


def holdings(
    wire: Wire,
    totals: Mapping[str, Any],
    quote: str,
    prices: Prices,
    in_fiat: Mapping[str, FiatPrice] | None = None,
) -> tuple[list[ProviderHolding], Decimal, Decimal, list[str]]:
    """Non-zero balances as holdings (the quote currency's own balance is cash).

    ``prices`` are in ``quote``; an asset missing there may be in ``in_fiat``, priced in another
    fiat currency and valued at its reference rate (said in ``raw[VALUE_CONVERSION]``). Returns the holdings,
    the cash in ``quote``, the value of the valued holdings and the assets the exchange has no
    price for at all (their holdings carry no value)."""
    held: list[ProviderHolding] = []
    cash, value, unpriced = Decimal(0), Decimal(0), []
    for code, amount in sorted(totals.items()):
        if amount in (None, ""):
            continue
        quantity = wire.number(amount, f"{code} balance")
        if quantity == 0:
            continue
        asset = asset_code(code)
        if asset == quote:
            cash += quantity
            continue
        raw: dict[str, Any] = {"asset": asset, "total": str(amount)}
        price, price_currency = prices.get(asset), quote
        market_value = None if price is None else quantity * price
        fiat = (in_fiat or {}).get(asset) if price is None else None
        if fiat is not None:
            price, price_currency = fiat.price, fiat.currency
            if fiat.rate is not None:
                market_value = quantity * fiat.price * fiat.rate.value
                raw[VALUE_CONVERSION] = {
                    "rate": str(fiat.rate.value),
                    "rate_date": fiat.rate.day.isoformat() if fiat.rate.day else None,
                    "source": "ECB reference rate",
                }
        elif price is None:
            unpriced.append(asset)
        if market_value is not None:
            value += market_value
        held.append(
            ProviderHolding(
                symbol=asset,
                quantity=quantity,
                currency=quote,
                price_currency=price_currency,
                name=asset,
                asset_type=AssetType.CASH if is_iso_currency(asset) else AssetType.CRYPTO,
                current_price=price,
                market_value=market_value,
                raw=raw,
            )
        )
    return held, cash, value, unpriced


def trade(wire: Wire, item: Mapping[str, Any]) -> ProviderTransaction:
    """A fill: buy/sell of the base asset for the quote asset; the fee and its asset kept."""
    base, _, quote = str(item["symbol"]).partition("/")
    quote = quote.split(":")[0]
    side = str(item.get("side") or "")
    if side not in ("buy", "sell"):
        raise ValueError(f"trade side {side!r}")
    amount = wire.number(item["amount"], "trade amount")
    price = wire.optional(item.get("price"), "trade price")
    cost = wire.optional(item.get("cost"), "trade cost")
    if cost is None:
        cost = amount * (price or Decimal(0))
    fee, fee_asset = _fee(wire, item.get("fee"))
    buy = side == "buy"
    note = f" (fee {fee} {fee_asset})" if fee is not None else ""
    return ProviderTransaction(
        provider_transaction_id=f"trade:{item['symbol']}:{item['id']}",
        type=TransactionType.TRADE,
        subtype=TransactionSubtype.BUY if buy else TransactionSubtype.SELL,
        amount=-cost if buy else cost,
        currency=asset_code(quote),
        transaction_date=_day(item["timestamp"]),
        symbol=asset_code(base),
        quantity=amount if buy else -amount,
        unit_price=price,
        # ``fees`` is in the transaction's currency; a fee in another asset (BNB) is in raw.
        fees=fee if fee_asset == asset_code(quote) else None,
        description=f"{side.capitalize()} {amount} {base} at {price} {quote}{note}",
        raw=_raw(item),
    )


def charged_fees(
    wire: Wire, trades: list[dict[str, Any]], ledger: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The trades whose fee the ledger says was charged otherwise than ccxt labels it (Kraken
    labels every fee in the pair's quote asset), each with the fee (amount and asset) of its
    ledger entry that carries one: the entry whose ``referenceId`` is the trade id, in the asset
    charged (the base asset, or another the account pays fees in)."""
    charged: dict[str, dict[str, Any]] = {}
    for entry in ledger:
        fee = entry.get("fee")
        if not isinstance(fee, Mapping) or not entry.get("referenceId"):
            continue
        if wire.optional(fee.get("cost"), "ledger fee"):  # not absent, not zero
            charged[str(entry["referenceId"])] = {"cost": fee["cost"], "currency": entry.get("currency")}
    found = []
    for item in trades:
        fee = charged.get(str(item.get("id")))
        if fee is not None and fee != item.get("fee"):
            found.append({**item, "fee": fee})
    return found


def transfer(wire: Wire, item: Mapping[str, Any]) -> ProviderTransaction:
    """A deposit (transfer in) or withdrawal (transfer out) of an asset; the network fee kept."""
    kind = str(item.get("type") or "")
    if kind not in ("deposit", "withdrawal"):
        raise ValueError(f"transfer type {kind!r}")
    asset = asset_code(str(item["currency"]))
    amount = wire.number(item["amount"], "transfer amount")
    fee, _ = _fee(wire, item.get("fee"))
    incoming = kind == "deposit"
    return ProviderTransaction(
        provider_transaction_id=f"{kind}:{item.get('id') or item.get('txid')}",
        type=TransactionType.TRANSFER,
        subtype=TransactionSubtype.TRANSFER_IN if incoming else TransactionSubtype.TRANSFER_OUT,
        amount=amount if incoming else -amount,
        currency=asset,
        transaction_date=_day(item["timestamp"]),
        status=_STATUS.get(str(item.get("status") or "ok"), TransactionStatus.PENDING),
        symbol=asset,
        quantity=amount if incoming else -amount,
        fees=fee,
        description=f"{kind.capitalize()} of {amount} {asset}"
        + (f" (network {item['network']})" if item.get("network") else ""),
        raw=_raw(item),
    )


def ledger_income(
    wire: Wire, item: Mapping[str, Any], income_types: frozenset[str]
) -> ProviderTransaction | None:
    """A staking or earn reward from the ledger as income; other ledger entries are None
    (trades and transfers come from their own endpoints). ``income_types`` holds the
    entry types (ccxt's or the exchange's own) that are income, or ``type/subtype`` where only
    some subtypes of a type are."""
    info: Mapping[str, Any] = item["info"] if isinstance(item.get("info"), Mapping) else {}
    kinds = {str(item.get("type") or "").lower(), str(info.get("type") or "").lower()}
    # ``type/subtype`` where the exchange qualifies a type (Kraken's ``earn`` is allocations,
    # deallocations and rewards alike; only ``earn/reward`` is income)
    if subtype := str(info.get("subtype") or "").lower():
        kinds |= {f"{kind}/{subtype}" for kind in kinds if kind}
    if not kinds & income_types or str(item.get("direction") or "in") != "in":
        return None
    asset = asset_code(str(item["currency"]))
    amount = abs(wire.number(item["amount"], "ledger amount"))
    return ProviderTransaction(
        provider_transaction_id=f"ledger:{item['id']}",
        type=TransactionType.INCOME,
        subtype=TransactionSubtype.INTEREST,
        amount=amount,
        currency=asset,
        transaction_date=_day(item["timestamp"]),
        symbol=asset,
        quantity=amount,
        description=f"Reward ({sorted(kinds & income_types)[0]}) of {amount} {asset}",
        raw=_raw(item),
    )
