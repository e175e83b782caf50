"""A user's description of a CSV file: which column plays which role, and how to read it.

Plain data shared by the CSV reader (providers), the import use-case and the stored
``import_mappings``; validation here is about the mapping itself, not about any file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import StrEnum


class SignConvention(StrEnum):
    """How an amount column says in or out."""

    POSITIVE_IN = "positive_in"  # money into the account is positive (most bank exports)
    POSITIVE_OUT = "positive_out"  # charges are positive (many card exports, e.g. Amex)


# Roles a column can play; ``description`` may name several columns (joined with " / ").
ROLES = (
    "date", "amount", "debit", "credit", "description", "id", "currency",
    "symbol", "quantity", "unit_price", "fees", "settlement_date",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMapping:
    """Column roles by header name, plus reading settings; None settings are detected."""

    date: str
    amount: str | None = None
    debit: str | None = None  # money out, as a positive number
    credit: str | None = None  # money in, as a positive number
    description: tuple[str, ...] = ()
    id: str | None = None  # a unique transaction id, when the file has one
    currency: str | None = None
    symbol: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    fees: str | None = None
    settlement_date: str | None = None
    date_format: str | None = None  # e.g. "DD/MM/YYYY"; None: detected
    decimal: str | None = None  # "." or ","; None: detected
    sign: SignConvention = SignConvention.POSITIVE_IN
    default_currency: str | None = None  # when there is no currency column

    def problems(self) -> list[str]:
        issues: list[str] = []
        if not self.date:
            issues.append("a date column is required")
        if self.amount is None and self.debit is None and self.credit is None:
            issues.append("an amount column, or debit and/or credit columns, is required")
        if self.amount is not None and (self.debit is not None or self.credit is not None):
            issues.append("use either an amount column or debit/credit columns, not both")
        if self.decimal not in (None, ".", ","):
            issues.append('decimal must be "." or ","')
        if self.currency is None and self.default_currency is None:
            issues.append("a currency column or a default_currency is required")
        return issues

    def columns(self) -> list[str]:
        """Every header name the mapping uses."""
        out: list[str] = []
        for f in fields(self):
            if f.name not in ROLES:
                continue
            value = getattr(self, f.name)
            out += list(value) if isinstance(value, tuple) else [value] if value else []
        return out


def normalise_header(header: Sequence[str]) -> tuple[str, ...]:
    return tuple(" ".join(h.replace("\ufeff", "").split()).casefold() for h in header)


def header_signature(header: Sequence[str]) -> str:
    """What a saved mapping is matched by: the header's names, case and spacing ignored."""
    joined = "\x1f".join(normalise_header(header))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]
