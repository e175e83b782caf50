"""Tables of market data, holding history, categories, rules and transfer links (migration 0008).

Kept apart from ``tables.py`` so the analytics schema reads in one place; both share
``SQLModel.metadata`` (``tables.py`` imports this module at its end).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy import Uuid as SAUuid
from sqlmodel import Field, SQLModel

from finsync.infrastructure.db.types import ExactDecimal, JSONType, UTCDateTime


def _user_fk() -> Any:
    return Field(sa_column=Column(SAUuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False))


def _str(length: int, nullable: bool = False) -> Any:
    return Field(default=None, sa_type=String(length), nullable=nullable)


def _day(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=Date, nullable=nullable)


class FxRateRow(SQLModel, table=True):
    """Units of ``currency`` per 1 EUR on ``day`` (ECB reference rates; other sources fill gaps)."""

    __tablename__ = "fx_rates"
    currency: str = Field(sa_type=String(3), primary_key=True)
    day: date = Field(sa_type=Date, primary_key=True)
    rate: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    source: str = _str(32)
    fetched_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class InstrumentRow(SQLModel, table=True):
    """A priced security, shared by all users; holdings match it by ``key`` (ISIN/CUSIP/ticker)."""

    __tablename__ = "instruments"
    id: UUID = Field(primary_key=True)
    key: str = Field(sa_type=String(120), unique=True, nullable=False)
    symbol: str = _str(64)
    isin: str | None = _str(12, nullable=True)
    cusip: str | None = _str(9, nullable=True)
    exchange: str | None = _str(32, nullable=True)
    name: str | None = _str(300, nullable=True)
    asset_type: str = _str(32)
    currency: str | None = _str(3, nullable=True)
    symbols: dict[str, str] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    backfilled_from: date | None = _day(nullable=True)


class PriceRow(SQLModel, table=True):
    """One close per instrument and day, in the major currency unit, with the source that gave it."""

    __tablename__ = "prices"
    instrument_id: UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True)
    )
    day: date = Field(sa_type=Date, primary_key=True)
    close: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    currency: str = _str(3)
    source: str = _str(32)
    adjusted: bool = Field(default=False, nullable=False)


class HoldingHistoryRow(SQLModel, table=True):
    """An account's quantity of one position from ``valid_from`` until ``valid_to`` (exclusive);
    a row is written only when the quantity changes."""

    __tablename__ = "holding_history"
    __table_args__ = (
        UniqueConstraint("account_id", "position_key", "valid_from", name="uq_holding_history_position_day"),
        Index("ix_holding_history_user_account", "user_id", "account_id", "valid_from"),
        Index("ix_holding_history_instrument", "instrument_key"),  # who holds a repriced instrument
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _user_fk()
    account_id: UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)
    )
    position_key: str = _str(200)
    instrument_key: str = _str(120)
    symbol: str = _str(64)
    currency: str = _str(3)
    asset_type: str = _str(32)
    quantity: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    valid_from: date = _day()
    valid_to: date | None = _day(nullable=True)


class CategoryRow(SQLModel, table=True):
    __tablename__ = "categories"
    __table_args__ = (
        UniqueConstraint("user_id", "name", name="uq_categories_user_name"),
        # Names are unique whatever the case (migration 0020): two requests at once cannot both
        # write "Coffee" and "coffee".
        Index("uq_categories_user_lower_name", "user_id", text("lower(name)"), unique=True),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _user_fk()
    parent_id: UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("categories.id", ondelete="SET NULL"))
    )
    name: str = _str(100)
    kind: str = _str(16)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class RuleRow(SQLModel, table=True):
    __tablename__ = "rules"
    __table_args__ = (Index("ix_rules_user_priority", "user_id", "priority"),)
    id: UUID = Field(primary_key=True)
    user_id: UUID = _user_fk()
    name: str = _str(200)
    priority: int = Field(nullable=False)
    enabled: bool = Field(default=True, nullable=False)
    conditions: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType, nullable=False)
    category_id: UUID | None = Field(
        default=None, sa_column=Column(SAUuid, ForeignKey("categories.id", ondelete="SET NULL"))
    )
    tags: list[str] = Field(default_factory=list, sa_type=JSONType, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class TransferLinkRow(SQLModel, table=True):
    """A transfer between two of a user's accounts: found by detection or set by the user. A
    transaction is in at most one live (not rejected) link: partial unique indexes."""

    __tablename__ = "transfer_links"
    __table_args__ = (
        UniqueConstraint("outflow_id", "inflow_id", name="uq_transfer_links_pair"),
        Index("ix_transfer_links_user_status_id", "user_id", "status", "id"),  # pages, by status
        Index("ix_transfer_links_user_id_id", "user_id", "id"),  # pages
        Index(
            "uq_transfer_links_live_outflow",
            "outflow_id",
            unique=True,
            postgresql_where=text("status <> 'rejected'"),
            sqlite_where=text("status <> 'rejected'"),
        ),
        Index(
            "uq_transfer_links_live_inflow",
            "inflow_id",
            unique=True,
            postgresql_where=text("status <> 'rejected'"),
            sqlite_where=text("status <> 'rejected'"),
        ),
    )
    id: UUID = Field(primary_key=True)
    user_id: UUID = _user_fk()
    # No foreign keys to transactions (they have none either): deleting a connection deletes
    # the links of its transactions explicitly.
    outflow_id: UUID = Field(nullable=False)
    inflow_id: UUID = Field(nullable=False)
    status: str = _str(16)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class NetWorthDeltaRow(SQLModel, table=True):
    """Per user, currency and UTC day: how much the sum of accounts' last known values moved
    (liabilities apart, signed negative). A running sum gives each day's carried-forward
    total without reading every snapshot; maintained as snapshots are written."""

    __tablename__ = "net_worth_deltas"
    user_id: UUID = Field(
        sa_column=Column(SAUuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    )
    currency: str = Field(sa_type=String(3), primary_key=True)
    day: date = Field(sa_type=Date, primary_key=True)
    liability: bool = Field(primary_key=True)
    delta: Decimal = Field(sa_type=ExactDecimal, nullable=False)


# Cash flow's daily sums (migration 0015): per user, day and currency, one row per category
# (grouping "c"; ``key`` is the nil UUID for none) and one per account (grouping "a") — what
# `GET /analytics/cash-flow` adds up instead of every transaction. Derived data: database
# triggers on ``transactions`` and ``transfer_links`` list the (user, day) pairs a write
# touches in ``cash_flow_dirty``, and the unit of work recomputes those days before it
# commits (``infrastructure/db/cash_flow.py``).
cash_flow_days = Table(
    "cash_flow_days",
    SQLModel.metadata,
    Column("user_id", SAUuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("grouping", String(1), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("currency", String(16), primary_key=True),
    Column("key", SAUuid, primary_key=True),
    Column("income", ExactDecimal, nullable=False),
    Column("spending", ExactDecimal, nullable=False),
    Column("count", Integer, nullable=False),
)
# Keyed by the marking transaction too (PostgreSQL: its id; SQLite, one writer: 0): writers
# marking the same day never wait on each other's uncommitted mark. No foreign key: a user's
# deletion removes their transactions (which marks their days) and then the user; the
# recomputation drops the marks.
cash_flow_dirty = Table(
    "cash_flow_dirty",
    SQLModel.metadata,
    Column("user_id", SAUuid, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("writer", BigInteger, primary_key=True, server_default="0"),
)


# Recorded holdings' value moves per account, close currency and day (migration 0019): what
# `GET /net-worth/history` sums on PostgreSQL instead of revaluing every close of every
# position. Derived data, PostgreSQL only: triggers on ``holding_history``, ``prices`` and
# ``instruments`` recompute the accounts a statement touches, in that statement's transaction
# (``infrastructure/db/holding_values.py``). SQLite values holdings in Python and leaves it empty.
holding_value_deltas = Table(
    "holding_value_deltas",
    SQLModel.metadata,
    Column("user_id", SAUuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", SAUuid, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("value", ExactDecimal),  # null: no position priced yet
    Column("held", Integer, nullable=False),
    Column("unpriced", Integer, nullable=False),
)
