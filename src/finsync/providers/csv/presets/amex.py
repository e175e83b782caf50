"""American Express (US) card activity: "Download your transactions" → CSV.

Columns based on public descriptions of the export (open-source importers' format notes):
``Date, Description, Card Member, Account #, Amount`` and, in the detailed download,
``Extended Details, Appears On Your Statement As, Address, City/State, Zip Code, Country,
Reference, Category``. Dates are MM/DD/YYYY; ``Amount`` is **positive for charges** and
negative for payments and credits; USD. ``Reference`` identifies a row when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from finsync.domain.csvmapping import ColumnMapping, SignConvention
from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.providers.csv.detect import DateFormat
from finsync.providers.csv.mapping import AccountInfo, Columns, MappingReader
from finsync.providers.csv.presets import Preset

T, S = TransactionType, TransactionSubtype


def build(header: Sequence[str], sample: Sequence[Sequence[str]]) -> MappingReader:
    has_reference = "Reference" in Columns(header)
    mapping = ColumnMapping(
        date="Date",
        amount="Amount",
        sign=SignConvention.POSITIVE_OUT,
        description=("Description",),
        id="Reference" if has_reference else None,
        default_currency="USD",
    )

    def kind(_cells: Sequence[str], amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
        return (T.TRANSFER, S.DEPOSIT) if amount > 0 else (T.OTHER, S.PURCHASE)

    def account(_cells: Sequence[str], currency: str) -> AccountInfo:
        return AccountInfo(
            key="amex-card", name="American Express card", type=AccountType.CREDIT_CARD,
            currency=currency, institution="American Express",
        )  # fmt: skip

    return MappingReader(mapping, header, sample, account, kind=kind, prefer_date=DateFormat("mdy", "/"))


PRESET = Preset(
    name="amex",
    display_name="American Express card activity",
    description="American Express (US) activity CSV (Date, Description, Card Member, Account #, Amount, …)",
    columns=frozenset({"date", "description", "card member", "amount"}),
    build=build,
)
