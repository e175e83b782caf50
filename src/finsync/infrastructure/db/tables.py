"""SQLModel tables. Only infrastructure sees them; repositories map rows to domain entities."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import Uuid as SAUuid
from sqlmodel import Field, SQLModel

from finsync.infrastructure.db.types import ExactDecimal, JSONType, UTCDateTime

metadata = SQLModel.metadata
_NOW = text("CURRENT_TIMESTAMP")
# Connections the scheduler may claim; its query repeats this text so both databases use the
# partial index (the tick costs O(due), not O(all)).
SCHEDULABLE = "sync_enabled AND status IN ('active', 'error')"
# Runs that still own their connection (at most one per connection).
ACTIVE_RUN = "status IN ('queued', 'running')"
# Orders not final yet (the poller's work): its query repeats this text, so both databases use
# the partial index (the poll costs O(open orders), not O(every order ever placed)).
UNSETTLED = "status IN ('pending_submit', 'unknown', 'new', 'partially_filled')"


def _money(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=ExactDecimal, nullable=nullable)


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable)


def _ts_now() -> Any:
    return Field(sa_type=UTCDateTime, nullable=False, sa_column_kwargs={"server_default": _NOW})


def _fk(target: str, *, index: bool = False) -> Any:
    return Field(
        sa_column=Column(SAUuid, ForeignKey(target, ondelete="CASCADE"), nullable=False, index=index)
    )


def _str(length: int, nullable: bool = False, **kw: Any) -> Any:
    return Field(default=None, sa_type=String(length), nullable=nullable, **kw)


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    id: UUID = Field(primary_key=True)
    email: str = Field(sa_type=String(320), unique=True, nullable=False)
    password_hash: str = Field(sa_type=String(255), nullable=False)
    is_active: bool = True
    created_at: datetime = _ts(False)
    base_currency: str | None = _str(3, nullable=True)
    categories_seeded: bool | None = Field(default=None, nullable=True)  # NULL: not yet


class RefreshTokenRow(SQLModel, table=True):
    __tablename__ = "refresh_tokens"
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id", index=True)
    token_hash: str = Field(sa_type=String(64), unique=True, nullable=False)
    family_id: UUID = Field(index=True)
    expires_at: datetime = _ts(False)
    created_at: datetime = _ts(False)
    used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class ConnectionRow(SQLModel, table=True):
    __tablename__ = "connections"
    __table_args__ = (
        # Unique (it holds the primary key) so that sync_runs can reference (user_id, id).
        Index("uq_connections_user_id_id", "user_id", "id", unique=True),
        # One connection per provider login (and one file connection per format): NULLs, for
        # logins not identified yet, are distinct on both databases.
        UniqueConstraint("user_id", "provider", "identity", name="uq_connections_user_provider_identity"),
        Index(
            "ix_connections_due",
            "next_sync_at",
            postgresql_where=text(SCHEDULABLE),
            sqlite_where=text(SCHEDULABLE),
        ),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    provider: str = _str(64)
    identity: str | None = _str(64, nullable=True)
    name: str = _str(200)
    status: str = _str(32)
    environment: str | None = _str(32, nullable=True)
    credentials: bytes | None = Field(default=None, sa_type=LargeBinary, nullable=True)
    state: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    expires_at: datetime | None = _ts()
    last_synced_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_type=Text, nullable=True)
    last_error_code: str | None = _str(64, nullable=True)
    authorized_at: datetime | None = _ts()
    provider_messages: list[str] | None = Field(default=None, sa_type=JSONType, nullable=True)
    sync_interval_minutes: int | None = Field(default=None, nullable=True)
    sync_enabled: bool = Field(
        default=True, sa_type=Boolean, nullable=False, sa_column_kwargs={"server_default": text("true")}
    )
    next_sync_at: datetime | None = _ts()
    failure_count: int = Field(
        default=0, sa_type=Integer, nullable=False, sa_column_kwargs={"server_default": text("0")}
    )
    created_at: datetime = _ts(False)
    updated_at: datetime = _ts(False)


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("connection_id", "provider_account_id", name="uq_accounts_connection_provider_id"),
        # A user never holds the same provider account twice, whichever connection brought it.
        UniqueConstraint("user_id", "provider", "provider_account_id", name="uq_accounts_user_provider_id"),
        Index("ix_accounts_user_id_id", "user_id", "id"),
        # The same IBAN reached through two connections (domain/reach.py), per user.
        Index("ix_accounts_user_iban", "user_id", "iban"),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    connection_id: UUID = _fk("connections.id")
    provider: str = _str(64)  # the connection's, denormalised for the constraint above
    provider_account_id: str = _str(200)
    name: str = _str(200)
    type: str = _str(32)
    currency: str = _str(3)
    institution: str | None = _str(200, nullable=True)
    balance: Decimal | None = _money()
    available_balance: Decimal | None = _money()
    cash_value: Decimal | None = _money()
    holdings_value: Decimal | None = _money()
    balance_at: datetime | None = _ts()
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    iban: str | None = _str(34, nullable=True)  # normalised (migration 0012)
    created_at: datetime = _ts(False)
    updated_at: datetime = _ts(False)


class HoldingRow(SQLModel, table=True):
    __tablename__ = "holdings"
    __table_args__ = (
        Index("ix_holdings_account_id_id", "account_id", "id"),
        Index("ix_holdings_user_id_id", "user_id", "id"),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    account_id: UUID = _fk("accounts.id")
    position_key: str | None = _str(200, nullable=True)
    symbol: str = _str(64)
    name: str | None = _str(300, nullable=True)
    isin: str | None = _str(12, nullable=True)
    cusip: str | None = _str(9, nullable=True)
    asset_type: str = _str(32)
    quantity: Decimal = _money(False)
    currency: str = _str(3)
    price_currency: str = _str(3)  # of average_cost and current_price (migration 0005)
    average_cost: Decimal | None = _money()
    current_price: Decimal | None = _money()
    market_value: Decimal | None = _money()
    unrealized_pnl: Decimal | None = _money()
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    updated_at: datetime = _ts(False)


class TransactionRow(SQLModel, table=True):
    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("account_id", "provider_transaction_id", name="uq_transactions_account_provider_id"),
        Index("ix_transactions_account_date_id", "account_id", "transaction_date", "id"),
        Index("ix_transactions_user_date_id", "user_id", "transaction_date", "id"),
    )
    id: UUID = Field(primary_key=True)
    # No foreign keys: per-row FK triggers cost more than the rest of a bulk insert. user_id is
    # denormalised from the account for scoping; the repositories keep account_id valid
    # (account row locked while inserting, explicit deletes with the connection).
    user_id: UUID = Field(nullable=False)
    account_id: UUID = Field(nullable=False)
    provider_transaction_id: str = _str(255)
    type: str = _str(32)
    subtype: str = _str(32)
    status: str = _str(16)
    amount: Decimal = _money(False)
    # An ISO-4217 code, or an exchange's asset code for a crypto leg (USDT, 1000SATS): 0014.
    currency: str = _str(16)
    transaction_date: date = Field(sa_type=Date, nullable=False)
    settlement_date: date | None = Field(default=None, sa_type=Date, nullable=True)
    symbol: str | None = _str(64, nullable=True)
    quantity: Decimal | None = _money()
    unit_price: Decimal | None = _money()
    fees: Decimal | None = _money()
    description: str | None = Field(default=None, sa_type=Text, nullable=True)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    content_hash: str = _str(64)
    # Defaults let bulk COPYs leave both out (two fewer timestamps to encode per row).
    created_at: datetime = Field(
        sa_type=UTCDateTime, nullable=False, sa_column_kwargs={"server_default": _NOW}
    )
    updated_at: datetime = Field(
        sa_type=UTCDateTime, nullable=False, sa_column_kwargs={"server_default": _NOW}
    )
    # User fields (analytics): never in the write path's column lists, so a re-sync or
    # re-import cannot touch them; NULL costs a COPY nothing.
    category_id: UUID | None = Field(default=None, nullable=True)
    category_set_by: str | None = _str(8, nullable=True)
    tags: list[str] | None = Field(default=None, sa_type=JSONType, nullable=True)
    tags_set_by: str | None = _str(8, nullable=True)
    notes: str | None = Field(default=None, sa_type=Text, nullable=True)
    excluded_from_analytics: bool | None = Field(default=None, nullable=True)


class BalanceSnapshotRow(SQLModel, table=True):
    __tablename__ = "balance_snapshots"
    __table_args__ = (Index("ix_balance_snapshots_account_taken_id", "account_id", "taken_at", "id"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id", index=True)
    account_id: UUID = _fk("accounts.id")
    sync_run_id: UUID | None = Field(default=None, nullable=True)
    source: str = _str(16)
    taken_at: datetime = _ts(False)
    currency: str = _str(3)
    balance: Decimal | None = _money()
    available_balance: Decimal | None = _money()
    cash_value: Decimal | None = _money()
    holdings_value: Decimal | None = _money()


class SyncRunRow(SQLModel, table=True):
    __tablename__ = "sync_runs"
    __table_args__ = (
        # One key for connection and owner: one check per inserted run (a tick inserts a
        # thousand), and a run can only name the user who owns its connection.
        ForeignKeyConstraint(
            ["user_id", "connection_id"],
            ["connections.user_id", "connections.id"],
            name="fk_sync_runs_connection_owner",
            ondelete="CASCADE",
        ),
        Index("ix_sync_runs_connection_id_id", "connection_id", "id"),
        # At most one queued or running sync per connection, enforced by the database.
        Index(
            "uq_sync_runs_one_active",
            "connection_id",
            unique=True,
            postgresql_where=text(ACTIVE_RUN),
            sqlite_where=text(ACTIVE_RUN),
        ),
        # The reaper's look-up of old active runs.
        Index(
            "ix_sync_runs_active",
            "started_at",
            postgresql_where=text(ACTIVE_RUN),
            sqlite_where=text(ACTIVE_RUN),
        ),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = Field(sa_type=SAUuid, nullable=False, index=True)
    connection_id: UUID = Field(sa_type=SAUuid, nullable=False)
    trigger: str = _str(16)
    status: str = _str(16)
    queued_at: datetime | None = _ts()
    started_at: datetime = _ts(False)
    attempts: int = Field(
        default=0, sa_type=Integer, nullable=False, sa_column_kwargs={"server_default": text("0")}
    )
    finished_at: datetime | None = _ts()
    counts: dict[str, int] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    warnings: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    error: str | None = Field(default=None, sa_type=Text, nullable=True)
    error_type: str | None = _str(64, nullable=True)


class AuthFlowRow(SQLModel, table=True):
    """A pending OAuth/link authorisation: single-use state bound to user and connection."""

    __tablename__ = "auth_flows"
    id: UUID = Field(primary_key=True)
    state_hash: str = Field(sa_type=String(64), unique=True, nullable=False)
    user_id: UUID = _fk("users.id")
    connection_id: UUID = _fk("connections.id", index=True)
    provider: str = _str(64)
    flow_data: bytes | None = Field(default=None, sa_type=LargeBinary, nullable=True)
    expires_at: datetime = _ts(False)
    used_at: datetime | None = _ts()
    created_at: datetime = _ts(False)


class IdempotencyKeyRow(SQLModel, table=True):
    """A client's ``Idempotency-Key``: the request it named and, once done, the answer it got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    key: str = _str(255)
    request: str = _str(64)  # SHA-256 of the method, path and body
    status_code: int | None = Field(default=None, nullable=True)
    response: dict[str, Any] | None = Field(default=None, sa_type=JSONType, nullable=True)
    created_at: datetime = _ts(False)
    expires_at: datetime = _ts(False)
    # The connection the answer names (made or imported into): deleting it forgets the key.
    connection_id: UUID | None = Field(default=None, nullable=True, index=True)


