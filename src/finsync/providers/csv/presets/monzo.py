"""Monzo: the CSV from the app's "Export transactions" / web data export.

Columns based on public descriptions of the export (Monzo community posts and open-source
importers): ``Transaction ID, Date, Time, Type, Name, Emoji, Category, Amount, Currency,
Local amount, Local currency, Notes and #tags, Address, Receipt, Description, Category split``
and, in newer files, ``Money Out, Money In``. Dates are DD/MM/YYYY; ``Amount`` is signed
(money in positive) in the account currency; ``Transaction ID`` (``tx_…``) is unique.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from finsync.domain.csvmapping import ColumnMapping
from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.providers.csv.detect import DateFormat
from finsync.providers.csv.mapping import AccountInfo, Columns, MappingReader, cell, default_kind
from finsync.providers.csv.presets import Preset

T, S = TransactionType, TransactionSubtype
MAPPING = ColumnMapping(
    date="Date",
    amount="Amount",
    currency="Currency",
    id="Transaction ID",
    description=("Name", "Notes and #tags"),
)


def build(header: Sequence[str], sample: Sequence[Sequence[str]]) -> MappingReader:
    kind_at = Columns(header).find("Type")

    def kind(cells: Sequence[str], amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
        what = cell(cells, kind_at).casefold()
        if what == "card payment":
            return (T.OTHER, S.REFUND) if amount > 0 else (T.OTHER, S.PURCHASE)
        if what in ("pot transfer", "faster payment", "monzo-to-monzo", "bacs (direct credit)"):
            return T.TRANSFER, S.TRANSFER_IN if amount > 0 else S.TRANSFER_OUT
        return default_kind(amount)

    def account(_cells: Sequence[str], currency: str) -> AccountInfo:
        return AccountInfo(
            key=f"monzo|{currency}", name=f"Monzo ({currency})", type=AccountType.CHECKING,
            currency=currency, institution="Monzo",
        )  # fmt: skip

    return MappingReader(MAPPING, header, sample, account, kind=kind, prefer_date=DateFormat("dmy", "/"))


PRESET = Preset(
    name="monzo",
    display_name="Monzo transactions export",
    description="Monzo's CSV export (Transaction ID, Date, Time, Type, Name, …, Amount, Currency)",
    columns=frozenset(
        {"transaction id", "date", "time", "type", "name", "amount", "currency", "local amount"}
    ),
    build=build,
)
