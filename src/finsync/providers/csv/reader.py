"""CSV as an import format: detect, pick a preset (or a saved/guessed mapping), read rows.

Rows are read with the stdlib ``csv`` module (C speed) and mapped one by one; a row that
cannot be read is left out and reported with its line number in the warnings, and a file
with no usable row is refused (``no-usable-rows``). Row ids (the dedup key within an
account): the file's id column when it has one, otherwise ``h:`` + a digest of date,
amount, currency, description, symbol, quantity and the row's occurrence index among
identical rows of the account, so two identical coffees stay two rows and re-importing an
overlapping export yields the same ids. The row's fingerprint (what says "changed") is a
digest of all its cells.

Rows with an id are keyed from their raw cells (id, fingerprint, and the account their
currency cell names) and mapped only when the writer finds them new or changed, as OFX
transactions are by FITID: re-importing an overlapping export never maps the rows the
account already holds. Such a row that turns out unreadable is reported, by line, when
it is built. Rows are mapped as they are read until one maps, so a file with no usable
row is still refused before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from finsync.domain.csvmapping import ColumnMapping, SignConvention, header_signature
from finsync.domain.enums import AccountType
from finsync.domain.errors import MalformedFile, UnsupportedFormat
from finsync.domain.ports import ParsedFile, ParsedStatement
from finsync.domain.records import DeferredTransactions, ProviderAccount, ProviderTransaction
from finsync.gcpause import gc_paused
from finsync.providers.csv.detect import SAMPLE_ROWS, Dialect, decode, detect_direction, rows, sniff_dialect
from finsync.providers.csv.mapping import (
    AccountInfo,
    Columns,
    Mapped,
    MappingReader,
    RowError,
    SkipRow,
    guess_mapping,
)
from finsync.providers.csv.presets import Preset, RowMapper, all_presets, identify

MAX_WARNINGS = 100
FINGERPRINT_VERSION = "csv1"


class CsvNoRows(MalformedFile):
    """A CSV file none of whose rows could be imported."""

    code = "no-usable-rows"
    title = "No usable row in the file"


@dataclass(slots=True)
class Table:
    """A decoded CSV file: its dialect, header and an iterator over the rows after it."""

    encoding: str
    dialect: Dialect
    header: list[str]
    body: Any  # the csv reader (a _csv.reader: line_num), positioned after the header (line_num counts lines)
    sample: list[list[str]] = field(default_factory=list)
    sample_lines: list[int] = field(default_factory=list)
    note: str = ""  # what the reader skipped above the header, for the warnings

    @classmethod
    def open(cls, data: bytes) -> Table:
        text, encoding = decode(data)
        text = text.replace("\x00", "")
        dialect = sniff_dialect(text)
        if dialect is None:
            raise UnsupportedFormat("the file is not a CSV table (no delimiter gives its lines one width)")
        body = rows(text, dialect)
        try:
            filled = (r for r in body if any(c.strip() for c in r))
            header = next(itertools.islice(filled, dialect.header_row, None), None)
        except csv.Error as exc:
            raise MalformedFile(f"line {body.line_num + 1}: {exc}") from None
        if header is None:
            raise CsvNoRows("the file has no header row")
        table = cls(encoding, dialect, [h.replace("\ufeff", "").strip() for h in header], body)
        if dialect.header_row:
            table.note = (
                f"the header is on line {body.line_num}: the {dialect.header_row} line(s) above it "
                "(a title or account details) were not read"
            )
        return table

    def take_sample(self) -> list[list[str]]:
        """The first rows, kept to detect formats; ``rows()`` yields them again."""
        if self.sample:
            return self.sample
        try:
            for cells in self.body:
                if any(c.strip() for c in cells):
                    self.sample.append(cells)
                    self.sample_lines.append(self.body.line_num)
                    if len(self.sample) >= SAMPLE_ROWS:
                        break
        except csv.Error as exc:
            raise MalformedFile(f"line {self.body.line_num + 1}: {exc}") from None
        return self.sample

    def numbered(self) -> Iterator[tuple[int, list[str]]]:
        """(line, cells) of every non-blank row, the sample rows first."""
        yield from zip(self.sample_lines, self.sample, strict=True)
        body = self.body
        try:
            for cells in body:  # blank: no cell or only empty ones (one C-level join, not a test per cell)
                if cells and (cells[0].strip() or "".join(cells).strip()):
                    yield body.line_num, cells
        except csv.Error as exc:
            raise MalformedFile(f"line {body.line_num + 1}: {exc}") from None

    def check_quotes(self, line: int, cells: list[str]) -> None:
        """A cell running over several lines that hold rows of the header's width is a quote
        not closed where it should be: the rows it swallowed would vanish (or lend the row
        their amount), so the file is refused, naming the line where the quote opens."""
        delimiter, need = self.dialect.delimiter, max(len(self.header) - 1, 2)
        for cell in cells:
            if "\n" in cell and any(part.count(delimiter) >= need for part in cell.split("\n")[1:]):
                start = line - sum(
                    c.rstrip("\r\n").count("\n") for c in cells
                )  # at the end: the last newline
                raise MalformedFile(
                    f"line {start}: a quoted field opened on this line is not closed before line "
                    f"{line}: the lines in between would be read as one cell"
                )

    def describe(self) -> dict[str, str]:
        delimiter = {"\t": "tab"}.get(self.dialect.delimiter, self.dialect.delimiter)
        return {"encoding": self.encoding, "delimiter": delimiter, "quote": self.dialect.quote}


@dataclass(slots=True)
class Source:
    """Which reading applies: a preset, a saved mapping or a guessed one."""

    format: str  # "csv:<preset>", "csv:mapping" or "csv"
    mapper: RowMapper
    mapping: ColumnMapping | None = None
    notes: list[str] = field(default_factory=list)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class _Ids:
    """Row ids per account (see the module docstring)."""

    def __init__(self) -> None:
        self._occurrences: dict[tuple[str, ...], int] = {}
        self._seen: dict[str, list[str]] = {}  # ids used by several different rows

    def of_file_id(
        self, batch: _Batch, account: str, file_id: str, fingerprint: str, warn: Callable[[str], None]
    ) -> str | None:
        """The id of a row the file names; None for an exact repeat of an id already read
        (the same row twice). The reader's loop takes the common case itself: an id seen
        once is the row's id."""
        first = batch.first.setdefault(file_id, fingerprint)
        if first is fingerprint:
            return file_id
        key_id = f"{account}\x1f{file_id}"
        variants = self._seen.setdefault(key_id, [first])
        if fingerprint in variants:
            return None
        variants.append(fingerprint)
        warn(f"id {file_id} is used for {len(variants)} different rows; kept each of them")
        return f"{file_id}#{len(variants)}"

    def of_content(self, account: str, t: ProviderTransaction) -> str:
        """The id of a row without one: its content and its occurrence among identical rows."""
        quantity = "" if t.quantity is None else format(t.quantity.normalize(), "f")
        key = (
            account, t.transaction_date.isoformat(), format(t.amount.normalize(), "f"), t.currency,
            t.description or "", t.symbol or "", quantity,
        )  # fmt: skip
        occurrence = self._occurrences.get(key, 0)
        self._occurrences[key] = occurrence + 1
        return "h:" + _digest("|".join((*key[1:], str(occurrence))))


