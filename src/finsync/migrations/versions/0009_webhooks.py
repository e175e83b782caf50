"""webhooks, their deliveries and attempts; connection attention (error code, authorised at)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import JSONType, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def _fk(name: str, target: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Uuid(), sa.ForeignKey(target, ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("last_error_code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("authorized_at", UTCDateTime(), nullable=True))
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _fk("user_id", "users.id"),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", JSONType, nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhooks_user_id_id", "webhooks", ["user_id", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _fk("user_id", "users.id"),
        _fk("webhook_id", "webhooks.id"),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("webhook_id", "dedupe_key", name="uq_webhook_deliveries_dedupe"),
    )
    op.create_index("ix_webhook_deliveries_user_id", "webhook_deliveries", ["user_id"])
    op.create_index("ix_webhook_deliveries_webhook_id_id", "webhook_deliveries", ["webhook_id", "id"])
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _fk("user_id", "users.id"),
        _fk("delivery_id", "webhook_deliveries.id"),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_webhook_attempts_user_id", "webhook_attempts", ["user_id"])
    op.create_index("ix_webhook_attempts_delivery_id_id", "webhook_attempts", ["delivery_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("authorized_at")
        batch.drop_column("last_error_code")
