"""What provider adapters return: plain records keyed by provider ids, no persistence ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from finsync.domain.enums import (
    AccountType,
    AssetType,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)


@dataclass(slots=True, kw_only=True)
class ProviderAccount:
    provider_account_id: str
    name: str
    type: AccountType
    currency: str
    institution: str | None = None
    balance: Decimal | None = None
    available_balance: Decimal | None = None
    cash_value: Decimal | None = None
    holdings_value: Decimal | None = None
    balance_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # The account's IBAN as the provider sends it (stored normalised, or not at all when it is
    # not a valid IBAN): how one account reached through two providers is recognised.
    iban: str | None = None


VALUE_CONVERSION = "value_conversion"
"""Key of a holding's ``raw`` where an adapter that converted ``market_value`` from
``price_currency`` at a reference rate says so: ``{"rate": "1.16", "rate_date": "2025-10-10",
"source": "ECB reference rate"}`` (rate: ``currency`` units per 1 ``price_currency``)."""


@dataclass(slots=True, kw_only=True)
class ProviderHolding:
    symbol: str
    quantity: Decimal
    currency: str
    # Identifies the position across syncs when the security alone does not (two lots of one
    # security in a list); when None, the store keys by ISIN, CUSIP or symbol plus occurrence.
    position_key: str | None = None
    name: str | None = None
    isin: str | None = None
    cusip: str | None = None
    asset_type: AssetType = AssetType.OTHER
    average_cost: Decimal | None = None
    current_price: Decimal | None = None
    market_value: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # Currency of average_cost and current_price (the instrument's); currency is that of
    # market_value and unrealized_pnl. Empty means the same as currency.
    price_currency: str = ""

    def __post_init__(self) -> None:
        self.price_currency = self.price_currency or self.currency


@dataclass(slots=True, kw_only=True)
class ProviderTransaction:
    provider_transaction_id: str
    type: TransactionType
    subtype: TransactionSubtype
    amount: Decimal
    currency: str
    transaction_date: date
    status: TransactionStatus = TransactionStatus.SETTLED
    settlement_date: date | None = None
    symbol: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    fees: Decimal | None = None
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # Identifies this exact content (at most 64 characters). Providers that can digest their
    # source text set it, which is cheaper than hashing the mapped values; when None, the
    # store hashes the values. Equal fingerprint = unchanged row, so re-imports skip it.
    fingerprint: str | None = None


@dataclass(slots=True, kw_only=True)
class DeferredTransactions:
    """Transactions a provider can name before it maps them.

    ``keys[i]`` is item i's (provider_transaction_id, fingerprint); ``build(positions)``
    maps only the items at those positions, in order, and may skip unreadable ones (the
    provider records why). A writer compares the keys with what it stores and builds only
    new or changed items, so re-importing a big file never maps what is already there.
    """

    keys: list[tuple[str, str]]
    build: Callable[[list[int]], Iterator[ProviderTransaction]]


@dataclass(slots=True, kw_only=True)
class TransactionBatch:
    """Transactions of one account; ``replace_pending_since`` drops stored pending rows
    from that date on that this batch does not contain (banks re-id pending items)."""

    transactions: list[ProviderTransaction] = field(default_factory=list)
    deferred: list[DeferredTransactions] = field(default_factory=list)
    replace_pending_since: date | None = None

    def provider_ids(self) -> list[str]:
        return [t.provider_transaction_id for t in self.transactions] + [
            key for group in self.deferred for key, _ in group.keys
        ]


@dataclass(slots=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    # Transactions: the ids of the rows updated (their own transfers are paired again).
    updated_ids: list[UUID] = field(default_factory=list)

    def add(self, other: UpsertCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.updated_ids += other.updated_ids
