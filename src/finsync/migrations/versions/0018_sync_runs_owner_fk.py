"""sync_runs: one composite foreign key (user_id, connection_id) → connections(user_id, id)

Revision ID: 0018
Revises: 0017

A run referenced its connection and its user by two foreign keys: two checks per inserted
run, 2,000 for a scheduler tick queuing 1,000 syncs, and nothing stopped a run naming a
user who does not own its connection. One composite key does one check and makes that
impossible; deleting a user still removes the runs (users → connections → runs cascade).
``ix_connections_user_id_id`` becomes unique (its columns include the primary key, so no
row changes meaning) because a foreign key needs a unique parent key.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 left the keys unnamed: PostgreSQL named them, SQLite's reflection needs a convention.
_NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_OLD = {
    "postgresql": ("sync_runs_connection_id_fkey", "sync_runs_user_id_fkey"),
    "sqlite": ("fk_sync_runs_connection_id_connections", "fk_sync_runs_user_id_users"),
}
OWNER_FK = "fk_sync_runs_connection_owner"


def upgrade() -> None:
    # A run's user is its connection's owner (every writer sets it so): repair any that is not.
    op.execute(
        "UPDATE sync_runs SET user_id = (SELECT user_id FROM connections "
        "WHERE connections.id = sync_runs.connection_id) WHERE user_id <> (SELECT user_id "
        "FROM connections WHERE connections.id = sync_runs.connection_id)"
    )
    with op.batch_alter_table("connections") as batch:
        batch.drop_index("ix_connections_user_id_id")
        batch.create_index("uq_connections_user_id_id", ["user_id", "id"], unique=True)
    with op.batch_alter_table("sync_runs", naming_convention=_NAMING) as batch:
        for name in _OLD[op.get_bind().dialect.name]:
            batch.drop_constraint(name, type_="foreignkey")
        batch.create_foreign_key(
            OWNER_FK, "connections", ["user_id", "connection_id"], ["user_id", "id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    connection_fk, user_fk = _OLD[op.get_bind().dialect.name]
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_constraint(OWNER_FK, type_="foreignkey")
        batch.create_foreign_key(connection_fk, "connections", ["connection_id"], ["id"], ondelete="CASCADE")
        batch.create_foreign_key(user_fk, "users", ["user_id"], ["id"], ondelete="CASCADE")
    with op.batch_alter_table("connections") as batch:
        batch.drop_index("uq_connections_user_id_id")
        batch.create_index("ix_connections_user_id_id", ["user_id", "id"], unique=False)