class AuthSessionRow(SQLModel, table=True):
    """A login (refresh chain); access tokens carry its id and die with it."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user_id_id", "user_id", "id"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    created_at: datetime = _ts(False)
    last_used_at: datetime = _ts(False)
    expires_at: datetime = _ts(False)
    address: str | None = _str(45, nullable=True)
    user_agent: str | None = _str(200, nullable=True)
    revoked_at: datetime | None = _ts()


class LoginThrottleRow(SQLModel, table=True):
    """Failed-login counters shared by every API process; keys are SHA-256 digests, not emails."""

    __tablename__ = "login_throttle"
    key: str = Field(sa_type=String(64), primary_key=True)
    failures: int = Field(nullable=False)
    window_start: datetime = _ts(False)
    last_failure_at: datetime | None = _ts()
    succeeded_at: datetime | None = _ts()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)


class RateBudgetRow(SQLModel, table=True):
    """A provider rate limit shared by every process (PostgreSQL): a sliding-window log of send
    times (epoch seconds) and a block set by a 429. The key is a digest, never a credential."""

    __tablename__ = "rate_budgets"
    key: str = Field(sa_type=String(128), primary_key=True)
    sent: list[float] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    blocked_until: float = Field(default=0.0, sa_type=Float, nullable=False)


class WebhookRow(SQLModel, table=True):
    """An endpoint of a user's client; ``secret`` is encrypted like provider credentials."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_user_id_id", "user_id", "id"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    url: str = Field(sa_type=Text, nullable=False)
    events: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    secret: bytes = Field(sa_type=LargeBinary, nullable=False)
    description: str | None = _str(200, nullable=True)
    created_at: datetime = _ts(False)
    updated_at: datetime = _ts(False)


