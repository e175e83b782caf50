"""SimpleFIN wire → finsync records. Pure: no I/O; amounts are exact (strings on the wire).

Both protocol versions: version 1 names the institution in each account's ``org``, version
2 lists ``connections`` and gives each account a ``conn_id``; messages for the person come
as ``errors`` (strings, version 1) or ``errlist`` (objects with ``msg``, version 2).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
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

WIRE = Wire("simplefin")
# SimpleFIN says nothing of an account's kind: read it from the name the bank gives.
_TYPES = (
    (re.compile(r"credit|card|visa|mastercard|amex", re.I), AccountType.CREDIT_CARD),
    (re.compile(r"saving|money market", re.I), AccountType.SAVINGS),
    (re.compile(r"checking|chequing|current", re.I), AccountType.CHECKING),
    (re.compile(r"loan|mortgage|heloc", re.I), AccountType.LOAN),
    (re.compile(r"ira|401k|403b|roth|retirement|rrsp|tfsa", re.I), AccountType.RETIREMENT),
    (re.compile(r"brokerage|invest|stock", re.I), AccountType.BROKERAGE),
)
# A custom currency (points, crypto) is a URL on the wire; finsync stores ISO codes, and XXX is
# ISO 4217's "no currency".
NO_CURRENCY = "XXX"


def day_of(epoch: Any) -> date:
    return instant_of(epoch).date()


def instant_of(epoch: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(epoch), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise BadData(f"simplefin: bad timestamp {epoch!r}") from None


def currency_of(value: Any) -> str:
    text = str(value or "").strip().upper()
    return text if re.fullmatch(r"[A-Z]{3}", text) else NO_CURRENCY


def messages(body: dict[str, Any]) -> list[str]:
    """The bridge's words for the person (a bank needing a new login at the bridge, usage
    warnings), deduplicated in order; version 2's carry the connection's name when known."""
    names = {str(c.get("conn_id")): str(c.get("name") or "") for c in connections(body)}
    found: list[str] = [str(m) for m in body.get("errors") or [] if isinstance(m, str) and m.strip()]
    for item in body.get("errlist") or []:
        if isinstance(item, dict) and str(item.get("msg") or "").strip():
            name = names.get(str(item.get("conn_id")), "")
            found.append(f"{name}: {item['msg']}" if name else str(item["msg"]))
    return list(dict.fromkeys(m.strip() for m in found))


def connections(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in body.get("connections") or [] if isinstance(c, dict)]


def institution(item: dict[str, Any], body: dict[str, Any]) -> str | None:
    org = item.get("org")
    if isinstance(org, dict) and (org.get("name") or org.get("domain")):
        return str(org.get("name") or org.get("domain"))
    for conn in connections(body):
        if item.get("conn_id") is not None and conn.get("conn_id") == item.get("conn_id"):
            return str(conn.get("name") or conn.get("org_url") or "") or None
    return None


def map_account(item: dict[str, Any], body: dict[str, Any]) -> ProviderAccount:
    if not item.get("id"):
        raise BadData("simplefin: an account without an id")
    name = str(item.get("name") or "SimpleFIN account")
    kind = next((t for pattern, t in _TYPES if pattern.search(name)), None)
    if kind is None:
        kind = AccountType.BROKERAGE if item.get("holdings") else AccountType.OTHER
    when = item.get("balance-date")
    return ProviderAccount(
        provider_account_id=str(item["id"]),
        name=name,
        type=kind,
        currency=currency_of(item.get("currency")),
        institution=institution(item, body),
        balance=WIRE.optional(item.get("balance"), "balance"),
        available_balance=WIRE.optional(item.get("available-balance"), "available-balance"),
        balance_at=instant_of(when) if when else None,
        raw={k: v for k, v in item.items() if k not in ("transactions", "holdings")},
    )


def map_transaction(item: dict[str, Any], currency: str, today: date) -> ProviderTransaction:
    """A pending item has ``pending: true`` (or ``posted`` 0): it is dated when it happened
    (``transacted_at``), else ``today``; a posted one by ``posted``."""
    if not item.get("id"):
        raise BadData("simplefin: a transaction without an id")
    amount = WIRE.number(item.get("amount"), "amount")
    posted = int(item.get("posted") or 0)
    pending = bool(item.get("pending")) or posted == 0
    if posted and not pending:
        booked = day_of(posted)
    else:
        booked = day_of(item["transacted_at"]) if item.get("transacted_at") else today
    description = str(item.get("description") or item.get("payee") or item.get("memo") or "") or None
    return ProviderTransaction(
        provider_transaction_id=str(item["id"]),
        type=TransactionType.TRANSFER,
        subtype=TransactionSubtype.DEPOSIT if amount > 0 else TransactionSubtype.WITHDRAWAL,
        amount=amount,
        currency=currency,
        transaction_date=booked,
        settlement_date=None if pending else booked,
        status=TransactionStatus.PENDING if pending else TransactionStatus.SETTLED,
        description=description,
        raw=item,
    )


def map_holding(item: dict[str, Any], account_currency: str) -> ProviderHolding:
    shares = WIRE.number(item.get("shares"), "holding shares")
    cost = WIRE.optional(item.get("cost_basis"), "holding cost_basis")
    value = WIRE.optional(item.get("market_value"), "holding market_value")
    currency = currency_of(item.get("currency")) if item.get("currency") else account_currency
    return ProviderHolding(
        symbol=str(item.get("symbol") or item.get("description") or item.get("id") or "?"),
        quantity=shares,
        currency=currency,
        position_key=str(item["id"]) if item.get("id") else None,
        name=str(item.get("description") or "") or None,
        asset_type=AssetType.OTHER,
        average_cost=cost / shares if cost is not None and shares else None,
        current_price=value / shares if value is not None and shares else None,
        market_value=value,
        unrealized_pnl=value - cost if value is not None and cost is not None else None,
        raw=item,
    )
