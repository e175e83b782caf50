"""orders: a partial index for the open-order poller (orders not final yet)

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The text of finsync.infrastructure.db.tables.UNSETTLED, which the poller's query repeats.
UNSETTLED = "status IN ('pending_submit', 'unknown', 'new', 'partially_filled')"


def upgrade() -> None:
    op.create_index(
        "ix_orders_unsettled",
        "orders",
        ["id"],
        postgresql_where=sa.text(UNSETTLED),
        sqlite_where=sa.text(UNSETTLED),
    )


def downgrade() -> None:
    op.drop_index("ix_orders_unsettled", table_name="orders")
