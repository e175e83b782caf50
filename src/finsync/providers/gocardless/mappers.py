"""GoCardless Bank Account Data payloads → unified records. Pure functions, no I/O.

Amounts arrive as signed strings ("-12.50"), so they are exact already. Banks often
omit ``transactionId`` (nearly always on pending items); such rows get a content
hash plus an occurrence index so two identical coffees on one day stay two rows and
keep their ids across syncs.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData
from finsync.domain.money import currency_code, to_decimal
from finsync.domain.records import ProviderAccount, ProviderTransaction
from finsync.providers import banklink

# First present wins. "Booked" types reflect settled money; "available" ones what can be spent.
BALANCE_PRECEDENCE = ("interimBooked", "closingBooked", "expected", "openingBooked", "interimAvailable")
AVAILABLE_PRECEDENCE = ("interimAvailable", "expected", "closingAvailable", "forwardAvailable")


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise BadData(f"GoCardless sent an unreadable date: {value!r}") from exc


def pick_balance(balances: list[dict[str, Any]], precedence: tuple[str, ...]) -> dict[str, Any] | None:
    by_type = {str(b.get("balanceType")): b for b in balances}
    for kind in precedence:
        if kind in by_type:
            return by_type[kind]
    return None


def _amount(entry: dict[str, Any], key: str) -> tuple[Decimal, str]:
    money = entry.get(key) or {}
    try:
        return to_decimal(money["amount"]), currency_code(str(money["currency"]))
    except (KeyError, ValueError) as exc:
        raise BadData(f"GoCardless sent an unreadable {key}: {money!r}") from exc


def account_identity(details: dict[str, Any] | None) -> str | None:
    """What names a bank account across consents: its IBAN, else the bank's own ``resourceId``.

    GoCardless's account id is not it: some banks get new ids on every re-consent. None
    when the bank sends neither (then GoCardless's id is all there is)."""
    info = details or {}
    if info.get("iban"):
        return f"iban:{info['iban']}"
    resource = str(info.get("resourceId") or "")
    if not resource:
        return None
    if len(resource) > 150:  # keep the key within the column; a digest names it as well
        resource = "sha256-" + hashlib.sha256(resource.encode()).hexdigest()
    return f"resource:{resource}"


def account_identities(accounts: dict[str, dict[str, Any] | None]) -> dict[str, str | None]:
    """``account_identity`` for each GoCardless account id of one consent (id → details).

    Currency pockets of one multi-currency account share an IBAN: those add the currency."""
    found = {account_id: account_identity(details) for account_id, details in accounts.items()}
    counts = Counter(identity for identity in found.values() if identity is not None)
    for account_id, identity in found.items():
        if identity is not None and counts[identity] > 1:
            currency = str((accounts[account_id] or {}).get("currency") or "").upper()
            found[account_id] = f"{identity}:{currency}" if currency else identity
    return found


def map_account(
    account_id: str,
    details: dict[str, Any] | None,
    balances: list[dict[str, Any]],
    institution_id: str | None = None,
    *,
    key: str | None = None,
) -> ProviderAccount:
    """``details`` is the inner ``account`` object of ``/details/`` (None when not fetched yet);
    ``key`` the stable ``provider_account_id`` (default: the identity, else ``account_id``)."""
    info = details or {}
    booked = pick_balance(balances, BALANCE_PRECEDENCE) or (balances[0] if balances else None)
    available = pick_balance(balances, AVAILABLE_PRECEDENCE)
    balance = currency = None
    if booked is not None:
        balance, currency = _amount(booked, "balanceAmount")
    currency = info.get("currency") or currency
    if not currency:
        raise BadData(f"GoCardless account {account_id} has neither a currency nor a balance")
    iban = str(info.get("iban") or "")
    name = info.get("name") or info.get("product") or (f"Account …{iban[-4:]}" if iban else "Bank account")
    return ProviderAccount(
        # Keyed by what survives re-consent (see account_identity): keying on GoCardless's id
        # would duplicate accounts after every 90-day renewal at banks that issue new ids.
        provider_account_id=key or account_identity(info) or account_id,
        name=str(name),
        type=banklink.account_type(str(info.get("cashAccountType") or "")),
        currency=currency_code(str(currency)),
        institution=institution_id,
        balance=balance,
        available_balance=_amount(available, "balanceAmount")[0] if available else None,
        cash_value=balance,
        balance_at=_reference_time(booked),
        raw={"gocardless_account_id": account_id, "details": info, "balances": balances},
        iban=iban or None,
    )


def api_account_id(account: ProviderAccount) -> str:
    """The GoCardless account id to call the API with (``provider_account_id`` may be the IBAN)."""
    return str(account.raw.get("gocardless_account_id") or account.provider_account_id)


def _reference_time(balance: dict[str, Any] | None) -> datetime | None:
    if not balance:
        return None
    stamp = balance.get("lastChangeDateTime") or balance.get("referenceDate")
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None  # a bare date carries no instant worth storing


def _counterparty(item: dict[str, Any]) -> str:
    return str(item.get("creditorName") or item.get("debtorName") or "")


def _remittance(item: dict[str, Any]) -> str:
    text = item.get("remittanceInformationUnstructured")
    if not text and item.get("remittanceInformationUnstructuredArray"):
        text = " ".join(str(part) for part in item["remittanceInformationUnstructuredArray"])
    return str(text or item.get("additionalInformation") or "")


def content_key(item: dict[str, Any]) -> str:
    amount, currency = _amount(item, "transactionAmount")
    day = item.get("bookingDate") or item.get("valueDate") or str(item.get("bookingDateTime") or "")[:10]
    return "|".join((str(day), str(amount.normalize()), currency, _counterparty(item), _remittance(item)))


def hashed_id(key: str, occurrence: int, *, pending: bool = False) -> str:
    source = f"{'pending|' if pending else ''}{key}|{occurrence}"
    return "h:" + hashlib.sha256(source.encode()).hexdigest()


def _classify(item: dict[str, Any], amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    """ISO 20022 bank transaction code (DOMAIN-FAMILY-SUBFAMILY) when present, else the sign."""
    return banklink.classify(str(item.get("bankTransactionCode") or "").upper().split("-"), amount)


def map_transaction(item: dict[str, Any], tx_id: str, status: TransactionStatus) -> ProviderTransaction:
    amount, currency = _amount(item, "transactionAmount")
    booked_on = _parse_date(item.get("bookingDate")) or _parse_date(item.get("bookingDateTime"))
    value_on = _parse_date(item.get("valueDate"))
    when = booked_on or value_on
    if when is None:
        raise BadData(f"GoCardless transaction {tx_id} has no date")
    tx_type, subtype = _classify(item, amount)
    description = _remittance(item) or _counterparty(item)
    return ProviderTransaction(
        provider_transaction_id=tx_id,
        type=tx_type,
        subtype=subtype,
        amount=amount,
        currency=currency,
        transaction_date=when,
        settlement_date=value_on,
        status=status,
        description=description or None,
        raw=item,
    )


def map_transactions(payload: dict[str, Any]) -> list[ProviderTransaction]:
    """Map ``{transactions: {booked, pending}}``; ids prefer the bank's, then GoCardless's, then a hash."""
    groups = payload.get("transactions") or {}
    result: list[ProviderTransaction] = []
    for status, items in (
        (TransactionStatus.SETTLED, groups.get("booked") or []),
        (TransactionStatus.PENDING, groups.get("pending") or []),
    ):
        seen: Counter[str] = Counter()
        for item in items:
            tx_id = item.get("transactionId") or item.get("internalTransactionId")
            if not tx_id:
                key = content_key(item)
                tx_id = hashed_id(key, seen[key], pending=status is TransactionStatus.PENDING)
                seen[key] += 1
            result.append(map_transaction(item, str(tx_id), status))
    return result
