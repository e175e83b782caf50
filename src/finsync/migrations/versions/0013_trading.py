"""trading: per-connection settings, orders with their audit trail, API tokens

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import ExactDecimal, JSONType, UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "trading_settings",
        sa.Column(
            "connection_id",
            sa.Uuid(),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        _user(),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("max_order_notional", ExactDecimal(), nullable=True),
        sa.Column("max_orders_per_day", sa.Integer(), nullable=True),
        sa.Column("max_notional_per_day", ExactDecimal(), nullable=True),
        sa.Column("symbols", JSONType, nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_trading_settings_user_id", "trading_settings", ["user_id"])
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user(),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=True),
        sa.Column("notional", ExactDecimal(), nullable=True),
        sa.Column("limit_price", ExactDecimal(), nullable=True),
        sa.Column("stop_price", ExactDecimal(), nullable=True),
        sa.Column("estimated_notional", ExactDecimal(), nullable=True),
        sa.Column("client_order_id", sa.String(128), nullable=True),
        sa.Column("broker_order_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("submit_attempts", sa.Integer(), nullable=False),
        sa.Column("filled_quantity", ExactDecimal(), nullable=False),
        sa.Column("average_price", ExactDecimal(), nullable=True),
        sa.Column("fills", JSONType, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        sa.UniqueConstraint("connection_id", "broker_order_id", name="uq_orders_connection_broker_id"),
    )
    op.create_index("ix_orders_user_id_id", "orders", ["user_id", "id"])
    op.create_index("ix_orders_connection_created", "orders", ["connection_id", "created_at"])
    op.create_table(
        "order_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user(),
        sa.Column("order_id", sa.Uuid(), sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_order_events_user_id", "order_events", ["user_id"])
    op.create_index("ix_order_events_order_id_id", "order_events", ["order_id", "id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_api_tokens_user_id_id", "api_tokens", ["user_id", "id"])


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("order_events")
    op.drop_table("orders")
    op.drop_table("trading_settings")
