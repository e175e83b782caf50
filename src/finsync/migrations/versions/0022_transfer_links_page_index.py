"""transfer_links: indexes that give a user's links in page order (by id, and by status and id)

``GET /transfers`` pages by id, newest first, optionally of one status. The only index was
(user_id, status): every page read all of the user's links and sorted them, so a deep page
cost what the whole history did.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_transfer_links_user", table_name="transfer_links")
    op.create_index("ix_transfer_links_user_status_id", "transfer_links", ["user_id", "status", "id"])
    op.create_index("ix_transfer_links_user_id_id", "transfer_links", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_transfer_links_user_id_id", table_name="transfer_links")
    op.drop_index("ix_transfer_links_user_status_id", table_name="transfer_links")
    op.create_index("ix_transfer_links_user", "transfer_links", ["user_id", "status"])