class WebhookDeliveryRow(SQLModel, table=True):
    """One event for one webhook (the outbox row); its id is the ``webhook-id`` header."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
        # Expiry notices: once per webhook, connection, expiry and threshold (NULL keys repeat).
        UniqueConstraint("webhook_id", "dedupe_key", name="uq_webhook_deliveries_dedupe"),
        Index(
            "ix_webhook_deliveries_pending",
            "created_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id", index=True)
    webhook_id: UUID = _fk("webhooks.id")
    event: str = _str(64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    dedupe_key: str | None = _str(200, nullable=True)
    status: str = _str(16)
    attempts: int = Field(default=0, sa_type=Integer, nullable=False)
    created_at: datetime = _ts(False)
    last_attempt_at: datetime | None = _ts()
    delivered_at: datetime | None = _ts()


class WebhookAttemptRow(SQLModel, table=True):
    """One HTTP attempt of a delivery: what the receiver answered, or why there was no answer."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id", index=True)
    delivery_id: UUID = _fk("webhook_deliveries.id")
    attempted_at: datetime = _ts(False)
    status_code: int | None = Field(default=None, nullable=True)
    error: str | None = Field(default=None, sa_type=Text, nullable=True)
    duration_ms: int = Field(default=0, sa_type=Integer, nullable=False)