class _Problems:
    """Rows not imported (at most MAX_WARNINGS lines, then one counting the rest) and rows
    skipped on purpose (counted by reason), in the file's warnings. Rows built after the read
    (see the module docstring) report into the same list while the writer takes them."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings
        self.count = 0
        self.skipped: dict[str, int] = {}
        self._summary: list[int] = []  # positions of the summary lines in ``warnings``

    def warn(self, message: str) -> None:
        self.count += 1
        if self.count <= MAX_WARNINGS:
            self.warnings.append(message)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def finish(self) -> None:
        """Write (or bring up to date) the summary lines."""
        lines = [f"… and {self.count - MAX_WARNINGS} more rows that were not imported"]
        lines = lines if self.count > MAX_WARNINGS else []
        lines += [f"{count} row(s) skipped: {reason}" for reason, count in self.skipped.items()]
        for at, line in zip(self._summary, lines, strict=False):
            self.warnings[at] = line
        for line in lines[len(self._summary) :]:
            self._summary.append(len(self.warnings))
            self.warnings.append(line)


_SEP = "\x1f"  # joins a row's cells for its fingerprint (and keeps a lazy row as one string)


@dataclass(slots=True)
class _Batch:
    """One account's rows: keys[i] names items[i], a mapped transaction or a row keyed but not
    mapped yet (its cells joined by _SEP, one object to keep and free instead of a list of
    strings; the list itself when a cell holds _SEP), read from line lines[i]."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    items: list[ProviderTransaction | str | list[str]] = field(default_factory=list)
    lines: array[int] = field(default_factory=lambda: array("q"))
    first: dict[str, str] = field(default_factory=dict)  # file id → the fingerprint of its first row


