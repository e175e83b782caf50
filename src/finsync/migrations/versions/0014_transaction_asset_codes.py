"""transactions.currency holds asset codes too (a trade paid in USDT, a BTC withdrawal)

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.alter_column("currency", existing_type=sa.String(length=3), type_=sa.String(length=16))


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.alter_column("currency", existing_type=sa.String(length=16), type_=sa.String(length=3))
