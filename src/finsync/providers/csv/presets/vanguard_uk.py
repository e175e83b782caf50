"""Vanguard UK (Vanguard Investor: ISA, General Account, SIPP): My Portfolio → Transaction
history → download, the *Cash Transactions* table saved as CSV.

Columns based on public open-source importers' parsers and test files (UK capital-gains
calculators), not on documentation from Vanguard, which publishes none: ``Date, Details,
Amount, Balance``. Dates are DD/MM/YYYY; ``Amount`` is signed (money in positive) and in
GBP; there is no id column (rows are deduplicated by content + occurrence). What a row is
comes from ``Details``: ``Bought 1,550 Foo ETF (FOO)``, ``Sold 1 Bar ETF (BAR)``,
``DIV: FOO.XLON.GB @ GBP 0.4106``, ``Cash Account Interest``, ``Account Fee for the
period …``, ``Regular Deposit``, ``Deposit via …``, ``Payment by …``; ``Reversal of …``
undoes the row it names (its amount has the opposite sign). The download also has an
*Investment Transactions* table under its own title rows: only the cash table is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from finsync.domain.csvmapping import ColumnMapping
from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.providers.csv.detect import DateFormat
from finsync.providers.csv.mapping import AccountInfo, Columns, Mapped, MappingReader, cell, default_kind
from finsync.providers.csv.presets import Preset

T, S = TransactionType, TransactionSubtype
MAPPING = ColumnMapping(date="Date", amount="Amount", description=("Details",), default_currency="GBP")
_TRADE = re.compile(r"^(Bought|Sold) ([\d,]*\.?\d+) (.+?)(?:\s*\(([^()]+)\))?$")
_DIVIDEND = re.compile(r"^DIV: ([^.\s]+)")
_REVERSAL = "Reversal of "


def _details(cells: Sequence[str], at: int | None) -> str:
    text = cell(cells, at)
    return text[len(_REVERSAL) :] if text.startswith(_REVERSAL) else text


def _kind(details: str, amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    trade = _TRADE.match(details)
    if trade:
        return T.TRADE, S.BUY if trade[1] == "Bought" else S.SELL
    lowered = details.casefold()
    if _DIVIDEND.match(details):
        return T.INCOME, S.DIVIDEND
    if lowered == "cash account interest":
        return T.INCOME, S.INTEREST
    if "account fee" in lowered or "dealing fee" in lowered:
        return T.FEE, S.FEE
    if lowered.startswith(("regular deposit", "deposit", "cash transfer")):
        return T.TRANSFER, S.DEPOSIT
    if lowered.startswith("payment by"):
        return T.TRANSFER, S.WITHDRAWAL
    return default_kind(amount)


class VanguardUkReader(MappingReader):
    def __init__(self, header: Sequence[str], sample: Sequence[Sequence[str]]) -> None:
        self._details_at = Columns(header).find("Details")

        def account(_cells: Sequence[str], currency: str) -> AccountInfo:
            return AccountInfo(
                key=f"vanguard_uk|{currency}", name="Vanguard UK", type=AccountType.BROKERAGE,
                currency=currency, institution="Vanguard UK",
            )  # fmt: skip

        super().__init__(
            MAPPING,
            header,
            sample,
            account,
            kind=lambda cells, amount: _kind(_details(cells, self._details_at), amount),
            prefer_date=DateFormat("dmy", "/"),
        )

    def __call__(self, cells: Sequence[str]) -> Mapped:
        """The mapping's row, plus the units and the fund that ``Details`` names."""
        mapped = super().__call__(cells)
        details, t = _details(cells, self._details_at), mapped.transaction
        trade = _TRADE.match(details)
        if trade:
            t.quantity = Decimal(trade[2].replace(",", ""))
            t.symbol = (trade[4] or trade[3]).strip()[:64]
        elif dividend := _DIVIDEND.match(details):
            t.symbol = dividend[1]
        return mapped


PRESET = Preset(
    name="vanguard_uk",
    display_name="Vanguard UK cash transactions",
    description=(
        "Vanguard Investor (UK) transaction history, Cash Transactions table (Date, Details, Amount, Balance)"
    ),
    columns=frozenset({"date", "details", "amount", "balance"}),
    build=VanguardUkReader,
)
