"""Leaf-value parsers: amounts, OFX datetimes, character references.

They raise ``ValueError`` with a short reason; the reader decides whether that is a
warning (one transaction skipped) or a ``MalformedFile`` (the statement is unusable).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d{1,40}\.?\d{0,40}|\.\d{1,40})")
_MAX_DIGITS = 40
_DATETIME = re.compile(
    r"\s*(\d{4})(\d\d)(\d\d)"  # YYYYMMDD
    r"(?:(\d\d)(\d\d)(\d\d)?)?"  # HHMM[SS]
    r"(?:[.:](\d{1,6}))?"  # .XXX milliseconds (some banks write :XXX)
    r"\s*(?:\[\s*([+-]?\d*)(?:\.(\d{1,2}))?\s*(?::\s*([A-Za-z][\w/+-]*)?)?\s*\])?\s*"
)
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_REFERENCE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|amp|lt|gt|quot|apos);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# Used only when the bracket has a zone name but no usable offset, e.g. "[-:EST]".
_ZONE_HOURS = {
    "GMT": 0.0, "UTC": 0.0, "Z": 0.0, "WET": 0.0, "BST": 1.0, "CET": 1.0, "CEST": 2.0,
    "EST": -5.0, "EDT": -4.0, "CST": -6.0, "CDT": -5.0, "MST": -7.0, "MDT": -6.0,
    "PST": -8.0, "PDT": -7.0, "AKST": -9.0, "AKDT": -8.0, "HST": -10.0, "IST": 5.5,
    "JST": 9.0, "AEST": 10.0, "AEDT": 11.0, "NZST": 12.0, "NZDT": 13.0,
}  # fmt: skip
_MINUTE_FRACTIONS = {"15": 15, "30": 30, "45": 45}
_zones: dict[int, timezone] = {0: UTC}
_parsed: dict[str, datetime | None] = {}
_PARSED_MAX = 20_000


def parse_amount(text: str) -> Decimal:
    """An exact amount. Accepts ``+`` signs, leading zeros and a comma decimal separator
    (``-1006,60``; with both separators the last one is the decimal point)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return _lenient_amount(text)
    # Finite and of sane magnitude: "1e999999" would overflow later sums with a bare trap.
    if not value.is_finite() or "_" in text or not -_MAX_DIGITS <= value.adjusted() <= _MAX_DIGITS:
        raise ValueError(f"not an amount: {text.strip()!r}")
    return value


def _lenient_amount(text: str) -> Decimal:
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "")
    comma, dot = cleaned.rfind(","), cleaned.rfind(".")
    if comma > dot:  # "1.006,60" or "-6,60": the comma is the decimal separator
        cleaned = cleaned.replace(".", "").replace(",", ".")
    elif comma >= 0:  # "1,006.60": commas group thousands
        cleaned = cleaned.replace(",", "")
    if not _PLAIN_NUMBER.fullmatch(cleaned):
        raise ValueError(f"not an amount: {text.strip()!r}")
    return Decimal(cleaned)


def parse_datetime(text: str) -> datetime | None:
    """An OFX ``YYYYMMDD[HHMM[SS[.XXX]]][ [offset:TZ]]`` value as an aware datetime.

    No bracket means UTC (the OFX default). The offset keeps the bank's own zone so that
    ``.date()`` is the bank's calendar date. ``[+5.30:IST]`` reads as 5h30 (".15/.30/.45"
    are minutes), ``[-5.5:XXX]`` as 5h30 (decimal hours). ``00000000`` (a bank's "no
    date") returns None; anything else unreadable, or beyond what a UTC timestamp can
    hold (``99991231235959[-12]``), raises ``ValueError``.
    """
    cached = _parsed.get(text)
    if cached is not None or text in _parsed:
        return cached
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not an OFX date: {text.strip()!r}")
    year, month, day, hour, minute, second, fraction, offset, offset_fraction, zone = match.groups()
    if year == "0000" and month == "00" and day == "00":
        result = None
    else:
        tz = _timezone(offset, offset_fraction, zone, text)
        micro = int(fraction.ljust(6, "0")) if fraction else 0
        try:
            result = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tz
            )
            result.astimezone(UTC)  # stored in UTC: 9999-12-31 at -12:00 or 0001-01-01 at +14:00 is not
        except ValueError as exc:
            raise ValueError(f"not a valid date: {text.strip()!r} ({exc})") from None
        except OverflowError:
            raise ValueError(f"not a valid date: {text.strip()!r} (out of range in UTC)") from None
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    _parsed[text] = result
    return result


def _timezone(offset: str | None, fraction: str | None, zone: str | None, text: str) -> timezone:
    if offset and offset not in "+-":
        minutes = abs(int(offset)) * 60
        if fraction:
            minutes += _MINUTE_FRACTIONS.get(fraction, round(int(fraction) * 60 / 10 ** len(fraction)))
        minutes = -minutes if offset.startswith("-") else minutes
    elif zone and zone.upper() in _ZONE_HOURS:
        minutes = round(_ZONE_HOURS[zone.upper()] * 60)
    else:
        return UTC
    if abs(minutes) >= 24 * 60:
        raise ValueError(f"not a valid date: {text.strip()!r} (time-zone offset beyond 24 hours)")
    tz = _zones.get(minutes)
    if tz is None:
        tz = _zones[minutes] = timezone(timedelta(minutes=minutes))
    return tz


def parse_currency(text: str) -> str:
    code = text.strip()
    if not _CURRENCY.fullmatch(code):
        raise ValueError(f"not an ISO-4217 currency code: {code!r}")
    return code.upper()


def unescape(text: str) -> str:
    """Replace the five XML entities and numeric references; nothing else.

    There is deliberately no DTD support: unknown ``&name;`` stays literal, so entity
    expansion attacks have nothing to expand.
    """
    return _REFERENCE.sub(_reference, text)


def _reference(match: re.Match[str]) -> str:
    ref = match.group(1)
    if ref[0] != "#":
        return _NAMED[ref]
    code = int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:])
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return match.group(0)
    return chr(code)
