"""holdings.price_currency: the currency of a holding's per-share prices

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-29 12:00:00

Per-share prices (average cost, current price) are quoted in the instrument's currency,
which for a foreign share differs from the holding's currency (that of its market value
and P&L). Existing rows get their holding currency, which is what every provider but
Trading 212 reports anyway; Trading 212 holdings are corrected by their next sync, which
replaces the holdings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holdings") as batch_op:
        batch_op.add_column(sa.Column("price_currency", sa.String(length=3), nullable=True))
    op.execute("UPDATE holdings SET price_currency = currency")
    with op.batch_alter_table("holdings") as batch_op:
        batch_op.alter_column("price_currency", existing_type=sa.String(length=3), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("holdings") as batch_op:
        batch_op.drop_column("price_currency")