from finsync.infrastructure.db import analytics_tables  # noqa: E402, F401  (same metadata)


class ImportMappingRow(SQLModel, table=True):
    """A user's saved CSV column mapping, found again by the header it was made for."""

    __tablename__ = "import_mappings"
    __table_args__ = (
        UniqueConstraint("user_id", "header_signature", name="uq_import_mappings_user_header"),
        Index("ix_import_mappings_user_id_id", "user_id", "id"),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    name: str = _str(100)
    header_signature: str = _str(32)
    header: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    mapping: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    account_id: UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = _ts(False)


class TradingSettingsRow(SQLModel, table=True):
    """A connection's trading switches and limits (no row: trading off)."""

    __tablename__ = "trading_settings"
    connection_id: UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: UUID = _fk("users.id", index=True)
    enabled: bool = Field(default=False, sa_type=Boolean, nullable=False)
    halted: bool = Field(default=False, sa_type=Boolean, nullable=False)
    max_order_notional: Decimal | None = _money()
    max_orders_per_day: int | None = Field(default=None, nullable=True)
    max_notional_per_day: Decimal | None = _money()
    symbols: list[str] | None = Field(default=None, sa_type=JSONType, nullable=True)
    updated_at: datetime = _ts(False)


class OrderRow(SQLModel, table=True):
    """An order, stored before it is sent. One per user and idempotency key: the database's
    unique constraint is what makes a retried or concurrent request never send twice.
    ``connection_id``/``account_id`` carry no foreign key: the audit trail outlives them."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        # A broker order is one of ours at most once (reconciliation cannot adopt it twice).
        UniqueConstraint("connection_id", "broker_order_id", name="uq_orders_connection_broker_id"),
        Index("ix_orders_user_id_id", "user_id", "id"),
        Index("ix_orders_connection_created", "connection_id", "created_at"),
        Index("ix_orders_unsettled", "id", postgresql_where=text(UNSETTLED), sqlite_where=text(UNSETTLED)),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    connection_id: UUID = Field(nullable=False)
    account_id: UUID = Field(nullable=False)
    idempotency_key: str = _str(255)
    request_digest: str = _str(64)
    symbol: str = _str(64)
    side: str = _str(8)
    type: str = _str(16)
    time_in_force: str = _str(8)
    currency: str = _str(3)
    created_by: str = _str(64)
    quantity: Decimal | None = _money()
    notional: Decimal | None = _money()
    limit_price: Decimal | None = _money()
    stop_price: Decimal | None = _money()
    estimated_notional: Decimal | None = _money()
    client_order_id: str | None = _str(128, nullable=True)
    broker_order_id: str | None = _str(128, nullable=True)
    status: str = _str(24)
    submit_attempts: int = Field(default=1, sa_type=Integer, nullable=False)
    filled_quantity: Decimal = _money(False)
    average_price: Decimal | None = _money()
    fills: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    reason: str | None = Field(default=None, sa_type=Text, nullable=True)
    submitted_at: datetime = _ts(False)
    created_at: datetime = _ts(False)
    updated_at: datetime = _ts(False)


class OrderEventRow(SQLModel, table=True):
    """The append-only audit trail of an order."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id_id", "order_id", "id"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id", index=True)
    order_id: UUID = _fk("orders.id")
    kind: str = _str(32)
    actor: str = _str(64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    at: datetime = _ts(False)


class ApiTokenRow(SQLModel, table=True):
    """A bot's API token: only its SHA-256 is stored (looked up by it)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id_id", "user_id", "id"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _fk("users.id")
    name: str = _str(100)
    token_hash: str = Field(sa_type=String(64), unique=True, nullable=False)
    scopes: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    created_at: datetime = _ts(False)
    revoked_at: datetime | None = _ts()