@dataclass(slots=True)
class Outcome:
    statements: list[ParsedStatement]
    warnings: list[str]
    rows: int = 0
    usable: int = 0
    skipped: int = 0
    first: list[tuple[int, Mapped]] = field(default_factory=list)  # for previews


def run(
    table: Table,
    source: Source,
    institution: str,
    *,
    keep_first: int = 0,
    strict: bool = True,
    defer: bool = False,
) -> Outcome:
    """Map every row; ``strict``: refuse a file with no usable row. ``defer``: once a row
    has mapped, key rows with an id from their cells and map them when built."""
    warnings: list[str] = list(source.notes)
    problems = _Problems(warnings)
    warn = problems.warn
    accounts: dict[str, AccountInfo] = {}
    batches: dict[str, _Batch] = {}
    ids = _Ids()
    names = table.header
    width = len(names)
    outcome = Outcome([], warnings)
    mapper = source.mapper
    key_of = mapper.key if defer else None
    blake2b, sep, prefix = hashlib.blake2b, _SEP, f"{FINGERPRINT_VERSION}|"
    first = outcome.first
    total = usable = 0
    proven = False  # a row has mapped: the file is usable, later rows may be keyed lazily
    for line, cells in table.numbered():  # the per-row hot path: locals only
        total += 1
        if len(cells) < width:
            cells += [""] * (width - len(cells))
        joined = sep.join(cells)
        if "\n" in joined:  # a cell over several lines (one C-level scan of the row)
            table.check_quotes(line, cells)
        fingerprint = prefix + blake2b(joined.encode(), digest_size=16).hexdigest()
        keyed = key_of(cells) if proven and key_of is not None else None
        if keyed is None:
            try:
                mapped = mapper(cells)
            except SkipRow as exc:
                problems.skip(str(exc))
                continue
            except RowError as exc:
                warn(f"line {line}: {exc}; the row was not imported")
                continue
            info, file_id = mapped.account, mapped.file_id
        else:
            mapped, (info, file_id) = None, keyed
        key = info.key
        batch = batches.get(key)
        if batch is None:
            accounts[key], batch = info, batches.setdefault(key, _Batch())
        if file_id:
            if batch.first.setdefault(file_id, fingerprint) is fingerprint:
                pid: str | None = file_id
            else:
                pid = ids.of_file_id(batch, key, file_id, fingerprint, warn)
            if pid is None:
                continue
        else:
            assert mapped is not None  # rows keyed lazily have a file id
            pid = ids.of_content(key, mapped.transaction)
        batch.keys.append((pid, fingerprint))
        batch.lines.append(line)
        usable += 1
        if mapped is None:
            batch.items.append(joined if joined.count(sep) == len(cells) - 1 else cells)
            continue
        proven = True
        t = mapped.transaction
        t.provider_transaction_id = pid
        t.fingerprint = fingerprint
        t.raw = dict(zip(names, cells, strict=False))
        batch.items.append(t)
        if len(first) < keep_first:
            first.append((line, mapped))
    outcome.rows, outcome.usable = total, usable
    problems.finish()
    outcome.skipped = sum(problems.skipped.values())
    if strict and not outcome.usable:
        detail = f"; first problem: {warnings[0]}" if warnings else ""
        raise CsvNoRows(f"no row of the file could be imported ({outcome.rows} data rows){detail}")
    for key, info in accounts.items():
        account = ProviderAccount(
            provider_account_id=key, name=info.name, type=info.type, currency=info.currency,
            institution=info.institution, raw={"format": source.format},
        )  # fmt: skip
        deferred = _deferred(batches[key], mapper, names, problems)
        outcome.statements.append(
            ParsedStatement(account=account, deferred=[deferred], institution=institution)
        )
    return outcome


