"""idempotency keys name the connection their answer describes

A key's answer names a connection (the one a connect made, or an upload went into). Deleting
that connection deletes everything the answer described, yet a retry with the key still
replayed it: 201 naming a connection, accounts and counts that no longer exist, and nothing
written. The key now records its connection, and deleting the connection deletes the key, so
a retry runs again. Keys stored before this migration name none (they expire within 24 h).

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_idempotency_keys_connection_id"


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("connection_id", sa.Uuid(), nullable=True))
        batch.create_index(INDEX, ["connection_id"])


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_index(INDEX)
        batch.drop_column("connection_id")
