"""Trading 212: History → Export CSV (Invest and Stocks ISA), every column variant.

Columns based on the documented export and public importers' notes. Always present:
``Action, Time``; usually ``ISIN, Ticker, Name, No. of shares, Price / share,
Currency (Price / share), Exchange rate, Notes, ID``. Amounts come in two generations:

- older files put the account currency in the name: ``Result (GBP)``, ``Total (GBP)``,
  ``Charge amount (GBP)``, ``Transaction fee (GBP)``, ``Finra fee (GBP)``,
  ``Stamp duty reserve tax (GBP)``, ``Withholding tax`` + ``Currency (Withholding tax)``;
- newer files name each amount plainly with a ``Currency (…)`` column beside it:
  ``Result, Currency (Result), Total, Currency (Total), Withholding tax, Currency
  (Withholding tax), Charge amount, Currency (Charge amount), Stamp duty reserve tax,
  Currency (Stamp duty reserve tax), Currency conversion fee, Currency (Currency conversion fee)``…

``Total`` is the account-currency value of the row and becomes the amount, signed by the
action (buys, withdrawals and card debits take money out). Fees are the fee columns in
the same currency as ``Total`` (withholding tax is kept in ``raw``, in its own currency).
``Price / share`` stays in the instrument currency, as the API adapter keeps it.
``ID`` identifies a row when present (orders, deposits); dividends and interest often
have none and are deduplicated by content + occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.domain.errors import MalformedFile
from finsync.domain.records import ProviderTransaction
from finsync.providers.csv.detect import DateFormat
from finsync.providers.csv.mapping import (
    AccountInfo,
    Columns,
    Currencies,
    Mapped,
    RowError,
    cell,
    number,
    resolve_settings,
)
from finsync.providers.csv.presets import Preset

T, S = TransactionType, TransactionSubtype
_FEES = (
    "charge amount", "transaction fee", "finra fee", "stamp duty reserve tax", "stamp duty",
    "currency conversion fee", "french transaction tax", "deposit fee", "ptm levy",
)  # fmt: skip
_NAMED = re.compile(r"^(.*?)\s*\(([A-Za-z]{3})\)$")  # "Total (GBP)"


def _kind(action: str) -> tuple[TransactionType, TransactionSubtype, int]:
    """(type, subtype, sign): -1 money out, 1 money in, 0 as the file says."""
    if action.endswith(" buy"):
        return T.TRADE, S.BUY, -1
    if action.endswith(" sell"):
        return T.TRADE, S.SELL, 1
    if action.startswith("dividend"):
        return T.INCOME, S.DIVIDEND, 1
    if action in ("interest on cash", "lending interest"):
        return T.INCOME, S.INTEREST, 1
    if action == "deposit":
        return T.TRANSFER, S.DEPOSIT, 1
    if action == "withdrawal":
        return T.TRANSFER, S.WITHDRAWAL, -1
    if action == "card debit":
        return T.OTHER, S.PURCHASE, -1
    if action in ("card credit", "spending cashback"):
        return (T.OTHER, S.REFUND, 1) if action == "card credit" else (T.INCOME, S.OTHER, 1)
    if action.startswith("stock split"):
        return T.OTHER, S.SPLIT, 0
    return T.OTHER, S.OTHER, 0  # currency conversion, result adjustment, transfers…


class _Amount:
    """One amount column and where its currency comes from (a suffix or a column beside it)."""

    def __init__(self, at: int, currency_at: int | None, fixed: str | None) -> None:
        self.at, self.currency_at, self.fixed = at, currency_at, fixed

    def currency(self, cells: Sequence[str]) -> str:
        return cell(cells, self.currency_at) or self.fixed or ""


def _amount_columns(header: Sequence[str]) -> dict[str, _Amount]:
    cols = Columns(header)
    out: dict[str, _Amount] = {}
    for at, name in enumerate(header):
        plain = " ".join(name.split()).casefold()
        if plain.startswith("currency ("):
            continue
        fixed = None
        match = _NAMED.match(plain)
        if match is not None and match[1] not in ("currency",):
            plain, fixed = match[1], match[2].upper()
        out.setdefault(plain, _Amount(at, cols.find(f"Currency ({name.strip()})"), fixed))
    return out


class Trading212Reader:
    def __init__(self, header: Sequence[str], sample: Sequence[Sequence[str]]) -> None:
        cols = Columns(header)
        self._header = [h.strip() for h in header]
        self._action, self._time = cols.need("Action"), cols.need("Time")
        self._ticker, self._isin, self._name = cols.find("Ticker"), cols.find("ISIN"), cols.find("Name")
        self._shares, self._price = cols.find("No. of shares"), cols.find("Price / share")
        self._notes, self._id = cols.find("Notes"), cols.find("ID")
        amounts = _amount_columns(header)
        total = amounts.get("total")
        if total is None:
            raise MalformedFile("the Trading 212 export has no Total column")
        self._total = total
        self._fees = [amounts[name] for name in _FEES if name in amounts]
        self._tax = amounts.get("withholding tax")
        numeric = [total.at, *(f.at for f in self._fees), *(a for a in (self._shares, self._price) if a)]
        self.settings = resolve_settings(sample, self._time, numeric, prefer_date=DateFormat("ymd", "-"))
        self._date = self.settings.date_format.parser()
        self._number = self.settings.number_format.parser()
        self._currencies = Currencies()
        self._accounts: dict[str, AccountInfo] = {}

    def _account(self, currency: str) -> AccountInfo:
        known = self._accounts.get(currency)
        if known is None:
            known = self._accounts[currency] = AccountInfo(
                key=f"trading212|{currency}", name=f"Trading 212 ({currency})", type=AccountType.BROKERAGE,
                currency=currency, institution="Trading 212",
            )  # fmt: skip
        return known

    def key(self, cells: Sequence[str]) -> tuple[AccountInfo, str] | None:
        """Rows with an ``ID`` are keyed by it and the currency of Total (see RowMapper)."""
        file_id = cell(cells, self._id)
        raw_currency = self._total.currency(cells)
        if not file_id or not raw_currency:
            return None
        try:
            return self._account(self._currencies(raw_currency, "Currency (Total)")), file_id
        except RowError:
            return None

    def __call__(self, cells: Sequence[str]) -> Mapped:
        action = cell(cells, self._action)
        if not action:
            raise RowError("the Action is empty")
        kind, subtype, sign = _kind(action.casefold())
        try:
            when = self._date(cell(cells, self._time))
        except ValueError as exc:
            raise RowError(f"Time: {exc}") from None
        total = number(self._number, cell(cells, self._total.at), "Total")
        if total is None:
            raise RowError("the Total is empty")
        amount = sign * abs(total) if sign else total
        raw_currency = self._total.currency(cells)
        if not raw_currency:
            raise RowError("the currency of Total is not stated")
        currency = self._currencies(raw_currency, "Currency (Total)")
        fees = Decimal(0)
        counted = False
        for fee in self._fees:
            value = number(self._number, cell(cells, fee.at), self._header[fee.at])
            fee_currency = fee.currency(cells)
            if value and (not fee_currency or fee_currency.upper() == currency):
                fees += abs(value)
                counted = True
        shares = number(self._number, cell(cells, self._shares), "No. of shares")
        ticker = cell(cells, self._ticker) or None
        name, notes = cell(cells, self._name), cell(cells, self._notes)
        described = " ".join(p for p in (action, ticker or "", f"({name})" if name else "") if p)
        txn = ProviderTransaction(
            provider_transaction_id="",
            type=kind,
            subtype=subtype,
            amount=amount,
            currency=currency,
            transaction_date=when,
            symbol=ticker,
            quantity=abs(shares) if shares is not None else None,
            unit_price=number(self._number, cell(cells, self._price), "Price / share"),
            fees=fees if counted else None,
            description=f"{described} / {notes}" if notes and notes != action else described,
        )
        return Mapped(self._account(currency), txn, cell(cells, self._id) or None)


PRESET = Preset(
    name="trading212",
    display_name="Trading 212 history export",
    description=(
        "Trading 212's history CSV (Action, Time, ISIN, Ticker, …, Total, …), every column generation"
    ),
    columns=frozenset({"action", "time"}),
    any_of=("total",),
    build=Trading212Reader,
)
