"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 20:28:05.216940
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import finsync.infrastructure.db.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "connections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=True),
        sa.Column("credentials", sa.LargeBinary(), nullable=True),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("expires_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_synced_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.create_index("ix_connections_user_id_id", ["user_id", "id"], unique=False)

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("created_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("used_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refresh_tokens_family_id"), ["family_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("provider_account_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("institution", sa.String(length=200), nullable=True),
        sa.Column("balance", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("available_balance", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("cash_value", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("holdings_value", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("balance_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "connection_id", "provider_account_id", name="uq_accounts_connection_provider_id"
        ),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_user_id_id", ["user_id", "id"], unique=False)

    op.create_table(
        "auth_flows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("flow_data", sa.LargeBinary(), nullable=True),
        sa.Column("expires_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("used_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("state_hash"),
    )
    with op.batch_alter_table("auth_flows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_flows_connection_id"), ["connection_id"], unique=False)

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=True),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "warnings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index("ix_sync_runs_connection_id_id", ["connection_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sync_runs_user_id"), ["user_id"], unique=False)

    op.create_table(
        "balance_snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("sync_run_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("taken_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("available_balance", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("cash_value", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("holdings_value", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("balance_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_balance_snapshots_account_taken_id", ["account_id", "taken_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_balance_snapshots_user_id"), ["user_id"], unique=False)

    op.create_table(
        "holdings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("isin", sa.String(length=12), nullable=True),
        sa.Column("cusip", sa.String(length=9), nullable=True),
        sa.Column("asset_type", sa.String(length=32), nullable=False),
        sa.Column("quantity", finsync.infrastructure.db.types.ExactDecimal(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("average_cost", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("current_price", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("market_value", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("unrealized_pnl", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("holdings", schema=None) as batch_op:
        batch_op.create_index("ix_holdings_account_id_id", ["account_id", "id"], unique=False)
        batch_op.create_index("ix_holdings_user_id_id", ["user_id", "id"], unique=False)

    op.create_table(
        "transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("provider_transaction_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("subtype", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", finsync.infrastructure.db.types.ExactDecimal(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("transaction_date", sa.Date(), nullable=False),
        sa.Column("settlement_date", sa.Date(), nullable=True),
        sa.Column("symbol", sa.String(length=64), nullable=True),
        sa.Column("quantity", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("unit_price", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("fees", finsync.infrastructure.db.types.ExactDecimal(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", finsync.infrastructure.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "account_id", "provider_transaction_id", name="uq_transactions_account_provider_id"
        ),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transactions_account_date_id", ["account_id", "transaction_date", "id"], unique=False
        )
        batch_op.create_index(
            "ix_transactions_user_date_id", ["user_id", "transaction_date", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_transactions_user_date_id")
        batch_op.drop_index("ix_transactions_account_date_id")

    op.drop_table("transactions")
    with op.batch_alter_table("holdings", schema=None) as batch_op:
        batch_op.drop_index("ix_holdings_user_id_id")
        batch_op.drop_index("ix_holdings_account_id_id")

    op.drop_table("holdings")
    with op.batch_alter_table("balance_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_balance_snapshots_user_id"))
        batch_op.drop_index("ix_balance_snapshots_account_taken_id")

    op.drop_table("balance_snapshots")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_user_id"))
        batch_op.drop_index("ix_sync_runs_connection_id_id")

    op.drop_table("sync_runs")
    with op.batch_alter_table("auth_flows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_flows_connection_id"))

    op.drop_table("auth_flows")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_user_id_id")

    op.drop_table("accounts")
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refresh_tokens_user_id"))
        batch_op.drop_index(batch_op.f("ix_refresh_tokens_family_id"))

    op.drop_table("refresh_tokens")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_index("ix_connections_user_id_id")

    op.drop_table("connections")
    op.drop_table("users")
