"""A user's description of a CSV file: which column plays which role, and how to read it.

Plain data shared by the CSV reader (providers), the import use-case and the stored
``import_mappings``; validation here is about the mapping itself, not about any file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from finsync.domain.entities import new_id, utcnow


class SignConvention(StrEnum):
    """How an amount column says in or out."""

    POSITIVE_IN = "positive_in"  # money into the account is positive (most bank exports)
    POSITIVE_OUT = "positive_out"  # charges are positive (many card exports, e.g. Amex)


# Roles a column can play; ``description`` may name several columns (joined with " / ").
ROLES = (
    "date", "amount", "debit", "credit", "direction", "description", "id", "currency",
    "symbol", "quantity", "unit_price", "fees", "settlement_date",
)  # fmt: skip

# What a ``direction`` column says, case and surrounding spaces ignored: -1 debit (money
# out), +1 credit (money in).
DIRECTION_MARKERS = {"dr": -1, "d": -1, "debit": -1, "cr": 1, "c": 1, "credit": 1}


def direction_of(value: str) -> int | None:
    """-1 for a debit marker (``DR``, ``D``, ``Debit``), +1 for a credit one, None otherwise."""
    return DIRECTION_MARKERS.get(value.strip().casefold())


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMapping:
    """Column roles by header name, plus reading settings; None settings are detected."""

    date: str
    amount: str | None = None
    debit: str | None = None  # money out, as a positive number
    credit: str | None = None  # money in, as a positive number
    direction: str | None = None  # debit or credit per row (DR/CR, D/C, Debit/Credit): signs ``amount``
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
        if self.direction is not None and self.amount is None:
            issues.append("a direction column signs an amount column: name the amount column too")
        if self.direction is not None and self.sign is not SignConvention.POSITIVE_IN:
            issues.append("a direction column says the sign: leave sign as positive_in")
        if self.decimal not in (None, ".", ","):
            issues.append('decimal must be "." or ","')
        if self.currency is None and self.default_currency is None:
            issues.append("a currency column or a default_currency is required")
        if self.date_format is not None:
            try:
                date_order(self.date_format)
            except ValueError as exc:
                issues.append(str(exc))
        return issues

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else str(value)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnMapping:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["description"] = tuple(values.get("description") or ())
        values["sign"] = SignConvention(values.get("sign") or SignConvention.POSITIVE_IN)
        return cls(**values)

    def columns(self) -> list[str]:
        """Every header name the mapping uses."""
        out: list[str] = []
        for f in fields(self):
            if f.name not in ROLES:
                continue
            value = getattr(self, f.name)
            out += list(value) if isinstance(value, tuple) else [value] if value else []
        return out


_DATE_LABEL = re.compile(r"(YYYY|YY|MM|DD)([-/. ]?)(YYYY|YY|MM|DD)\2(YYYY|YY|MM|DD)")


def date_order(label: str) -> tuple[str, str]:
    """``DD/MM/YYYY`` → ("dmy", "/"); ValueError for what is no date format."""
    match = _DATE_LABEL.fullmatch(label.upper())
    if match is None:
        raise ValueError(f"unknown date format {label!r}; use e.g. DD/MM/YYYY, MM/DD/YYYY, YYYY-MM-DD")
    order = "".join(p[0].lower() for p in (match[1], match[3], match[4]))
    if sorted(order) != ["d", "m", "y"]:
        raise ValueError(f"date format {label!r} must name day, month and year once each")
    return order, match[2]


def normalise_header(header: Sequence[str]) -> tuple[str, ...]:
    return tuple(" ".join(h.replace("\ufeff", "").split()).casefold() for h in header)


def header_signature(header: Sequence[str]) -> str:
    """What a saved mapping is matched by: the header's names, case and spacing ignored."""
    joined = "\x1f".join(normalise_header(header))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


@dataclass(slots=True, kw_only=True)
class ImportMapping:
    """A saved mapping: used for files whose header has ``signature`` (or named by id)."""

    user_id: UUID
    name: str
    header: list[str]
    mapping: ColumnMapping
    account_id: UUID | None = None  # rows go to this account instead of the file's own
    id: UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)

    @property
    def signature(self) -> str:
        return header_signature(self.header)