def _deferred(
    batch: _Batch, mapper: RowMapper, names: list[str], problems: _Problems
) -> DeferredTransactions:
    """A batch handed over by key: the writer compares (id, fingerprint) with what the
    account holds and builds only new and changed rows, streaming them into the database;
    lazy rows are mapped then, and an unreadable one is reported and left out."""
    items, keys, lines = batch.items, batch.keys, batch.lines

    def build(positions: list[int]) -> Iterator[ProviderTransaction]:
        for at in positions:
            item = items[at]
            if isinstance(item, ProviderTransaction):
                yield item
                continue
            cells = item.split(_SEP) if isinstance(item, str) else item
            try:
                t = mapper(cells).transaction
            except SkipRow as exc:
                problems.skip(str(exc))
                continue
            except RowError as exc:
                problems.warn(f"line {lines[at]}: {exc}; the row was not imported")
                continue
            t.provider_transaction_id, t.fingerprint = keys[at]
            t.raw = dict(zip(names, cells, strict=False))
            yield t
        problems.finish()

    return DeferredTransactions(keys=keys, build=build)


def rows_of(statement: ParsedStatement) -> list[ProviderTransaction]:
    """Every transaction of a statement this reader made (all of them built)."""
    out = list(statement.transactions)
    for group in statement.deferred:
        out += group.build(list(range(len(group.keys))))
    return out


def _account_for(prefix: str, name: str) -> Callable[[Sequence[str], str], AccountInfo]:
    cache: dict[str, AccountInfo] = {}

    def account(_cells: Sequence[str], currency: str) -> AccountInfo:
        known = cache.get(currency)
        if known is None:
            known = cache[currency] = AccountInfo(
                key=f"{prefix}|{currency}",
                name=f"{name} ({currency})",
                type=AccountType.OTHER,
                currency=currency,
            )
        return known

    return account


def _with_direction(
    table: Table, mapping: ColumnMapping, sample: list[list[str]]
) -> tuple[ColumnMapping, str]:
    """A mapping with one amount column and no ``direction`` gets the file's debit/credit
    marker column when it has one (a note says so): an export writing ``12.50`` and ``DR``
    means money out."""
    if (
        mapping.amount is None
        or mapping.direction is not None
        or mapping.sign is not SignConvention.POSITIVE_IN
    ):
        return mapping, ""
    cols = Columns(table.header)
    used = [cols.find(name) for name in mapping.columns()]
    at = detect_direction(table.header, sample, skip=[i for i in used if i is not None])
    if at is None:
        return mapping, ""
    name = table.header[at]
    note = (
        f"column {name!r} says debit or credit: amounts are signed by it (debits are money out); "
        "a row without such a marker is not imported"
    )
    return replace(mapping, direction=name), note


def _mapping_source(table: Table, mapping: ColumnMapping, fmt: str, key: str, name: str) -> Source:
    sample = table.take_sample()
    mapping, note = _with_direction(table, mapping, sample)
    try:
        mapper = MappingReader(mapping, table.header, sample, _account_for(key, name))
    except ValueError as exc:
        raise MalformedFile(f"the mapping does not fit the file: {exc}") from None
    return Source(
        fmt, mapper, mapping, [note, *mapper.settings.notes] if note else list(mapper.settings.notes)
    )


def choose(
    table: Table, mapping: ColumnMapping | None = None, *, mapping_key: str = "", name: str = ""
) -> Source:
    """A saved mapping when given; else the preset the header identifies; else a guessed mapping."""
    source = _choose(table, mapping, mapping_key=mapping_key, name=name)
    if table.note:
        source.notes.insert(0, table.note)
    return source


