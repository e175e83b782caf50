"""Recorded holdings' value moves per account, currency and day, kept by PostgreSQL triggers

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import ExactDecimal

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from finsync.infrastructure.db.holding_values import PG_TRIGGERS, backfill

    op.create_table(
        "holding_value_deltas",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("value", ExactDecimal(), nullable=True),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("unpriced", sa.Integer(), nullable=False),
    )
    op.create_index("ix_holding_history_instrument", "holding_history", ["instrument_key"])
    if op.get_bind().dialect.name == "postgresql":  # SQLite values holdings in Python
        for statement in PG_TRIGGERS:
            op.execute(statement)
    backfill(op.get_bind())


def downgrade() -> None:
    from finsync.infrastructure.db.holding_values import drop

    drop(op.get_bind())
    op.drop_index("ix_holding_history_instrument", table_name="holding_history")
    op.drop_table("holding_value_deltas")
