"""import_mappings: saved CSV column mappings, matched to later files by their header

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import JSONType, UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_mappings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("header_signature", sa.String(32), nullable=False),
        sa.Column("header", JSONType, nullable=False),
        sa.Column("mapping", JSONType, nullable=False),
        sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "header_signature", name="uq_import_mappings_user_header"),
    )
    op.create_index("ix_import_mappings_user_id_id", "import_mappings", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_import_mappings_user_id_id", table_name="import_mappings")
    op.drop_table("import_mappings")
