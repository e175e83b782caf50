"""one connection per login, one account per provider account, idempotency keys, holding keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import JSONType, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILE_PROVIDERS = ("ofx",)  # file providers that existed when this migration was written


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("identity", sa.String(64), nullable=True))
    # The oldest file connection of each user and format becomes the one; later duplicates
    # (made by the race this migration closes) keep their data and no identity.
    op.execute(
        sa.text(
            "UPDATE connections SET identity = 'files' WHERE provider IN :providers AND NOT EXISTS ("
            " SELECT 1 FROM connections older WHERE older.user_id = connections.user_id"
            " AND older.provider = connections.provider AND older.id < connections.id)"
        ).bindparams(sa.bindparam("providers", FILE_PROVIDERS, expanding=True))
    )
    with op.batch_alter_table("connections") as batch:
        batch.create_unique_constraint(
            "uq_connections_user_provider_identity", ["user_id", "provider", "identity"]
        )

    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("provider", sa.String(64), nullable=True))
    op.execute(
        "UPDATE accounts SET provider = "
        "(SELECT connections.provider FROM connections WHERE connections.id = accounts.connection_id)"
    )
    # Accounts a user already holds twice (the bug this closes): all but the oldest get a
    # visible suffix, so the constraint holds and nothing is deleted; docs/importing.md says
    # how to clean up.
    op.execute(
        "UPDATE accounts SET provider_account_id = "
        "substr(provider_account_id, 1, 160) || '~duplicate-' || substr(CAST(id AS VARCHAR), 1, 8) "
        "WHERE EXISTS (SELECT 1 FROM accounts older WHERE older.user_id = accounts.user_id"
        " AND older.provider = accounts.provider"
        " AND older.provider_account_id = accounts.provider_account_id AND older.id < accounts.id)"
    )
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("provider", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint(
            "uq_accounts_user_provider_id", ["user_id", "provider", "provider_account_id"]
        )

    with op.batch_alter_table("holdings") as batch:
        batch.add_column(sa.Column("position_key", sa.String(200), nullable=True))

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("holdings") as batch:
        batch.drop_column("position_key")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("uq_accounts_user_provider_id", type_="unique")
        batch.drop_column("provider")
    with op.batch_alter_table("connections") as batch:
        batch.drop_constraint("uq_connections_user_provider_identity", type_="unique")
        batch.drop_column("identity")
