"""Enable Banking payloads → unified records. Pure functions, no I/O.

Amounts are positive strings; the sign comes from ``credit_debit_indicator`` (DBIT is
money out). ``transaction_id`` is not an identifier (it may change on every fetch, so it
is not kept in ``raw`` either: a row read again unchanged stays unchanged), and
``entry_reference`` is often absent and may change when a pending item is booked, so:
a booked row is named by its ``entry_reference`` when the bank sends one, else by a
fingerprint of its content plus an occurrence index (two identical coffees on one day
stay two rows); a pending row always by a fingerprint. A pending row turning booked is
replaced, not duplicated: each sync replaces the pending rows of the window it read.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData
from finsync.domain.money import currency_code
from finsync.domain.records import ProviderAccount, ProviderTransaction
from finsync.providers import banklink
from finsync.providers.common import Wire

WIRE = Wire("Enable Banking")
# The balance shown: booked closing first, then the other booked/expected kinds, then available.
BALANCE_PRECEDENCE = ("CLBD", "ITBD", "XPCD", "OPBD", "ITAV", "CLAV", "OTHR")
AVAILABLE_PRECEDENCE = ("ITAV", "CLAV", "FWAV", "XPCD")
PENDING = frozenset({"PDNG", "HOLD", "SCHD"})
DROPPED = frozenset({"CNCL", "RJCT"})  # cancelled or rejected: never money that moved


def session_account(item: dict[str, Any]) -> dict[str, Any]:
    """What a connection keeps of one account of ``POST /sessions`` (no balances, no PII beyond it)."""
    ident = item.get("account_id") or {}
    return {
        "uid": str(item.get("uid") or ""),
        "identification_hash": str(item.get("identification_hash") or ""),
        "iban": str(ident.get("iban") or "") if isinstance(ident, dict) else "",
        "currency": str(item.get("currency") or ""),
        "name": str(item.get("name") or item.get("product") or item.get("details") or ""),
        "cash_account_type": str(item.get("cash_account_type") or ""),
    }


def account_identities(accounts: list[dict[str, Any]]) -> dict[str, str]:
    """uid → the key that survives a re-consent: ``identification_hash``, else IBAN, else uid.

    The uid lasts one session only; it is the last resort for a bank naming the account
    by nothing else. Currency pockets sharing an IBAN get the currency added."""
    found: dict[str, str] = {}
    for acc in accounts:
        if acc.get("identification_hash"):
            key = f"hash:{acc['identification_hash']}"
        elif acc.get("iban"):
            key = f"iban:{acc['iban']}"
        else:
            key = f"uid:{acc['uid']}"
        if len(key) > 150:  # keep the key within the column; a digest names it as well
            key = f"{key.split(':', 1)[0]}:sha256-{hashlib.sha256(key.encode()).hexdigest()}"
        found[acc["uid"]] = key
    counts = Counter(found.values())
    for acc in accounts:
        if counts[found[acc["uid"]]] > 1 and acc.get("currency"):
            found[acc["uid"]] += f":{str(acc['currency']).upper()}"
    return found


def pick_balance(balances: list[dict[str, Any]], precedence: tuple[str, ...]) -> dict[str, Any] | None:
    by_type: dict[str, dict[str, Any]] = {}
    for b in balances:
        by_type.setdefault(str(b.get("balance_type") or ""), b)
    return next((by_type[kind] for kind in precedence if kind in by_type), None)


def _money(entry: dict[str, Any], key: str) -> tuple[Decimal, str]:
    money = entry.get(key)
    if not isinstance(money, dict) or "amount" not in money or not money.get("currency"):
        raise BadData(f"Enable Banking sent an unreadable {key}")
    try:
        currency = currency_code(str(money["currency"]))
    except ValueError:
        raise BadData(f"Enable Banking sent an unknown currency in {key}") from None
    return WIRE.number(money["amount"], key), currency


def map_account(
    account: dict[str, Any], balances: list[dict[str, Any]], key: str, institution: str | None
) -> ProviderAccount:
    """``account`` is a ``session_account``; ``key`` its stable ``provider_account_id``."""
    booked = pick_balance(balances, BALANCE_PRECEDENCE) or (balances[0] if balances else None)
    available = pick_balance(balances, AVAILABLE_PRECEDENCE)
    balance = currency = None
    if booked is not None:
        balance, currency = _money(booked, "balance_amount")
    currency = account.get("currency") or currency
    if not currency:
        raise BadData("An Enable Banking account has neither a currency nor a balance")
    iban = str(account.get("iban") or "")
    name = account.get("name") or (f"Account …{iban[-4:]}" if iban else "Bank account")
    return ProviderAccount(
        provider_account_id=key,
        name=str(name),
        type=banklink.account_type(str(account.get("cash_account_type") or "")),
        currency=currency_code(str(currency)),
        institution=institution,
        balance=balance,
        available_balance=_money(available, "balance_amount")[0] if available else None,
        cash_value=balance,
        raw={"enablebanking_uid": account["uid"], "account": account, "balances": balances},
        iban=iban or None,
    )


def api_uid(account: ProviderAccount) -> str:
    """The session's uid to call the API with (``provider_account_id`` is the stable key)."""
    return str(account.raw.get("enablebanking_uid") or "")


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise BadData(f"Enable Banking sent an unreadable date: {value!r}") from None


