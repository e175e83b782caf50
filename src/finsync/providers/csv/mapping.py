"""Rows → ``ProviderTransaction``: the column-role mapper shared by user mappings and bank presets.

A mapper is built once per file (header positions, date and number parsers resolved
up front) and then called per row; a row it cannot read raises :class:`RowError` with
what is wrong, and the reader adds the line number. Sign convention of the records:
``amount`` > 0 is money into the account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from finsync.domain.csvmapping import ColumnMapping, SignConvention, direction_of, normalise_header
from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.money import currency_code
from finsync.domain.records import ProviderTransaction
from finsync.providers.csv.detect import DateFormat, NumberFormat, detect_date_format, detect_number_format

T, S = TransactionType, TransactionSubtype
_SETTLED = TransactionStatus.SETTLED


class RowError(ValueError):
    """A row that cannot be read; the message names the column and the value."""


class SkipRow(Exception):
    """A row that is deliberately not imported (a declined card payment); the reason is counted."""


@dataclass(slots=True, kw_only=True)
class AccountInfo:
    """An account a file's rows go to, keyed (within the format) by ``key``."""

    key: str
    name: str
    type: AccountType
    currency: str
    institution: str | None = None


@dataclass(slots=True)
class Mapped:
    """One row's transaction, the account it belongs to, and its dedup key parts."""

    account: AccountInfo
    transaction: ProviderTransaction
    file_id: str | None = None  # the file's own id for the row, when it has one


class Columns:
    """Header positions by name, case and spacing ignored."""

    def __init__(self, header: Sequence[str]) -> None:
        self.names = list(header)
        self._at: dict[str, int] = {}
        for i, name in enumerate(normalise_header(header)):
            self._at.setdefault(name, i)

    def find(self, name: str | None) -> int | None:
        if name is None:
            return None
        return self._at.get(" ".join(name.split()).casefold())

    def need(self, name: str) -> int:
        at = self.find(name)
        if at is None:
            raise ValueError(f"the file has no column {name!r}; its columns are {', '.join(self.names)}")
        return at

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None


def cell(cells: Sequence[str], at: int | None) -> str:
    if at is None or at >= len(cells):
        return ""
    return cells[at].strip()


@dataclass(slots=True)
class Settings:
    """What was detected or pinned, as ``POST /imports/preview`` shows it."""

    date_format: DateFormat
    number_format: NumberFormat
    ambiguous_dates: bool = False
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, str]:
        return {"date_format": self.date_format.label, "number_format": self.number_format.label}


def resolve_settings(
    sample: Sequence[Sequence[str]],
    date_at: int,
    amount_at: Sequence[int],
    *,
    date_format: str | None = None,
    decimal: str | None = None,
    prefer_date: DateFormat | None = None,
) -> Settings:
    """Date and number format: pinned when given, otherwise detected from the sample rows."""
    if date_format is not None:
        fmt, ambiguous = DateFormat.from_label(date_format), False
    else:
        fmt, ambiguous = detect_date_format([cell(r, date_at) for r in sample], prefer_date)
    numbers = detect_number_format(
        (cell(r, at) for r in sample for at in amount_at), NumberFormat(decimal) if decimal else None
    )
    settings = Settings(fmt, numbers, ambiguous)
    if ambiguous:
        settings.notes.append(
            f"every date in the sample reads both day-first and month-first; read as {fmt.label} "
            "(save a mapping with date_format to change it)"
        )
    return settings


