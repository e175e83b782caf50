"""Revolut (personal): Statements → Excel/CSV.

Columns based on public descriptions of the export (open-source importers and format notes):
``Type, Product, Started Date, Completed Date, Description, Amount, Fee, Currency, State,
Balance``. Dates are ``YYYY-MM-DD HH:MM:SS``; ``Amount`` is signed and excludes ``Fee``
(charged on top), so money into the account is ``Amount - Fee``. One file may hold several
products (Current, Savings) and currencies: each is its own account. ``State``: PENDING rows
are pending, DECLINED/REVERTED/FAILED rows never moved money and are skipped. No id column:
rows are deduplicated by content (start time, amount, currency, description) + occurrence,
which stays the same when a pending row completes.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from finsync.domain.csvmapping import ColumnMapping
from finsync.domain.enums import AccountType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.providers.csv.detect import DateFormat
from finsync.providers.csv.mapping import (
    AccountInfo,
    Columns,
    Mapped,
    MappingReader,
    SkipRow,
    cell,
    default_kind,
    number,
)
from finsync.providers.csv.presets import Preset

T, S = TransactionType, TransactionSubtype
MAPPING = ColumnMapping(
    date="Started Date",
    settlement_date="Completed Date",
    amount="Amount",
    fees="Fee",
    currency="Currency",
    description=("Description",),
)
_SKIPPED = frozenset({"declined", "reverted", "failed"})


def _kind(what: str, amount: Decimal) -> tuple[TransactionType, TransactionSubtype]:
    incoming = amount > 0
    if what == "card_payment":
        return (T.OTHER, S.REFUND) if incoming else (T.OTHER, S.PURCHASE)
    if what in ("card_refund", "refund"):
        return T.OTHER, S.REFUND
    if what == "topup":
        return T.TRANSFER, S.DEPOSIT
    if what == "atm":
        return T.TRANSFER, S.WITHDRAWAL
    if what in ("transfer", "exchange"):
        return T.TRANSFER, S.TRANSFER_IN if incoming else S.TRANSFER_OUT
    if what == "fee":
        return T.FEE, S.FEE
    if what == "interest":
        return T.INCOME, S.INTEREST
    if what == "cashback":
        return T.INCOME, S.OTHER
    return default_kind(amount)


class RevolutReader(MappingReader):
    def __init__(self, header: Sequence[str], sample: Sequence[Sequence[str]]) -> None:
        cols = Columns(header)
        self._type_at, self._state_at, self._product_at = (
            cols.find("Type"),
            cols.find("State"),
            cols.find("Product"),
        )
        self._fee_at = cols.find("Fee")

        def account(cells: Sequence[str], currency: str) -> AccountInfo:
            product = cell(cells, self._product_at) or "Current"
            return AccountInfo(
                key=f"revolut|{product.casefold()}|{currency}",
                name=f"Revolut {product} ({currency})",
                type=AccountType.SAVINGS
                if product.casefold() in ("savings", "deposit")
                else AccountType.CHECKING,
                currency=currency,
                institution="Revolut",
            )

        def status(cells: Sequence[str]) -> TransactionStatus:
            state = cell(cells, self._state_at).casefold()
            if state in _SKIPPED:
                raise SkipRow(f"{state} Revolut transactions")
            return TransactionStatus.PENDING if state == "pending" else TransactionStatus.SETTLED

        super().__init__(
            MAPPING,
            header,
            sample,
            account,
            kind=lambda cells, amount: _kind(cell(cells, self._type_at).casefold(), amount),
            status=status,
            prefer_date=DateFormat("ymd", "-"),
        )

    def __call__(self, cells: Sequence[str]) -> Mapped:
        mapped = super().__call__(cells)
        fee = number(self._parse_number, cell(cells, self._fee_at), "fee")
        if fee:  # the fee comes on top of the amount
            mapped.transaction.amount -= abs(fee)
        return mapped


PRESET = Preset(
    name="revolut",
    display_name="Revolut account statement",
    description=(
        "Revolut's statement CSV (Type, Product, Started Date, Completed Date, Description, Amount, Fee, …)"
    ),
    columns=frozenset(
        {"type", "product", "started date", "completed date", "description", "amount", "state"}
    ),
    build=RevolutReader,
)
