"""Ports of the analytics side: market data store, holding history, labels, transfers, queries."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from finsync.domain.categories import Category, Rule, TransferLink, TransferStatus
from finsync.domain.entities import Account, BalanceSnapshot, Transaction
from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.domain.market import FxFixing, Instrument, PriceBar
from finsync.domain.ports import Page, PageRequest, WrittenPage
from finsync.domain.records import ProviderHolding


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class CashFlowGroup(StrEnum):
    CATEGORY = "category"
    ACCOUNT = "account"
    PAYEE = "payee"


class IncomeGroup(StrEnum):
    SYMBOL = "symbol"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class HeldSecurity:
    """A security some account holds now or held in recorded history (for price refreshes)."""

    isin: str | None
    cusip: str | None
    symbol: str
    asset_type: str
    currency: str
    name: str | None
    first_day: date | None  # earliest day in holding history, if any


@dataclass(slots=True)
class HistoryPoints:
    """Net worth history as the store computes it: per point the unrounded total in the target
    currency; the currencies left out of some point for want of a rate."""

    totals: list[Decimal]
    missing: set[str]
    currencies: set[str]  # of the stored deltas and of the recorded instruments' closes
    revalued: list[UUID]  # accounts with recorded holdings


@dataclass(frozen=True, slots=True)
class PositionSpan:
    """``quantity`` of a position held from ``valid_from`` until ``valid_to`` (exclusive, None = now)."""

    account_id: UUID
    position_key: str
    instrument_key: str
    symbol: str
    currency: str
    quantity: Decimal
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class LabelTarget:
    """What rules read of a transaction, and the user fields they may change."""

    id: UUID
    account_id: UUID
    day: date
    description: str | None
    amount: Decimal
    category_id: UUID | None
    category_set_by: str | None
    tags: list[str] | None
    tags_set_by: str | None


@dataclass(frozen=True, slots=True)
class LabelChange:
    id: UUID
    category_id: UUID | None  # None: leave the category as it is
    tags: list[str] | None  # None: leave the tags as they are


@dataclass(frozen=True, slots=True)
class TransferCandidate:
    id: UUID
    account_id: UUID
    amount: Decimal
    currency: str
    day: date


@dataclass(frozen=True, slots=True)
class Movement:
    """The columns of a transaction that income, performance and reconciliation read."""

    account_id: UUID
    type: TransactionType
    subtype: TransactionSubtype
    amount: Decimal
    currency: str
    transaction_date: date
    symbol: str | None
    quantity: Decimal | None


@dataclass(frozen=True, slots=True)
class SnapshotValue:
    """An account's last snapshot of a (UTC) day."""

    account_id: UUID
    currency: str
    day: date
    balance: Decimal | None
    cash_value: Decimal | None


@dataclass(frozen=True, slots=True)
class PeriodSum:
    """Cash-flow or income sums of one period and group, already converted to the base currency."""

    period: date
    group: str | None
    values: dict[str, Decimal]
    count: int
    unconverted: int = 0  # rows left out: no FX rate for their currency on their day


@dataclass(slots=True)
class DailyRates:
    """Rates to the base currency for each (currency, day) a query may meet, carried forward."""

    base: str
    currencies: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)
    rates: list[Decimal] = field(default_factory=list)


class MarketRepository(Protocol):
    async def save_fixings(self, fixings: Sequence[FxFixing]) -> int: ...
    async def fixings(
        self, until: date, since: date | None = None, currencies: Collection[str] | None = None
    ) -> list[tuple[str, date, Decimal]]:
        """Fixings up to ``until``; from ``since`` on, plus each currency's last one before it."""
        ...

    async def latest_fixing_day(self) -> date | None: ...
    async def instruments(self) -> list[Instrument]: ...
    async def add_instrument(self, instrument: Instrument) -> Instrument:
        """Insert unless one with the same key exists; the stored one."""
        ...

    async def save_instrument(self, instrument: Instrument) -> None: ...
    async def save_prices(self, instrument_id: UUID, bars: Sequence[PriceBar]) -> int: ...
    async def latest_price_day(self, instrument_id: UUID) -> date | None: ...
    async def closes(
        self, instrument_ids: Sequence[UUID], until: date, since: date | None = None
    ) -> dict[UUID, list[PriceBar]]: ...
    async def held_securities(self) -> list[HeldSecurity]: ...


class PositionRepository(Protocol):
    async def record(self, account: Account, holdings: Sequence[ProviderHolding], day: date) -> int:
        """Record quantities held on ``day``: a row only where a quantity changed."""
        ...

    async def spans(self, user_id: UUID, account_ids: Sequence[UUID] | None = None) -> list[PositionSpan]: ...


class CategoryRepository(Protocol):
    async def list(self, user_id: UUID) -> list[Category]: ...
    async def get(self, category_id: UUID, user_id: UUID) -> Category | None: ...
    async def add(self, category: Category) -> None: ...
    async def save(self, category: Category) -> None: ...
    async def lock_tree(self, user_id: UUID) -> None:
        """Hold the user's categories until the transaction ends: one move at a time, so two
        moves at once cannot each pass the ancestor check and together make a cycle."""
        ...

    async def delete(self, category_id: UUID, user_id: UUID) -> int:
        """Delete and clear it from transactions; how many transactions lost it."""
        ...

    async def seed(self, user_id: UUID, categories: Sequence[Category]) -> bool:
        """Give the default tree once (False when it was given before)."""
        ...