class Currencies:
    """ISO-4217 checks, memoised: a file repeats a handful of codes."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}  # cell → code: hot paths look here first, in C

    def __call__(self, value: str, what: str = "currency") -> str:
        known = self.known.get(value)
        if known is not None:
            return known
        try:
            code = currency_code(value)
        except ValueError:
            raise RowError(f"{what} {value!r} is not a currency code") from None
        if len(self.known) < 512:
            self.known[value] = code
        return code


def number(parse: Callable[[str], Decimal | None], value: str, what: str) -> Decimal | None:
    try:
        return parse(value)
    except ValueError:
        raise RowError(f"{what} {value.strip()!r} is not a number") from None


def default_kind(amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    """A bank or card row says nothing about its kind: money in is a deposit, out a payment."""
    return (T.TRANSFER, S.DEPOSIT) if amount > 0 else (T.OTHER, S.PAYMENT)


Kind = Callable[[Sequence[str], Decimal], tuple[TransactionType, TransactionSubtype]]
Status = Callable[[Sequence[str]], TransactionStatus]


class MappingReader:
    """A :class:`ColumnMapping` applied to one file's header."""

    def __init__(
        self,
        mapping: ColumnMapping,
        header: Sequence[str],
        sample: Sequence[Sequence[str]],
        account: Callable[[Sequence[str], str], AccountInfo],
        *,
        kind: Kind | None = None,
        status: Status | None = None,
        prefer_date: DateFormat | None = None,
    ) -> None:
        problems = mapping.problems()
        if problems:
            raise ValueError("; ".join(problems))
        cols = Columns(header)
        self._date = cols.need(mapping.date)
        self._amount = cols.need(mapping.amount) if mapping.amount else None
        self._debit = cols.need(mapping.debit) if mapping.debit else None
        self._credit = cols.need(mapping.credit) if mapping.credit else None
        self._direction = cols.need(mapping.direction) if mapping.direction else None
        self._direction_name = cols.names[self._direction] if self._direction is not None else ""
        self._descriptions = [cols.need(name) for name in mapping.description]
        self._id = cols.need(mapping.id) if mapping.id else None
        self._currency = cols.need(mapping.currency) if mapping.currency else None
        self._symbol = cols.need(mapping.symbol) if mapping.symbol else None
        self._quantity = cols.need(mapping.quantity) if mapping.quantity else None
        self._price = cols.need(mapping.unit_price) if mapping.unit_price else None
        self._fees = cols.need(mapping.fees) if mapping.fees else None
        self._settled = cols.need(mapping.settlement_date) if mapping.settlement_date else None
        amounts = [at for at in (self._amount, self._debit, self._credit) if at is not None]
        self.settings = resolve_settings(
            sample,
            self._date,
            amounts,
            date_format=mapping.date_format,
            decimal=mapping.decimal,
            prefer_date=prefer_date,
        )
        self._parse_date = self.settings.date_format.parser()
        self._parse_number = self.settings.number_format.parser()
        self._inverted = mapping.sign is SignConvention.POSITIVE_OUT
        self._default_currency = currency_code(mapping.default_currency) if mapping.default_currency else None
        self._currencies = Currencies()
        self._known = self._currencies.known
        self._account = account
        self._kind = kind
        self._status = status
        self._names = cols.names

    def _day(self, value: str, what: str) -> date:
        try:
            return self._parse_date(value)
        except ValueError as exc:
            raise RowError(f"{what}: {exc}") from None

    def _amount_of(self, cells: Sequence[str]) -> Decimal:
        """Debit and credit columns: money in minus money out."""
        parse = self._parse_number
        debit = number(parse, cell(cells, self._debit), "debit")
        credit = number(parse, cell(cells, self._credit), "credit")
        if debit is None and credit is None:
            raise RowError("both debit and credit are empty")
        return abs(credit or Decimal(0)) - abs(debit or Decimal(0))

    def _signed(self, amount: Decimal, marker: str) -> Decimal:
        """The amount signed by its debit/credit marker: a debit is money out, whether the file
        writes it ``12.50`` or ``-12.50``; a credit written negative contradicts its marker."""
        way = direction_of(marker)
        if way is None:
            what = repr(marker.strip()) if marker.strip() else "empty"
            raise RowError(f"{self._direction_name} is {what}, not a debit or credit marker (DR/CR, D/C)")
        if way < 0:
            return -abs(amount)
        if amount < 0:
            raise RowError(f"amount {amount} is negative but {self._direction_name} says credit")
        return amount

    def _optional(self, cells: Sequence[str], at: int | None, what: str) -> Decimal | None:
        return None if at is None else number(self._parse_number, cells[at], what)

    def _currency_of(self, cells: Sequence[str]) -> str:
        at = self._currency
        raw_currency = cells[at].strip() if at is not None else ""
        if raw_currency:
            return self._known.get(raw_currency) or self._currencies(raw_currency)
        if self._default_currency is not None:
            return self._default_currency
        raise RowError("the currency is empty")

    def key(self, cells: Sequence[str]) -> tuple[AccountInfo, str] | None:
        """The row's account and the file's id for it, read from the raw cells without mapping
        the rest (a re-import compares these first); None when the row has no id or its
        currency cannot be read (mapping it says why)."""
        at = self._id
        if at is None:
            return None
        file_id = cells[at].strip().strip("'\"")
        if not file_id:
            return None
        try:
            currency = self._currency_of(cells)
        except RowError:
            return None
        return self._account(cells, currency), file_id

    def __call__(self, cells: Sequence[str]) -> Mapped:
        """One row (the reader pads short rows to the header's width). The per-row hot path:
        optional columns cost nothing when the mapping has none."""
        try:
            when = self._parse_date(cells[self._date])
        except ValueError as exc:
            raise RowError(f"date: {exc}") from None
        if self._amount is not None:
            amount = number(self._parse_number, cells[self._amount], "amount")
            if amount is None:
                raise RowError("the amount is empty")
            if self._inverted:
                amount = -amount
            if self._direction is not None:
                amount = self._signed(amount, cells[self._direction])
        else:
            amount = self._amount_of(cells)
        currency = self._currency_of(cells)
        descriptions = self._descriptions
        if len(descriptions) == 1:
            description = cells[descriptions[0]].strip() or None
        else:
            parts = [text for text in (cells[i].strip() for i in descriptions) if text]
            description = " / ".join(dict.fromkeys(parts)) or None
        quantity = self._optional(cells, self._quantity, "quantity")
        symbol = (cells[self._symbol].strip() or None) if self._symbol is not None else None
        kind, subtype = self._kind(cells, amount) if self._kind is not None else default_kind(amount)
        if symbol and quantity and kind is T.OTHER:  # a mapped trade: money out buys
            kind, subtype = T.TRADE, S.BUY if amount < 0 else S.SELL
        fees = self._optional(cells, self._fees, "fees")
        settled_text = cells[self._settled].strip() if self._settled is not None else ""
        txn = ProviderTransaction(
            provider_transaction_id="",  # set by the reader: the file's id or a content key
            type=kind,
            subtype=subtype,
            amount=amount,
            currency=currency,
            transaction_date=when,
            settlement_date=self._day(settled_text, "settlement date") if settled_text else None,
            status=self._status(cells) if self._status is not None else _SETTLED,
            symbol=symbol,
            quantity=abs(quantity) if quantity is not None else None,
            unit_price=self._optional(cells, self._price, "unit price"),
            fees=abs(fees) if fees is not None else None,
            description=description,
        )
        # Excel-safe exports quote long ids as text ('3202406…'): the quotes are not the id.
        file_id = cells[self._id].strip().strip("'\"") or None if self._id is not None else None
        return Mapped(self._account(cells, currency), txn, file_id)


