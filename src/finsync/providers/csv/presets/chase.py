"""Chase credit cards: "Download account activity" → CSV.

Columns based on public descriptions of the export (open-source importers' format notes):
``Transaction Date, Post Date, Description, Category, Type, Amount, Memo``. Dates are
MM/DD/YYYY; ``Amount`` is negative for purchases and positive for payments and returns;
USD; no transaction id (rows are deduplicated by content + occurrence).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from finsync.domain.csvmapping import ColumnMapping
from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.providers.csv.detect import DateFormat
from finsync.providers.csv.mapping import AccountInfo, Columns, MappingReader, cell
from finsync.providers.csv.presets import Preset

T, S = TransactionType, TransactionSubtype
MAPPING = ColumnMapping(
    date="Transaction Date",
    settlement_date="Post Date",
    amount="Amount",
    description=("Description", "Memo"),
    default_currency="USD",
)
_KINDS = {
    "sale": (T.OTHER, S.PURCHASE),
    "return": (T.OTHER, S.REFUND),
    "payment": (T.TRANSFER, S.DEPOSIT),  # a payment to the card: money into the card account
    "fee": (T.FEE, S.FEE),
    "interest": (T.FEE, S.INTEREST),
}


def build(header: Sequence[str], sample: Sequence[Sequence[str]]) -> MappingReader:
    kind_at = Columns(header).find("Type")

    def kind(cells: Sequence[str], amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
        return _KINDS.get(cell(cells, kind_at).casefold(), (T.OTHER, S.OTHER))

    def account(_cells: Sequence[str], currency: str) -> AccountInfo:
        return AccountInfo(
            key="chase-card", name="Chase credit card", type=AccountType.CREDIT_CARD,
            currency=currency, institution="Chase",
        )  # fmt: skip

    return MappingReader(MAPPING, header, sample, account, kind=kind, prefer_date=DateFormat("mdy", "/"))


PRESET = Preset(
    name="chase_card",
    display_name="Chase credit card activity",
    description=(
        "Chase card activity CSV (Transaction Date, Post Date, Description, Category, Type, Amount, Memo)"
    ),
    columns=frozenset({"transaction date", "post date", "description", "category", "type", "amount"}),
    build=build,
)
