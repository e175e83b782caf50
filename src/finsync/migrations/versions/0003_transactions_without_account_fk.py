"""transactions without a foreign key to accounts, with default timestamps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 22:40:00

PostgreSQL checks a foreign key with one trigger call per inserted row; on a
100,000-transaction import that was 0.3-0.5 s of the COPY's ~1.2 s. The repository
keeps the integrity instead: it locks the account row while inserting, and deleting a
connection locks its accounts before deleting their transactions (see
docs/architecture.md, "Decisions"). created_at/updated_at default to the transaction's
time, so bulk COPYs need not encode two timestamps per row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 left the constraint unnamed: PostgreSQL named it, SQLite's reflection needs a convention.
_PG_NAME = "transactions_account_id_fkey"
_NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_SQLITE_NAME = "fk_transactions_account_id_accounts"
_TIMESTAMPS = ("created_at", "updated_at")
_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(_PG_NAME, "transactions", type_="foreignkey")
        for column in _TIMESTAMPS:
            op.alter_column("transactions", column, server_default=_NOW)
        return
    with op.batch_alter_table("transactions", naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint(_SQLITE_NAME, type_="foreignkey")
        for column in _TIMESTAMPS:
            batch_op.alter_column(column, server_default=_NOW)


def downgrade() -> None:
    # Rows whose account is gone would make the constraint fail to build: drop them first.
    op.execute("DELETE FROM transactions WHERE account_id NOT IN (SELECT id FROM accounts)")
    name = _PG_NAME if op.get_bind().dialect.name == "postgresql" else _SQLITE_NAME
    with op.batch_alter_table("transactions") as batch_op:
        batch_op.create_foreign_key(name, "accounts", ["account_id"], ["id"], ondelete="CASCADE")
        for column in _TIMESTAMPS:
            batch_op.alter_column(column, server_default=None)
