"""Cash flow's daily sums per category and per account, marked by triggers, backfilled

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import ExactDecimal

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from finsync.infrastructure.db.cash_flow import PG_TRIGGERS, SQLITE_TRIGGERS, backfill

    op.create_table(
        "cash_flow_days",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("grouping", sa.String(1), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("currency", sa.String(16), primary_key=True),
        sa.Column("key", sa.Uuid(), primary_key=True),
        sa.Column("income", ExactDecimal(), nullable=False),
        sa.Column("spending", ExactDecimal(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "cash_flow_dirty",
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("writer", sa.BigInteger(), primary_key=True, server_default="0"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)
    backfill(op.get_bind())


def downgrade() -> None:
    from finsync.infrastructure.db.cash_flow import TRIGGER_NAMES

    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGER_NAMES:
        table = "transactions" if name.startswith("transactions") else "transfer_links"
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS cash_flow_mark()")
    op.drop_table("cash_flow_dirty")
    op.drop_table("cash_flow_days")
