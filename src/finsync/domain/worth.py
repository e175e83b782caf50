"""What an account adds to net worth: liabilities always subtract."""

from __future__ import annotations

from decimal import Decimal

from finsync.domain.enums import AccountType

LIABILITY_TYPES = frozenset({AccountType.CREDIT_CARD, AccountType.LOAN})


def is_liability(account_type: AccountType | str) -> bool:
    return AccountType(account_type) in LIABILITY_TYPES


def signed(account_type: AccountType | str, balance: Decimal) -> Decimal:
    """Credit cards and loans count ``-|balance|``, whichever sign their provider uses."""
    return -abs(balance) if is_liability(account_type) else balance