def _counterparty(item: dict[str, Any], amount: Decimal) -> str:
    first, second = ("creditor", "debtor") if amount < 0 else ("debtor", "creditor")
    for side in (first, second):
        party = item.get(side)
        if isinstance(party, dict) and party.get("name"):
            return str(party["name"])
    return ""


def _remittance(item: dict[str, Any]) -> str:
    text = item.get("remittance_information")
    if isinstance(text, list):
        return " ".join(str(part) for part in text if part)
    return str(text or "")


def signed_amount(item: dict[str, Any]) -> tuple[Decimal, str]:
    amount, currency = _money(item, "transaction_amount")
    indicator = str(item.get("credit_debit_indicator") or "").upper()
    if indicator == "DBIT":
        return -abs(amount), currency
    if indicator == "CRDT":
        return abs(amount), currency
    return amount, currency  # no indicator: trust the sign the bank wrote


def _when(item: dict[str, Any]) -> date | None:
    return (
        _day(item.get("booking_date")) or _day(item.get("value_date")) or _day(item.get("transaction_date"))
    )


def fingerprint(item: dict[str, Any]) -> str:
    """What a bank cannot change between fetches of one item: day, amount, parties, text."""
    amount, currency = signed_amount(item)
    day = _day(item.get("transaction_date")) or _day(item.get("value_date")) or _when(item)
    return "|".join(
        (str(day), str(amount.normalize()), currency, _counterparty(item, amount), _remittance(item))
    )


def _classify(item: dict[str, Any], amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    code = item.get("bank_transaction_code")
    words = " ".join(str(v) for v in code.values()).upper() if isinstance(code, dict) else ""
    return banklink.classify(set(re.split(r"[^A-Z0-9]+", words)), amount)


def map_transactions(items: list[dict[str, Any]]) -> list[ProviderTransaction]:
    result: list[ProviderTransaction] = []
    seen: Counter[str] = Counter()
    for item in items:
        status_code = str(item.get("status") or "BOOK").upper()
        if status_code in DROPPED:
            continue
        pending = status_code in PENDING
        amount, currency = signed_amount(item)
        when = _when(item)
        if when is None:
            raise BadData("An Enable Banking transaction has no date")
        reference = str(item.get("entry_reference") or "")
        if reference and not pending:
            tx_id = f"ref:{reference}"
        else:
            key = ("pending|" if pending else "") + fingerprint(item)
            tx_id = "h:" + hashlib.sha256(f"{key}|{seen[key]}".encode()).hexdigest()
            seen[key] += 1
        tx_type, subtype = _classify(item, amount)
        result.append(
            ProviderTransaction(
                provider_transaction_id=tx_id,
                type=tx_type,
                subtype=subtype,
                amount=amount,
                currency=currency,
                transaction_date=when,
                settlement_date=_day(item.get("value_date")),
                status=TransactionStatus.PENDING if pending else TransactionStatus.SETTLED,
                description=_remittance(item) or _counterparty(item, amount) or None,
                # Without ``transaction_id``: it may change on every fetch, and the store reads a
                # changed ``raw`` as a changed row (every sync would rewrite the whole window).
                raw={k: v for k, v in item.items() if k != "transaction_id"},
            )
        )
    return result
