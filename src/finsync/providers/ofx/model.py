"""What the OFX reader returns: a faithful, typed view of the file, before any mapping.

Values stay in OFX terms (``trntype="POS"``, ``kind="BUYSTOCK"``); turning them into
finsync's vocabulary is :mod:`finsync.providers.ofx.mappers`' job, so the reader can be
tested against the files and the mapping against the model, separately.
Every amount is a ``Decimal``; every datetime is timezone-aware (no zone in the file = UTC).
``fields`` keeps the element's leaves as strings for audit. A bank transaction's are tidy
(values stripped, no end tags, no empty values); elsewhere values may carry surrounding
whitespace, aggregates map to "" and end tags may appear as ``"/TAG"`` keys
(:func:`clean_fields` gives the tidy version).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from finsync.domain.errors import ImportRejected, MalformedFile
from finsync.providers.ofx.nodes import PieceSource

StatementKind = Literal["bank", "credit_card", "investment"]


class UnreadTransactions(Protocol):
    """STMTTRNs a deferred read left unconverted (``statements.UnreadPieces``): named by FITID
    and digest of their source text without converting, converted on demand. A Protocol, so
    the model needs no reader (no import cycle)."""

    @property
    def pieces(self) -> PieceSource:
        """Each STMTTRN's source text (or, for one the tree builder read, its leaves written
        as a piece), by position."""
        ...

    def __len__(self) -> int: ...
    def digest(self, i: int) -> str: ...
    def convert(self, i: int, digest: str | None = None) -> OfxTransaction | None: ...
    def finish(self) -> None:
        """Count the warnings conversions added since (\"... and N more warnings\")."""
        ...


class UnreadEntries(Protocol):
    """Fast-path investment entries a deferred read left unconverted
    (``investments.UnreadItems``): each one's leaves and source-text digest are read from the
    text on demand, and it is converted only when it is to be written."""

    def __len__(self) -> int: ...
    def name(self, i: int) -> tuple[str | None, str | None, str | None, str]:
        """FITID, security id type and id as the entry's fields read them, and a digest of
        its element name and exact source text."""
        ...

    def convert(self, i: int, fields: dict[str, str] | None = None) -> OfxInvestmentTransaction | None: ...
    def eager_before(self) -> Sequence[int]:
        """For each of ``investment_transactions`` (read eagerly), how many unread entries
        precede it in the file: the two merge back into file order."""
        ...

    def finish(self) -> None: ...


class OfxInstitutionError(ImportRejected):
    """The file is well formed but carries the institution's refusal instead of data
    (failed sign-on, or every statement request answered with an error status)."""

    title = "The institution returned an error instead of data"

    def __init__(self, detail: str, *, status_code: int, severity: str, message: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.severity = severity
        self.message = message


class OfxNoStatements(MalformedFile):
    """Well formed, but nothing to import: sign-on only, an account list, empty message sets."""

    code = "no-statements"
    title = "No account statement in the file"


class OfxLimitExceeded(ImportRejected):
    """The file would cost more work than its size justifies (see ``reader.check_limits``)."""

    code = "file-too-complex"
    title = "File too complex"


@dataclass(slots=True)
class OfxTransaction:
    """A bank/credit-card ``STMTTRN`` (also the cash leg inside an ``INVBANKTRAN``).

    Not keyword-only, unlike its siblings: the reader builds one per transaction and
    positional construction is measurably cheaper at 100k rows."""

    fitid: str | None
    trntype: str
    posted: datetime
    amount: Decimal
    user_date: datetime | None = None
    name: str | None = None
    memo: str | None = None
    checknum: str | None = None
    refnum: str | None = None
    currency: str | None = None  # CURSYM of a CURRENCY aggregate: TRNAMT is in this currency
    currency_rate: Decimal | None = None
    fields: dict[str, str] = field(default_factory=dict)  # tidy, as clean_fields leaves them
    # Digest of the element's exact source text, when read for an import (defer=True) and the
    # reader had it in one piece: equal digests mean identical elements (cheap re-imports).
    digest: str | None = None


@dataclass(slots=True, kw_only=True)
class OfxInvestmentTransaction:
    """One ``INVTRANLIST`` entry other than ``INVBANKTRAN`` (BUYSTOCK, INCOME, TRANSFER, ...)."""

    kind: str  # the OFX element name, e.g. "BUYMF", "INCOME", "JRNLFUND"
    fitid: str | None
    trade_date: datetime
    settle_date: datetime | None = None
    memo: str | None = None
    unique_id: str | None = None
    unique_id_type: str | None = None
    units: Decimal | None = None
    unit_price: Decimal | None = None
    commission: Decimal | None = None
    fees: Decimal | None = None
    taxes: Decimal | None = None
    total: Decimal | None = None
    income_type: str | None = None  # INCOME/REINVEST: DIV, INTEREST, CGLONG, CGSHORT, MISC
    transfer_action: str | None = None  # TRANSFER: IN or OUT
    old_units: Decimal | None = None  # SPLIT
    new_units: Decimal | None = None  # SPLIT
    currency: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class OfxPosition:
    kind: str  # POSSTOCK, POSMF, POSDEBT, POSOPT, POSOTHER
    unique_id: str
    unique_id_type: str | None
    units: Decimal
    unit_price: Decimal | None = None
    market_value: Decimal | None = None
    priced_at: datetime | None = None
    position_type: str | None = None  # LONG or SHORT
    held_in: str | None = None  # HELDINACCT: CASH, MARGIN, SHORT, OTHER
    currency: str | None = None  # CURSYM of a CURRENCY aggregate: UNITPRICE and MKTVAL are in it
    currency_rate: Decimal | None = None  # its CURRATE: one unit of ``currency`` in CURDEF
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class OfxSecurity:
    kind: str  # STOCKINFO, MFINFO, DEBTINFO, OPTINFO, OTHERINFO
    unique_id: str
    unique_id_type: str | None
    name: str | None = None
    ticker: str | None = None
    unit_price: Decimal | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class OfxStatement:
    """One account's statement (STMTRS, CCSTMTRS or INVSTMTRS)."""

    kind: StatementKind
    account_id: str
    bank_id: str | None = None
    branch_id: str | None = None
    broker_id: str | None = None
    account_type: str | None = None  # ACCTTYPE as written (CHECKING, SAVINGS, ...), if any
    currency: str | None = None  # CURDEF; None when absent or unreadable
    date_start: datetime | None = None
    date_end: datetime | None = None
    as_of: datetime | None = None  # INVSTMTRS/DTASOF
    ledger_balance: Decimal | None = None
    ledger_balance_at: datetime | None = None
    available_balance: Decimal | None = None
    available_balance_at: datetime | None = None
    transactions: list[OfxTransaction] = field(default_factory=list)
    # parse_ofx(..., defer=True) only: more STMTTRNs, in file order after ``transactions``
    unread: UnreadTransactions | None = None
    investment_transactions: list[OfxInvestmentTransaction] = field(default_factory=list)
    # parse_ofx(..., defer=True) only: more INVTRANLIST entries, interleaved with the ones above
    unread_entries: UnreadEntries | None = None
    positions: list[OfxPosition] = field(default_factory=list)
    positions_listed: bool = False  # INVPOSLIST present: ``positions`` is the full list (maybe empty)
    available_cash: Decimal | None = None
    margin_balance: Decimal | None = None
    short_balance: Decimal | None = None
    buying_power: Decimal | None = None
    is_retirement: bool = False  # INV401K / INV401KBAL / INV401KSOURCE seen
    plan_name: str | None = None  # INV401K/EMPLOYERNAME


@dataclass(slots=True, kw_only=True)
class OfxDocument:
    statements: list[OfxStatement] = field(default_factory=list)
    securities: list[OfxSecurity] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    institution_org: str | None = None
    institution_fid: str | None = None
    header: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"


def clean_fields(fields: dict[str, str]) -> dict[str, str]:
    """``fields`` without end-tag keys, aggregates and empty values; values stripped."""
    return {key: stripped for key, value in fields.items() if (stripped := value.strip()) and key[:1] != "/"}
