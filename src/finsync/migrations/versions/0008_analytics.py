"""analytics: market data and FX, holding history, categories, rules, transfer links, user fields

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-29 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import ExactDecimal, JSONType, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text("status <> 'rejected'")


def _user() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "fx_rates",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("rate", ExactDecimal(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "instruments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("key", sa.String(120), nullable=False, unique=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("isin", sa.String(12), nullable=True),
        sa.Column("cusip", sa.String(9), nullable=True),
        sa.Column("exchange", sa.String(32), nullable=True),
        sa.Column("name", sa.String(300), nullable=True),
        sa.Column("asset_type", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("symbols", JSONType, nullable=False),
        sa.Column("backfilled_from", sa.Date(), nullable=True),
    )
    op.create_table(
        "prices",
        sa.Column(
            "instrument_id",
            sa.Uuid(),
            sa.ForeignKey("instruments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("close", ExactDecimal(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("adjusted", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "holding_history",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user(),
        sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position_key", sa.String(200), nullable=False),
        sa.Column("instrument_key", sa.String(120), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("asset_type", sa.String(32), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.UniqueConstraint(
            "account_id", "position_key", "valid_from", name="uq_holding_history_position_day"
        ),
    )
    op.create_index(
        "ix_holding_history_user_account", "holding_history", ["user_id", "account_id", "valid_from"]
    )
    op.create_table(
        "categories",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user(),
        sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("categories.id", ondelete="SET NULL"), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_categories_user_name"),
    )
    op.create_table(
        "rules",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("conditions", JSONType, nullable=False),
        sa.Column(
            "category_id", sa.Uuid(), sa.ForeignKey("categories.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_rules_user_priority", "rules", ["user_id", "priority"])
    op.create_table(
        "transfer_links",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user(),
        sa.Column("outflow_id", sa.Uuid(), nullable=False),
        sa.Column("inflow_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("outflow_id", "inflow_id", name="uq_transfer_links_pair"),
    )
    op.create_index("ix_transfer_links_user", "transfer_links", ["user_id", "status"])
    for side in ("outflow", "inflow"):
        op.create_index(
            f"uq_transfer_links_live_{side}",
            "transfer_links",
            [f"{side}_id"],
            unique=True,
            postgresql_where=_LIVE,
            sqlite_where=_LIVE,
        )
    # User fields of transactions: nullable and without defaults, so adding them rewrites
    # nothing (PostgreSQL and SQLite both add such columns in place) and COPY never sends them.
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("category_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("category_set_by", sa.String(8), nullable=True))
        batch.add_column(sa.Column("tags", JSONType, nullable=True))
        batch.add_column(sa.Column("tags_set_by", sa.String(8), nullable=True))
        batch.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch.add_column(sa.Column("excluded_from_analytics", sa.Boolean(), nullable=True))
    # Nullable, no default: SQLite adds such columns in place. (A column it cannot add in place
    # makes batch mode copy the table, and dropping ``users`` would cascade to everything.)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("base_currency", sa.String(3), nullable=True))
        batch.add_column(sa.Column("categories_seeded", sa.Boolean(), nullable=True))
    op.create_table(
        "net_worth_deltas",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("liability", sa.Boolean(), primary_key=True),
        sa.Column("delta", ExactDecimal(), nullable=False),
    )
    _backfill_net_worth_deltas()


def _backfill_net_worth_deltas() -> None:
    """Existing snapshots, summed the way new ones will be (exact: Decimal in Python)."""
    from finsync.infrastructure.db.net_worth import deltas_of

    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT s.user_id, s.account_id, s.currency, s.taken_at, s.balance, a.type"
            " FROM balance_snapshots s JOIN accounts a ON a.id = s.account_id"
            " WHERE s.balance IS NOT NULL ORDER BY s.account_id, s.taken_at, s.id"
        )
    )
    table = sa.table(
        "net_worth_deltas",
        sa.column("user_id", sa.Uuid()),
        sa.column("currency", sa.String()),
        sa.column("day", sa.Date()),
        sa.column("liability", sa.Boolean()),
        sa.column("delta", ExactDecimal()),
    )
    values = deltas_of(rows)
    if values:
        op.bulk_insert(table, values)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("categories_seeded")
        batch.drop_column("base_currency")
    with op.batch_alter_table("transactions") as batch:
        for column in (
            "excluded_from_analytics",
            "notes",
            "tags_set_by",
            "tags",
            "category_set_by",
            "category_id",
        ):
            batch.drop_column(column)
    for table in (
        "net_worth_deltas",
        "transfer_links",
        "rules",
        "categories",
        "holding_history",
        "prices",
        "instruments",
        "fx_rates",
    ):
        op.drop_table(table)
