"""How values look on the wire, in one place: every response schema uses these types.

* Timestamps are UTC with a ``Z`` (``2026-11-21T09:00:00Z``), whatever offset the value
  carried in memory (an imported statement's own offset, say) — clients compare strings.
* Decimals are fixed-point strings, never exponent notation: ``430``, ``0.00001``, ``-6.60``
  (the scale a value carries is kept; ``Decimal("4.3E+2")`` is ``430``).
* Query dates and times are ISO 8601 *text*: a bare number such as ``0`` is refused instead
  of being read as a Unix time (1970). Query dates lie between 1900-01-01 and 2200-12-31.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def utc_text(value: datetime) -> str:
    """``value`` in UTC, ISO 8601 with ``Z``; a naive value is taken as UTC (how we store them)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


def decimal_text(value: Decimal) -> str:
    """Fixed-point text of ``value``: no exponent, its own scale kept."""
    return format(value, "f")


def _not_a_number(value: Any) -> Any:
    """Pydantic reads a number (even as text) as a Unix time; in a query string that is a mistake."""
    if isinstance(value, int | float | Decimal) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected ISO 8601 text (e.g. 2026-11-21 or 2026-11-21T09:00:00Z), not a number")
    return value


UtcDateTime = Annotated[
    datetime,
    PlainSerializer(utc_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": UTC_PATTERN,
            "examples": ["2026-11-21T09:00:00Z"],
        },
        mode="serialization",
    ),
]
"""A response timestamp: always UTC with ``Z``."""

DecimalText = Annotated[
    Decimal,
    PlainSerializer(decimal_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["-465.29"]}, mode="serialization"
    ),
]
"""A response decimal (money, quantity, price): a fixed-point string."""


def _decimal_text_in(value: Any) -> Any:
    """Money comes in as text, like it goes out: a JSON number may already have lost digits."""
    if isinstance(value, Decimal):  # built in Python (JSON never yields one)
        return value
    if not isinstance(value, str) or not re.fullmatch(DECIMAL_PATTERN, value):
        raise ValueError('expected a decimal string such as "-12.50"')
    return value


DecimalInput = Annotated[
    Decimal,
    BeforeValidator(_decimal_text_in),
    PlainSerializer(decimal_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["-12.50"]}, mode="validation"),
]
"""A request decimal: fixed-point text only (``"-12.50"``), never a JSON number."""

QUERY_DATES = (date(1900, 1, 1), date(2200, 12, 31))
QUERY_DATE_PATTERN = r"^(19\d\d|2[01]\d\d|2200)-\d\d-\d\d$"  # the years of QUERY_DATES


def _query_date_in_range(value: date) -> date:
    """Periods are widened by days and years (look-backs, the day after ``to``): near 0001-01-01
    or 9999-12-31 that overflows. No account has history outside this range."""
    first, last = QUERY_DATES
    if not first <= value <= last:
        raise ValueError(f"must be between {first} and {last}")
    return value


QueryDate = Annotated[
    date,
    BeforeValidator(_not_a_number),
    AfterValidator(_query_date_in_range),
    WithJsonSchema({"type": "string", "format": "date", "pattern": QUERY_DATE_PATTERN}),
]
"""A date query parameter: ``YYYY-MM-DD`` only, from 1900-01-01 to 2200-12-31 (else 422)."""

QueryDateTime = Annotated[
    datetime, BeforeValidator(_not_a_number), WithJsonSchema({"type": "string", "format": "date-time"})
]
"""A date-time query parameter: ISO 8601 text; without an offset it means UTC."""

DateTimeInput = Annotated[
    datetime,
    BeforeValidator(_not_a_number),
    PlainSerializer(utc_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2027-05-01T00:00:00Z"]}),
]
"""A date-time in a request body: ISO 8601 text (never a number); no offset means UTC."""
