"""procrastinate's job fetch is planned afresh on every call, and only it (PostgreSQL)

procrastinate fetches a job in a PL/pgSQL function whose statement PostgreSQL switches to a
cached generic plan after five calls on a connection; that plan checked every waiting job's lock
before picking one (~300 ms of server CPU per fetch with a tick's 2,000 jobs queued, instead of a
millisecond). The queue's connections used to set ``plan_cache_mode = force_custom_plan`` for
everything, which made every other statement pay for planning too: deferring a tick's 1,000 jobs
plans procrastinate's two insert triggers 2,000 times (about twice the hand-over's server CPU).
The setting now belongs to the fetch function alone.

``CREATE OR REPLACE FUNCTION`` resets a function's settings: a later revision applying a
procrastinate migration that replaces the fetch function must set it again
(``tests/integration/test_procrastinate_jobs.py`` checks it after ``finsync migrate``).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EACH_FETCH_FUNCTION = (
    "DO $$ DECLARE f regprocedure; BEGIN "
    "FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.proname LIKE 'procrastinate_fetch_job%' "
    "LOOP EXECUTE format('ALTER FUNCTION %s {}', f); END LOOP; END $$"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_EACH_FETCH_FUNCTION.format("SET plan_cache_mode = force_custom_plan"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_EACH_FETCH_FUNCTION.format("RESET plan_cache_mode"))
