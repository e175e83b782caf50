"""Entities of the unified model. Plain dataclasses: persistence maps them field by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import uuid_utils

from finsync.domain.enums import (
    AccountType,
    AssetType,
    ConnectionStatus,
    SnapshotSource,
    SyncStatus,
    SyncTrigger,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from finsync.domain.money import Money


def new_id() -> UUID:
    """RFC 9562 UUIDv7: time-ordered, so primary-key order is creation order."""
    return UUID(bytes=uuid_utils.uuid7().bytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, kw_only=True)
class User:
    email: str
    password_hash: str
    id: UUID = field(default_factory=new_id)
    is_active: bool = True
    created_at: datetime = field(default_factory=utcnow)
    base_currency: str | None = None  # None: the deployment's default (FINSYNC_BASE_CURRENCY)
    categories_seeded: bool | None = None  # True once the default category tree was given


@dataclass(slots=True, kw_only=True)
class RefreshToken:
    """Opaque refresh token, stored only as its SHA-256; ``family_id`` ties a rotation chain."""

    user_id: UUID
    token_hash: str
    family_id: UUID
    expires_at: datetime
    id: UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class AuthSession:
    """One login: its id is the refresh chain's ``family_id`` and the ``sid`` of its access tokens."""

    user_id: UUID
    expires_at: datetime  # the newest refresh token's expiry
    id: UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    last_used_at: datetime = field(default_factory=utcnow)  # login or last refresh
    address: str | None = None
    user_agent: str | None = None
    revoked_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class LoginAttempts:
    """Throttle state of one key (a client, an account, or an account from one client)."""

    key: str
    failures: int = 0
    window_start: datetime
    expires_at: datetime
    last_failure_at: datetime | None = None
    succeeded_at: datetime | None = None


FILES = "files"
"""The identity of a user's one connection per statement-file format."""


def connection_name(requested: str | None, default: str) -> str:
    """A connection's display name: NUL-free, trimmed, at most 200 characters, never empty."""
    return ((requested or "").replace("\x00", "").strip() or default)[:200]


@dataclass(slots=True, kw_only=True)
class Connection:
    user_id: UUID
    provider: str
    name: str
    id: UUID = field(default_factory=new_id)
    # Who this connection logs in as at the provider (a digest of its account keys), or FILES;
    # unique per user and provider, so the same login is never connected twice.
    identity: str | None = None
    status: ConnectionStatus = ConnectionStatus.PENDING
    environment: str | None = None
    credentials: bytes | None = None  # ciphertext only; the domain never sees plaintext at rest
    state: dict[str, Any] = field(default_factory=dict)  # provider-owned sync cursor
    expires_at: datetime | None = None
    last_synced_at: datetime | None = None
    last_error: str | None = None
    last_error_code: str | None = None  # the error class's code (e.g. provider-rate-limited)
    # When the current authorisation (consent, token, user-entered expiry) was granted: with
    # ``expires_at``, its lifetime (expiry notices). None: since ``created_at``.
    authorized_at: datetime | None = None
    # What the provider said in the last sync (e.g. SimpleFIN's "log in again at the bridge").
    provider_messages: list[str] | None = None
    # Schedule: None = the provider's default interval; files are never scheduled.
    sync_interval_minutes: int | None = None
    sync_enabled: bool = True
    next_sync_at: datetime | None = None  # owned by the scheduler and the sync outcome
    failure_count: int = 0  # consecutive failed syncs: the back-off exponent
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(slots=True, kw_only=True)
class Account:
    user_id: UUID
    connection_id: UUID
    provider: str
    provider_account_id: str
    name: str
    type: AccountType
    currency: str
    id: UUID = field(default_factory=new_id)
    institution: str | None = None
    balance: Decimal | None = None
    available_balance: Decimal | None = None
    cash_value: Decimal | None = None
    holdings_value: Decimal | None = None
    balance_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    iban: str | None = None  # normalised; the same IBAN through two connections: domain/reach.py
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    @property
    def balance_money(self) -> Money | None:
        return None if self.balance is None else Money(self.balance, self.currency)


@dataclass(slots=True, kw_only=True)
class Holding:
    user_id: UUID
    account_id: UUID
    symbol: str
    quantity: Decimal
    currency: str
    id: UUID = field(default_factory=new_id)
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
    updated_at: datetime = field(default_factory=utcnow)
    price_currency: str = ""  # of average_cost and current_price; empty: the same as currency

    def __post_init__(self) -> None:
        self.price_currency = self.price_currency or self.currency


@dataclass(slots=True, kw_only=True)
class Transaction:
    user_id: UUID
    account_id: UUID
    provider_transaction_id: str
    type: TransactionType
    subtype: TransactionSubtype
    amount: Decimal
    currency: str
    transaction_date: date
    id: UUID = field(default_factory=new_id)
    status: TransactionStatus = TransactionStatus.SETTLED
    settlement_date: date | None = None
    symbol: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    fees: Decimal | None = None
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    # User fields: set by the user or their rules, never written by a sync or import.
    category_id: UUID | None = None
    category_set_by: str | None = None  # "user" | "rule"
    tags: list[str] | None = None
    tags_set_by: str | None = None
    notes: str | None = None
    excluded_from_analytics: bool | None = None

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


@dataclass(slots=True, kw_only=True)
class BalanceSnapshot:
    user_id: UUID
    account_id: UUID
    source: SnapshotSource
    currency: str
    id: UUID = field(default_factory=new_id)
    sync_run_id: UUID | None = None
    taken_at: datetime = field(default_factory=utcnow)
    balance: Decimal | None = None
    available_balance: Decimal | None = None
    cash_value: Decimal | None = None
    holdings_value: Decimal | None = None


@dataclass(slots=True, kw_only=True)
class SyncRun:
    """One sync or import: the history a user sees, with per-entity counts."""

    user_id: UUID
    connection_id: UUID
    trigger: SyncTrigger
    id: UUID = field(default_factory=new_id)
    status: SyncStatus = SyncStatus.RUNNING
    # Requested at; ``started_at`` is when a worker picked it up (the same until then).
    queued_at: datetime | None = None
    started_at: datetime = field(default_factory=utcnow)
    # Pick-ups by a worker: a fencing token, so a job retried after a stall never lets
    # the stalled first attempt write over the second.
    attempts: int = 0
    finished_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class AuthFlow:
    """A pending OAuth/link authorisation. The state is stored only as its SHA-256."""

    state_hash: str
    user_id: UUID
    connection_id: UUID
    provider: str
    expires_at: datetime
    flow_data: bytes | None = None  # encrypted (PKCE verifier, requisition id)
    id: UUID = field(default_factory=new_id)
    used_at: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass(slots=True, kw_only=True)
class IdempotencyRecord:
    """A client's ``Idempotency-Key``: the request it named (a digest) and, once done, the answer."""

    user_id: UUID
    key: str
    request: str
    expires_at: datetime
    id: UUID = field(default_factory=new_id)
    status_code: int | None = None  # None while the first request is still running
    response: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=utcnow)
    connection_id: UUID | None = None  # the connection the answer names: deleting it forgets the key