def guess_mapping(header: Sequence[str]) -> ColumnMapping | None:
    """A mapping for a file no preset knows, from common column names; None if there is no
    date or no amount column. What it chose is shown by ``POST /imports/preview``."""
    cols = Columns(header)

    def first(*names: str) -> str | None:
        for name in names:
            at = cols.find(name)
            if at is not None:
                return cols.names[at].strip()
        return None

    when = first("date", "transaction date", "booking date", "posting date", "posted date", "value date")
    amount = first("amount", "value", "transaction amount")
    debit = first("debit", "money out", "paid out", "withdrawal", "withdrawals", "debit amount")
    credit = first("credit", "money in", "paid in", "deposit", "deposits", "credit amount")
    if when is None or (amount is None and debit is None and credit is None):
        return None
    descriptions = tuple(
        name
        for name in (
            first("description", "details", "narrative", "memo", "reference"),
            first("payee", "name", "merchant", "counterparty"),
        )
        if name is not None
    )
    return ColumnMapping(
        date=when,
        amount=amount,
        debit=None if amount else debit,
        credit=None if amount else credit,
        description=descriptions,
        id=first("transaction id", "id", "reference number"),
        currency=first("currency", "ccy"),
        default_currency=None if first("currency", "ccy") else "USD",
    )
