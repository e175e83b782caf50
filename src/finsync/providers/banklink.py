"""What the bank-link providers (GoCardless, Enable Banking) share beside the call budget
(``providers/budget.py``): the date window a sync reads, and the reading of ISO 20022 bank
transaction codes. Both speak PSD2 access to the same banks, so the rules are the banks'."""

from __future__ import annotations

from collections.abc import Collection, MutableMapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.records import ProviderTransaction

OVERLAP = timedelta(days=7)  # banks book late: re-read the last week on every sync


def window(memo: MutableMapping[str, Any], today: date, history_days: int) -> tuple[date, date]:
    """From the last sync minus ``OVERLAP`` (or the first sync's history) to today; back to the
    oldest pending row, which must be seen again to be replaced. After a long pause no further
    back than a first sync: banks refuse older history without the person present."""
    earliest = today - timedelta(days=history_days - 1)
    start = earliest
    if memo.get("transactions_until"):
        start = date.fromisoformat(memo["transactions_until"]) - OVERLAP
        if memo.get("oldest_pending"):
            start = min(start, date.fromisoformat(memo["oldest_pending"]))
    return max(start, earliest), today


def remember(
    memo: MutableMapping[str, Any], until: date, transactions: Sequence[ProviderTransaction]
) -> None:
    """What the next :func:`window` starts from: the end read, and the oldest pending row."""
    memo["transactions_until"] = until.isoformat()
    pending = [t.transaction_date for t in transactions if t.status is TransactionStatus.PENDING]
    memo["oldest_pending"] = min(pending).isoformat() if pending else None


def classify(code_words: Collection[str], amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    """An ISO 20022 bank transaction code's words (domain, family, sub-family) when present,
    else the sign."""
    if "INTR" in code_words and amount > 0:
        return TransactionType.INCOME, TransactionSubtype.INTEREST
    if "FEES" in code_words or "CHRG" in code_words:
        return TransactionType.FEE, TransactionSubtype.FEE
    if "CCRD" in code_words and amount < 0:
        return TransactionType.OTHER, TransactionSubtype.PURCHASE
    if amount >= 0:
        return TransactionType.TRANSFER, TransactionSubtype.DEPOSIT
    return TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL


# ISO 20022 cash account types, as both bank links report them.
_ACCOUNT_TYPES = {
    "CACC": AccountType.CHECKING,
    "TRAN": AccountType.CHECKING,
    "CASH": AccountType.CHECKING,
    "SVGS": AccountType.SAVINGS,
    "MOMA": AccountType.SAVINGS,
    "CARD": AccountType.CREDIT_CARD,
    "LOAN": AccountType.LOAN,
}


def account_type(code: str) -> AccountType:
    """The account type of an ISO 20022 ``cashAccountType`` code (any case); OTHER when unknown."""
    return _ACCOUNT_TYPES.get(code.upper(), AccountType.OTHER)
