"""sync schedules, queued runs, shared rate budgets, procrastinate's job tables (PostgreSQL)

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from finsync.infrastructure.db.types import JSONType, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEDULABLE = "sync_enabled AND status IN ('active', 'error')"
ACTIVE_RUN = "status IN ('queued', 'running')"
FILE_PROVIDERS = ("ofx",)  # never scheduled
# Provider defaults when this migration was written; later ones come from provider metadata.
FIRST_INTERVAL = {"gocardless": timedelta(hours=8)}


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("sync_interval_minutes", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("sync_enabled", sa.Boolean(), nullable=False, server_default=sa.text("true"))
        )
        batch.add_column(sa.Column("next_sync_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("failure_count", sa.Integer(), nullable=False, server_default="0"))
    _first_schedule()
    op.create_index(
        "ix_connections_due",
        "connections",
        ["next_sync_at"],
        postgresql_where=sa.text(SCHEDULABLE),
        sqlite_where=sa.text(SCHEDULABLE),
    )

    # Migrations run while the service is stopped: a run still 'running' was interrupted.
    op.execute(
        "UPDATE sync_runs SET status = 'failed', error = 'interrupted: the service stopped during this run' "
        "WHERE status = 'running'"
    )
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("queued_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_index(
            "uq_sync_runs_one_running",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )
    op.create_index(
        "uq_sync_runs_one_active",
        "sync_runs",
        ["connection_id"],
        unique=True,
        postgresql_where=sa.text(ACTIVE_RUN),
        sqlite_where=sa.text(ACTIVE_RUN),
    )
    op.create_index(
        "ix_sync_runs_active",
        "sync_runs",
        ["started_at"],
        postgresql_where=sa.text(ACTIVE_RUN),
        sqlite_where=sa.text(ACTIVE_RUN),
    )

    op.create_table(
        "rate_budgets",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("sent", JSONType, nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _install_procrastinate()


def _first_schedule() -> None:
    """Existing provider connections sync one interval after their last sync (or now)."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, provider, last_synced_at FROM connections").columns(
            sa.column("id", sa.Uuid()), sa.column("provider"), sa.column("last_synced_at", UTCDateTime())
        )
    ).all()
    now = datetime.now(UTC)
    updates = []
    for row in rows:
        if row.provider not in FILE_PROVIDERS:
            every = FIRST_INTERVAL.get(row.provider, timedelta(hours=1))
            minutes = int(every.total_seconds() // 60)
            updates.append({"id": row.id, "at": (row.last_synced_at or now) + every, "minutes": minutes})
    if updates:
        stmt = sa.text(
            "UPDATE connections SET next_sync_at = :at, sync_interval_minutes = :minutes WHERE id = :id"
        ).bindparams(sa.bindparam("id", type_=sa.Uuid()), sa.bindparam("at", type_=UTCDateTime()))
        bind.execute(stmt, updates)


def _install_procrastinate() -> None:
    """procrastinate's own schema (its jobs, workers and periodic tables), once: ``finsync migrate``
    is the one command. A later procrastinate upgrade adds its migration files in a revision."""
    from procrastinate.schema import SchemaManager

    bind = op.get_bind()
    if bind.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
        # A script of many statements: asyncpg runs it unprepared, on this migration's transaction.
        schema = SchemaManager.get_schema()
        bind.connection.dbapi_connection.run_async(lambda driver: driver.execute(schema))  # type: ignore[union-attr]


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, "
            "procrastinate_jobs, procrastinate_workers CASCADE"
        )
        op.execute(
            "DO $$ DECLARE f record; BEGIN FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p "
            "WHERE p.proname LIKE 'procrastinate%' LOOP EXECUTE 'DROP FUNCTION ' || f.sig || ' CASCADE'; "
            "END LOOP; END $$"
        )
        op.execute(
            "DROP TYPE IF EXISTS procrastinate_job_status, procrastinate_job_event_type, "
            "procrastinate_job_to_defer_v1 CASCADE"
        )
    op.drop_table("rate_budgets")
    op.drop_index("ix_sync_runs_active", table_name="sync_runs")
    op.drop_index("uq_sync_runs_one_active", table_name="sync_runs")
    op.execute(
        "UPDATE sync_runs SET status = 'failed', error = 'interrupted: the service stopped during this run' "
        "WHERE status IN ('queued', 'running')"
    )
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("attempts")
        batch.drop_column("queued_at")
        batch.create_index(
            "uq_sync_runs_one_running",
            ["connection_id"],
            unique=True,
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )
    op.drop_index("ix_connections_due", table_name="connections")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("failure_count")
        batch.drop_column("next_sync_at")
        batch.drop_column("sync_enabled")
        batch.drop_column("sync_interval_minutes")