def _choose(
    table: Table, mapping: ColumnMapping | None = None, *, mapping_key: str = "", name: str = ""
) -> Source:
    if mapping is not None:
        return _mapping_source(table, mapping, "csv:mapping", f"mapping|{mapping_key}", name or "CSV import")
    preset = identify(table.header)
    if preset is not None:
        sample = table.take_sample()
        try:
            mapper = preset.build(table.header, sample)
        except ValueError as exc:
            raise MalformedFile(f"{preset.display_name}: {exc}") from None
        return Source(f"csv:{preset.name}", mapper, None, list(mapper.settings.notes))
    guessed = guess_mapping(table.header)
    if guessed is None:
        raise UnsupportedFormat(
            "the CSV file matches no preset and has no recognisable date and amount columns; "
            "describe it with POST /api/v1/import-mappings (see POST /api/v1/imports/preview)"
        )
    source = _mapping_source(
        table, guessed, "csv", f"generic|{header_signature(table.header)[:12]}", "CSV import"
    )
    if guessed.default_currency is not None:
        source.notes.append(
            f"the file has no currency column: amounts are read as {guessed.default_currency}; "
            "save a mapping with default_currency to change it"
        )
    return source


class CsvFormat:
    """The ``csv`` file provider's format: presets first, then saved or guessed mappings."""

    name = "csv"
    description = (
        "CSV exports: presets for known banks and brokers (reported as csv:<preset>), "
        "saved column mappings, or columns guessed from common names"
    )
    extensions: tuple[str, ...] = (".csv", ".tsv", ".txt")

    @property
    def presets(self) -> list[Preset]:
        return all_presets()

    def sniff(self, head: bytes, filename: str | None) -> bool:
        # Markup (OFX 2, XML, HTML) is not ours; SGML OFX has no delimited rows, and the import
        # service asks the OFX format first anyway (registry order).
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            return False
        text, _ = decode(_whole_characters(head))
        return sniff_dialect(text) is not None

    def header_signature(self, data: bytes) -> str:
        return header_signature(Table.open(_whole_characters(data[:65536])).header)

    @gc_paused
    def read(
        self, data: bytes, mapping: ColumnMapping | None = None, mapping_key: str = "", name: str = ""
    ) -> ParsedFile:
        table = Table.open(data)
        source = choose(table, mapping, mapping_key=mapping_key, name=name)
        outcome = run(table, source, "csv", defer=True)
        return ParsedFile(format=source.format, statements=outcome.statements, warnings=outcome.warnings)

    def preview(
        self, data: bytes, mapping: ColumnMapping | None = None, rows_shown: int = 20
    ) -> dict[str, Any]:
        """What an import would read, without writing: settings, the first rows, problems."""
        table = Table.open(data)
        source = choose(table, mapping)
        outcome = run(table, source, "csv", keep_first=rows_shown, strict=False)
        settings = {**table.describe(), **source.mapper.settings.describe()}
        return {
            "format": source.format,
            "header": table.header,
            "header_signature": header_signature(table.header),
            "settings": settings,
            "mapping": _mapping_dict(source.mapping),
            "rows_total": outcome.rows,
            "rows_usable": outcome.usable,
            "rows_skipped": outcome.skipped,
            "rows": [_row_dict(line, mapped) for line, mapped in outcome.first],
            "problems": outcome.warnings,
        }


def _whole_characters(head: bytes) -> bytes:
    """A sniffed head may end inside a multi-byte character: cut back to a boundary."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[:200].count(0) * 3 >= len(head[:200]):
        return head[: len(head) // 2 * 2]
    cut = len(head)
    while cut > 0 and len(head) - cut < 4 and head[cut - 1] & 0xC0 == 0x80:
        cut -= 1
    if cut > 0 and head[cut - 1] >= 0xC0:
        cut -= 1
    return head[:cut] if cut < len(head) else head


def _mapping_dict(mapping: ColumnMapping | None) -> dict[str, Any] | None:
    if mapping is None:
        return None
    out: dict[str, Any] = {}
    for name in mapping.__dataclass_fields__:
        value = getattr(mapping, name)
        if value not in (None, ()):
            out[name] = list(value) if isinstance(value, tuple) else str(value)
    return out


def _row_dict(line: int, mapped: Mapped) -> dict[str, Any]:
    t = mapped.transaction
    return {
        "line": line,
        "account": mapped.account.name,
        "date": t.transaction_date.isoformat(),
        "amount": str(t.amount),
        "currency": t.currency,
        "type": t.type.value,
        "subtype": t.subtype.value,
        "status": t.status.value,
        "description": t.description,
        "symbol": t.symbol,
        "quantity": None if t.quantity is None else str(t.quantity),
        "fees": None if t.fees is None else str(t.fees),
        "id": t.provider_transaction_id,
    }
