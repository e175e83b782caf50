"""What a CSV file does not say about itself: encoding, delimiter, quote, date and number format.

Everything here is small, pure and stdlib-only. Each detector looks at a sample (the first
rows), decides, and says what it decided, so ``POST /imports/preview`` can show it and a
saved mapping can pin it when the guess is wrong (a file whose dates are all ambiguous,
``01/02/2024``, is read day-first unless told otherwise, with a warning).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from finsync.domain.csvmapping import date_order, direction_of, normalise_header
from finsync.domain.errors import MalformedFile

SAMPLE_ROWS = 200
DELIMITERS = (",", ";", "\t", "|")
QUOTES = ('"', "'")

# --- encoding -------------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name). UTF-8 with or without BOM, UTF-16 (BOM, or none but NUL-padded
    ASCII, as Excel's "Unicode text" writes it), otherwise Windows-1252 (Excel's "CSV" on
    Windows), whose five undefined bytes are read as Latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _strict(data[3:], "utf-8"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _strict(data, "utf-16"), "utf-16"
    head = data[:4096]
    if len(head) >= 4 and head.count(0) * 3 >= len(head):  # about every other byte is NUL
        codec = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
        return _strict(data, codec), codec
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "windows-1252"


def _strict(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"the file is not valid {codec} text (byte {exc.start:,})") from None


# --- dialect --------------------------------------------------------------------------------


PREAMBLE_ROWS = 30  # rows a file may hold above its header (a title, account details, a balance)


@dataclass(frozen=True, slots=True)
class Dialect:
    delimiter: str
    quote: str
    header_row: int = 0  # non-blank rows above the header (Nationwide, ING and others write some)


def _sample_lines(text: str, limit: int = SAMPLE_ROWS) -> list[str]:
    lines: list[str] = []
    for line in io.StringIO(text):
        if line.strip():
            lines.append(line)
            if len(lines) >= limit:
                break
    return lines


def _fits(row: Sequence[str], width: int) -> bool:
    """A row of the table's width; extra cells are allowed when empty (exports that end every
    data row, but not the header, with a delimiter)."""
    return len(row) == width or (len(row) > width and not "".join(row[width:]).strip())


def sniff_dialect(text: str) -> Dialect | None:
    """The delimiter and quote under which the sample's rows have the header's width most
    often (ties: more columns, then the order of :data:`DELIMITERS`), and the header: the
    first non-blank row of at least two named cells from which the rows have its width
    (lines above it, up to :data:`PREAMBLE_ROWS`, are a preamble). None: not a table."""
    lines = _sample_lines(text, 50 + PREAMBLE_ROWS)
    if not lines:
        return None
    head = "".join(lines[: PREAMBLE_ROWS + 1])
    best: tuple[tuple[float, ...], Dialect] | None = None
    for quote in QUOTES:
        if quote == "'" and '"' in text[:20_000]:
            continue
        for rank, delimiter in enumerate(DELIMITERS):
            if delimiter not in head:
                continue
            try:
                parsed = [
                    r
                    for r in csv.reader(lines, delimiter=delimiter, quotechar=quote)
                    if any(c.strip() for c in r)
                ]
            except csv.Error:  # stray carriage returns, oversized fields: not this dialect
                continue
            for start, header in enumerate(parsed[: PREAMBLE_ROWS + 1]):
                width = len(header)
                if width < 2 or sum(1 for c in header if c.strip()) < 2 or "\n" in "".join(header):
                    continue
                table = parsed[start:]
                consistent = sum(1 for row in table if _fits(row, width)) / len(table)
                if consistent < 0.8:
                    continue
                score = (-start, consistent, width, -rank)
                if best is None or score > best[0]:
                    best = (score, Dialect(delimiter, quote, start))
                break
    return None if best is None else best[1]


def rows(text: str, dialect: Dialect) -> Any:
    """A ``csv.reader`` (its ``line_num`` numbers the lines) over the whole text."""
    return csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter, quotechar=dialect.quote)


# --- dates ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DateFormat:
    """Field order and separator; a time after the date (``2024-01-31 10:00:00``, ``T...``)
    is ignored: transactions are dated by day."""

    order: str  # "ymd", "dmy" or "mdy"
    sep: str  # "-", "/", "." or "" (20240131)

    @property
    def label(self) -> str:
        names = {"y": "YYYY", "m": "MM", "d": "DD"}
        return self.sep.join(names[c] for c in self.order)

    @classmethod
    def from_label(cls, label: str) -> DateFormat:
        """``DD/MM/YYYY``, ``MM-DD-YYYY``, ``YYYY.MM.DD``, ``YYYYMMDD``… (as in a saved mapping)."""
        order, sep = date_order(label)
        return cls(order, sep)

    def parser(self) -> Callable[[str], date]:
        return _date_parser(self)


_DATE_HEAD = re.compile(r"\s*(\d{1,4})([-/.]?)(\d{1,2})\2(\d{1,4})")
_FORMATS = (
    DateFormat("ymd", "-"), DateFormat("dmy", "/"), DateFormat("mdy", "/"), DateFormat("dmy", "."),
    DateFormat("dmy", "-"), DateFormat("mdy", "-"), DateFormat("ymd", "/"), DateFormat("ymd", "."),
    DateFormat("ymd", ""),
)  # fmt: skip


def _year(text: str) -> int:
    year = int(text)
    if len(text) <= 2:
        year += 2000 if year < 70 else 1900
    return year


def _compact(head: str, order: str) -> list[str]:
    """A date without separators (``20240131``, ``31012024``, ``310124``) cut in the format's
    field order, the year taking what day and month leave (4 or 2 digits): a pinned DDMMYYYY
    is not YYYYMMDD."""
    if len(head) not in (6, 8):
        return []
    parts: list[str] = []
    at = 0
    for part in order:
        width = len(head) - 4 if part == "y" else 2
        parts.append(head[at : at + width])
        at += width
    return parts


def _date_parser(fmt: DateFormat) -> Callable[[str], date]:
    iso = fmt.order == "ymd" and fmt.sep == "-"
    index = {c: i for i, c in enumerate(fmt.order)}
    yi, mi, di = index["y"], index["m"], index["d"]
    sep = fmt.sep
    seen: dict[str, date] = {}  # a file repeats its dates: each distinct cell is read once

    def parse(value: str) -> date:
        known = seen.get(value)
        if known is not None:
            return known
        day = read(value)
        if len(seen) < 20_000:
            seen[value] = day
        return day

    def read(value: str) -> date:
        if iso and len(value) >= 10 and value[4] == "-":  # the common case, in C
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        text = value.strip()
        head = " ".join(text.split()[:3]) if sep == " " else text.split(" ", 1)[0].split("T", 1)[0]
        parts = head.split(sep) if sep else _compact(head, fmt.order)
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"{value!r} is not a {fmt.label} date")
        try:
            return date(_year(parts[yi]), int(parts[mi]), int(parts[di]))
        except ValueError:
            raise ValueError(f"{value!r} is not a {fmt.label} date") from None

    return parse


def detect_date_format(values: Sequence[str], prefer: DateFormat | None = None) -> tuple[DateFormat, bool]:
    """(format, ambiguous). The candidate that reads the most sample values (a few bad rows
    do not hide the format; they are reported when read); day-first wins over month-first
    when both read as many (``ambiguous`` is then True) unless ``prefer`` says otherwise.
    Raises ValueError when no format reads at least half of them."""
    samples = [v for v in values if v.strip()][:SAMPLE_ROWS]
    if not samples:
        raise ValueError("no dates to read")
    scores = [(_reads(fmt, samples), fmt) for fmt in _FORMATS]
    best = max(score for score, _ in scores)
    if best * 2 < len(samples):
        raise ValueError(f"dates such as {samples[0]!r} are in no known format")
    fitting = [fmt for score, fmt in scores if score == best]
    if prefer is not None and prefer in fitting:
        return prefer, False
    first = fitting[0]
    ambiguous = first.order in ("dmy", "mdy") and any(
        f.order in ("dmy", "mdy") and f.order != first.order and f.sep == first.sep for f in fitting[1:]
    )
    return first, ambiguous


def _reads(fmt: DateFormat, samples: Sequence[str]) -> int:
    parse = _date_parser(fmt)
    count = 0
    for value in samples:
        match = _DATE_HEAD.match(value)
        if match is None or match[2] != fmt.sep or (len(match[1]) == 4) != (fmt.order == "ymd"):
            continue
        try:
            parse(value)
        except ValueError:
            continue
        count += 1
    return count


# --- numbers --------------------------------------------------------------------------------

_JUNK = str.maketrans("", "", " \u00a0\u202f'£$€¥+")  # spaces, Swiss apostrophe, symbols
_COMMA_DECIMAL = re.compile(r",\d{1,2}$|,\d{4,}$|\.\d{3},")
_MAX_DIGITS = 40  # as for OFX amounts: far beyond any real amount, far below a hostile one


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """``decimal`` is "." or ","; the other one (and spaces, apostrophes) groups thousands."""

    decimal: str = "."

    @property
    def label(self) -> str:
        return "1,234.56" if self.decimal == "." else "1.234,56"

    def parser(self) -> Callable[[str], Decimal | None]:
        return _number_parser(self.decimal)


def _number_parser(decimal_mark: str) -> Callable[[str], Decimal | None]:
    thousands = "," if decimal_mark == "." else "."
    strip = str.maketrans("", "", thousands)

    def parse(value: str) -> Decimal | None:
        """None for an empty cell; ValueError for what is not a number."""
        text = value.strip()
        if not text:
            return None
        if decimal_mark == "." and "," not in text:
            try:  # the common case, in C
                number = Decimal(text)
            except InvalidOperation:
                pass
            else:
                # "1e-999999" is finite but a million digits once stored; "1_000" is Python syntax.
                sane = number.is_finite() and -_MAX_DIGITS <= number.adjusted() <= _MAX_DIGITS
                if sane and "_" not in text:
                    return number
                raise ValueError(f"{value!r} is not an amount")
        negative = False
        if text.startswith("(") and text.endswith(")"):  # accounting negatives
            negative, text = True, text[1:-1]
        if text.endswith("-"):  # trailing minus (some German and Dutch banks)
            negative, text = True, text[:-1]
        text = text.translate(_JUNK)
        if thousands in text and not _grouped(text.split(decimal_mark, 1)[0].lstrip("-"), thousands):
            # "12,50" in a file read with a decimal point is a decimal comma, not 1250 (and
            # "12.50" in a decimal-comma file is not 1250): reported, never read 100 times too big.
            raise ValueError(f"{value!r} is not an amount")
        text = text.translate(strip)
        if decimal_mark == ",":
            text = text.replace(",", ".")
        if text.startswith("-"):
            negative, text = not negative, text[1:]
        if not text or not all(c.isdigit() or c == "." for c in text) or text.count(".") > 1:
            raise ValueError(f"{value!r} is not an amount")
        number = Decimal(text)
        if number.adjusted() > _MAX_DIGITS or len(text) > 2 * _MAX_DIGITS + 1:
            raise ValueError(f"{value!r} is not an amount")
        return -number if negative else number

    return parse


def _grouped(whole: str, thousands: str) -> bool:
    """Whether the separators in an amount's whole part group its digits as thousands do:
    threes (``1,234,567``), or twos before the last three as Indian lakhs are written
    (``1,23,456``)."""
    groups = whole.split(thousands)
    return 1 <= len(groups[0]) <= 3 and all(len(g) in (2, 3) for g in groups[1:-1]) and len(groups[-1]) == 3


def detect_number_format(values: Iterable[str], prefer: NumberFormat | None = None) -> NumberFormat:
    """Decimal comma when a sample shows one (``12,5``, ``1.234,56``); otherwise point."""
    if prefer is not None:
        return prefer
    for value in values:
        text = value.strip().translate(_JUNK).rstrip(")-")
        if "," in text and _COMMA_DECIMAL.search(text):
            return NumberFormat(",")
    return NumberFormat(".")


# --- debit/credit markers -------------------------------------------------------------------

# Header names of a column that says debit or credit per row (normalised: case and spacing).
DIRECTION_HEADERS = frozenset({
    "cr/dr", "dr/cr", "debit/credit", "credit/debit", "d/c", "c/d", "dc", "cd", "drcr", "crdr",
    "dr cr", "cr dr", "debit or credit", "credit or debit", "type", "transaction type",
    "cr/dr indicator", "dr/cr indicator", "debit/credit indicator", "credit/debit indicator",
    "indicator",
})  # fmt: skip


def detect_direction(
    header: Sequence[str], sample: Sequence[Sequence[str]], skip: Iterable[int] = ()
) -> int | None:
    """The position of a column saying whether each row is a debit or a credit (``DR``/``CR``,
    ``D``/``C``, ``Debit``/``Credit``), or None. A column qualifies when every non-empty sample
    value is such a marker and either its name says so (``CR/DR``, ``Type``…) or both kinds
    occur; or when its name says so and most of its values are markers (the others are then
    reported by line when read). ``skip``: columns already playing another role."""
    names = normalise_header(header)
    taken = set(skip)
    for at, name in enumerate(names):
        if at in taken:
            continue
        values = [row[at] for row in sample if at < len(row) and row[at].strip()]
        if not values:
            continue
        kinds = [direction_of(v) for v in values]
        known = [k for k in kinds if k is not None]
        named = name in DIRECTION_HEADERS
        if len(known) == len(kinds) and (named or len(set(known)) == 2):
            return at
        if named and len(known) * 2 > len(kinds):
            return at
    return None