class RuleRepository(Protocol):
    async def list(self, user_id: UUID) -> list[Rule]: ...
    async def any_for(self, user_id: UUID) -> bool: ...
    async def get(self, rule_id: UUID, user_id: UUID) -> Rule | None: ...
    async def add(self, rule: Rule) -> None: ...
    async def save(self, rule: Rule) -> None: ...
    async def delete(self, rule_id: UUID, user_id: UUID) -> bool: ...


class LabelRepository(Protocol):
    async def written_since(
        self, account_ids: Sequence[UUID], floor: UUID, also: Sequence[UUID] = ()
    ) -> list[LabelTarget]:
        """Transactions inserted into these accounts since ``floor`` (a UUIDv7 time bound),
        and those of ``also`` (rows updated meanwhile)."""
        ...

    async def matching(
        self, user_id: UUID, text: str | None, account_id: UUID | None, after: UUID | None, limit: int
    ) -> list[LabelTarget]:
        """A chunk (by id) of the user's transactions, pre-filtered by description text."""
        ...

    async def apply(self, changes: Sequence[LabelChange], set_by: str) -> int: ...
    async def set_fields(
        self, transaction_id: UUID, user_id: UUID, fields: dict[str, Any]
    ) -> Transaction | None:
        """Set user fields (category_id, tags, notes, excluded_from_analytics) as the user's."""
        ...


class TransferRepository(Protocol):
    async def lock(self, user_id: UUID) -> None:
        """Until commit, wait out and hold off the user's other writers of links (PostgreSQL):
        what is read next includes the legs and links they committed."""
        ...

    async def candidates(
        self, user_id: UUID, since: date, until: date, ids: Sequence[UUID] | None = None
    ) -> list[TransferCandidate]:
        """Transfer-like transactions (not in a live link, not excluded) in the date range."""
        ...

    async def rejected_pairs(self, user_id: UUID) -> set[tuple[UUID, UUID]]: ...
    async def add(self, links: Sequence[TransferLink]) -> int: ...
    async def get(self, link_id: UUID, user_id: UUID) -> TransferLink | None: ...
    async def set_status(self, link_id: UUID, status: TransferStatus) -> None: ...
    async def find(
        self, user_id: UUID, status: TransferStatus | None, page: PageRequest
    ) -> Page[TransferLink]: ...
    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page (any status) written as JSON by the database where it can."""
        ...

    async def live_link_of(self, transaction_ids: Sequence[UUID]) -> TransferLink | None: ...
    async def forget_transactions(self, transaction_ids: Sequence[UUID]) -> int: ...
    async def forget_detected(self, transaction_ids: Sequence[UUID]) -> int:
        """Drop the detected (not user-confirmed, not rejected) links of these transactions."""
        ...

    async def forget_pair(self, outflow_id: UUID, inflow_id: UUID) -> None:
        """Drop a rejected link of exactly this pair (the user now links them)."""
        ...


class AnalyticsRepository(Protocol):
    """Read-only queries over snapshots and transactions."""

    async def balance_deltas(
        self, user_id: UUID, end: date, exclude: Sequence[UUID] = ()
    ) -> list[tuple[str, date, Decimal]]: ...
    async def snapshot_values(
        self, user_id: UUID, account_ids: Sequence[UUID], end: date, since: date | None = None
    ) -> list[SnapshotValue]: ...
    async def record_snapshots(
        self, items: Sequence[BalanceSnapshot], types: dict[UUID, AccountType]
    ) -> None:
        """Move the per-currency daily net worth deltas for snapshots about to be stored."""
        ...

    async def rebuild_net_worth(self, user_id: UUID) -> None: ...
    async def net_worth_currencies(self, user_id: UUID) -> set[str]: ...
    async def price_currencies(self, keys: Sequence[str], end: date) -> set[str]: ...
    async def history_points(
        self,
        user_id: UUID,
        start: date,
        end: date,
        points: Sequence[date],
        daily: bool,
        target: str,
        cuts: dict[UUID, date],
    ) -> HistoryPoints | None:
        """Net worth per point, converted and revalued; None: the caller computes it."""
        ...

    async def net_worth_deltas(self, user_id: UUID, end: date) -> list[tuple[str, date, Decimal]]: ...
    async def period_sums(
        self,
        user_id: UUID,
        start: date,
        end: date,
        interval: Interval,
        group: CashFlowGroup | None,
        rates: DailyRates,
    ) -> list[PeriodSum]: ...
    async def currencies_in(self, user_id: UUID, start: date, end: date, known: set[str]) -> set[str]: ...
    async def transactions_of(
        self,
        user_id: UUID,
        account_ids: Sequence[UUID] | None,
        end: date,
        types: Sequence[TransactionType],
        start: date | None = None,
        counted_only: bool = False,
    ) -> list[Movement]: ...
    async def daily_sums(
        self, account_id: UUID, start: date, end: date
    ) -> list[tuple[date, Decimal, int]]: ...
