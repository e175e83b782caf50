"""auth sessions (access tokens die with their refresh chain) and a shared login throttle

Revision ID: 0006
Revises: 0003

Every live refresh chain gets a session row, so refresh tokens issued before this
migration keep working; access tokens issued before it carry no session id and are
refused (clients refresh, at most 15 minutes early).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import finsync.infrastructure.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = finsync.infrastructure.db.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", _TS(), nullable=False),
        sa.Column("last_used_at", _TS(), nullable=False),
        sa.Column("expires_at", _TS(), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.Column("revoked_at", _TS(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_auth_sessions_user_id_id", ["user_id", "id"], unique=False)
    op.execute(
        "INSERT INTO auth_sessions (id, user_id, created_at, last_used_at, expires_at) "
        "SELECT family_id, user_id, MIN(created_at), MAX(created_at), MAX(expires_at) "
        "FROM refresh_tokens WHERE revoked_at IS NULL GROUP BY family_id, user_id"
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", _TS(), nullable=False),
        sa.Column("last_failure_at", _TS(), nullable=True),
        sa.Column("succeeded_at", _TS(), nullable=True),
        sa.Column("expires_at", _TS(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_throttle_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttle_expires_at"))
    op.drop_table("login_throttle")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_auth_sessions_user_id_id")
    op.drop_table("auth_sessions")
