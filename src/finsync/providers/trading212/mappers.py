"""Trading 212 wire → domain records. Pure: no I/O, Decimals only (JSON doubles arrive as Decimal).

Currency rule: Trading 212 quotes per-share prices (``averagePricePaid``,
``currentPrice``, fill ``price``, ``grossAmountPerShare``) in the *instrument*
currency and values (``walletImpact``, cash amounts) in the *account* currency.
Records carry the account currency; per-share fields are kept as sent. A holding
says so: ``price_currency`` is the instrument's (``instrument.currency``; GBX is
pence), so for a USD share in a GBP account ``current_price`` is USD and
``market_value`` GBP. Transactions keep the instrument currency in ``raw``; a fill
without ``walletImpact`` is valued at quantity x price in the instrument currency.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from finsync.domain.enums import AccountType, AssetType, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData
from finsync.domain.money import currency_code
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction
from finsync.providers.common import Wire

INSTITUTION = "Trading 212"


WIRE = Wire("trading212")
_dec, _opt, parse_time, _day = WIRE.number, WIRE.optional, WIRE.instant, WIRE.day


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def map_account(summary: dict[str, Any], *, environment: str) -> ProviderAccount:
    """The API serves one account per key; Invest vs Stocks ISA is not exposed, so brokerage."""
    try:
        currency = currency_code(str(summary["currency"]))
        account_id = str(summary["id"])
    except (KeyError, ValueError):
        raise BadData("trading212 account summary lacks id or currency") from None
    cash, investments = _obj(summary.get("cash")), _obj(summary.get("investments"))
    parts = [cash.get(k) for k in ("availableToTrade", "reservedForOrders", "inPies")]
    cash_value = sum((_dec(p, "cash") for p in parts if p is not None), Decimal(0))
    return ProviderAccount(
        provider_account_id=account_id,
        name=f"Trading 212 {'Practice' if environment == 'demo' else 'Invest'} ({currency})",
        type=AccountType.BROKERAGE,
        currency=currency,
        institution=INSTITUTION,
        balance=_opt(summary.get("totalValue"), "totalValue"),
        available_balance=_opt(cash.get("availableToTrade"), "availableToTrade"),
        cash_value=cash_value,
        holdings_value=_opt(investments.get("currentValue"), "investments.currentValue"),
        raw={
            **summary,
            "unrealizedProfitLoss": investments.get("unrealizedProfitLoss"),
            "environment": environment,
        },
    )


def map_position(position: dict[str, Any], account_currency: str) -> ProviderHolding:
    """``quantity`` already includes ``quantityInPies`` (available + in pies), so it is used as is."""
    instrument, wallet = _obj(position.get("instrument")), _obj(position.get("walletImpact"))
    ticker = instrument.get("ticker") or position.get("ticker")
    if not ticker:
        raise BadData("trading212 position without a ticker")
    currency = currency_code(str(wallet.get("currency") or account_currency))
    try:
        price_currency = currency_code(str(instrument.get("currency") or currency))
    except ValueError:
        raise BadData(f"trading212 position {ticker}: bad instrument currency") from None
    return ProviderHolding(
        symbol=str(ticker),
        quantity=_dec(position.get("quantity"), "quantity"),
        currency=currency,
        price_currency=price_currency,
        name=instrument.get("name"),
        isin=instrument.get("isin"),
        asset_type=AssetType.EQUITY if str(ticker).endswith("_EQ") else AssetType.OTHER,
        average_cost=_opt(position.get("averagePricePaid"), "averagePricePaid"),
        current_price=_opt(position.get("currentPrice"), "currentPrice"),
        market_value=_opt(wallet.get("currentValue"), "walletImpact.currentValue"),
        unrealized_pnl=_opt(wallet.get("unrealizedProfitLoss"), "walletImpact.unrealizedProfitLoss"),
        raw=position,
    )


def map_order(item: dict[str, Any], account_currency: str) -> ProviderTransaction | None:
    """A filled order (or the filled part of a cancelled one) → trade; unfilled orders → None."""
    order, fill = _obj(item.get("order")), _obj(item.get("fill"))
    if not fill or "id" not in order:
        return None
    quantity = abs(_dec(fill.get("quantity", order.get("filledQuantity")), "fill.quantity"))
    if quantity == 0:
        return None
    wallet = _obj(fill.get("walletImpact"))
    currency = currency_code(str(wallet.get("currency") or account_currency))
    side = str(order.get("side", "")).upper()
    if side not in ("BUY", "SELL"):  # older payloads: negative quantity means a sell
        side = "SELL" if _dec(order.get("quantity", 0), "order.quantity") < 0 else "BUY"
    price = _opt(fill.get("price"), "fill.price")
    net = _opt(wallet.get("netValue"), "netValue")
    if net is None:  # no wallet impact: quantity x price, in the instrument's currency (GBX: pence)
        net = quantity * (price or Decimal(0))
        try:
            currency = currency_code(str(order.get("currency") or currency))
        except ValueError:
            raise BadData(f"trading212 order {order['id']}: bad currency") from None
    taxes = [t for t in wallet.get("taxes") or [] if isinstance(t, dict)]
    fees = sum((abs(_dec(t.get("quantity"), "tax")) for t in taxes), Decimal(0))
    # The sign is ours (money in +, out -), whatever sign the wire uses.
    amount = -abs(net) if side == "BUY" else abs(net)
    ticker = order.get("ticker")
    return ProviderTransaction(
        provider_transaction_id=f"order:{order['id']}",
        type=TransactionType.TRADE,
        subtype=TransactionSubtype.BUY if side == "BUY" else TransactionSubtype.SELL,
        amount=amount,
        currency=currency,
        transaction_date=_day(fill.get("filledAt") or order.get("createdAt")),
        symbol=ticker,
        quantity=quantity,
        unit_price=price,
        fees=fees if taxes else None,
        description=f"{side.title()} {quantity} {ticker}",
        raw=item,
    )


def map_dividend(item: dict[str, Any], account_currency: str) -> ProviderTransaction:
    reference = item.get("reference")
    if not reference:
        raise BadData("trading212 dividend without a reference")
    return ProviderTransaction(
        provider_transaction_id=f"dividend:{reference}",
        type=TransactionType.INCOME,
        subtype=TransactionSubtype.DIVIDEND,
        amount=_dec(item.get("amount"), "dividend amount"),
        currency=currency_code(str(item.get("currency") or account_currency)),
        transaction_date=_day(item.get("paidOn")),
        symbol=item.get("ticker"),
        quantity=_opt(item.get("quantity"), "dividend quantity"),
        unit_price=_opt(item.get("grossAmountPerShare"), "grossAmountPerShare"),
        description=f"Dividend {item.get('ticker') or ''} ({item.get('type') or 'ORDINARY'})".strip(),
        raw=item,
    )


_CASH: dict[str, tuple[TransactionType, TransactionSubtype, int]] = {
    "DEPOSIT": (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT, 1),
    "WITHDRAW": (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL, -1),
    "FEE": (TransactionType.FEE, TransactionSubtype.FEE, -1),
}


def map_cash(item: dict[str, Any], account_currency: str) -> ProviderTransaction:
    reference = item.get("reference")
    if not reference:
        raise BadData("trading212 cash transaction without a reference")
    kind = str(item.get("type", "")).upper()
    amount = _dec(item.get("amount"), "cash amount")
    if kind in _CASH:
        tx_type, subtype, sign = _CASH[kind]
        amount = sign * abs(amount)
    elif kind == "TRANSFER":
        tx_type = TransactionType.TRANSFER
        subtype = TransactionSubtype.TRANSFER_IN if amount >= 0 else TransactionSubtype.TRANSFER_OUT
    else:
        tx_type, subtype = TransactionType.OTHER, TransactionSubtype.OTHER
    return ProviderTransaction(
        provider_transaction_id=f"cash:{reference}",
        type=tx_type,
        subtype=subtype,
        amount=amount,
        currency=currency_code(str(item.get("currency") or account_currency)),
        transaction_date=_day(item.get("dateTime")),
        description=kind.title() or None,
        raw=item,
    )
