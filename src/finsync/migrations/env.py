"""Alembic environment: async engine, batch mode on SQLite so ALTERs work there too.

Batch mode on SQLite rebuilds a table (copy, drop, rename): with foreign keys enforced,
dropping the old copy would cascade into every child table and delete their rows. So
foreign keys are off while migrating (the only way SQLite allows a rebuild), and checked
with ``PRAGMA foreign_key_check`` before the migration commits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from finsync.config import Settings
from finsync.infrastructure.db.engine import create_engine
from finsync.infrastructure.db.tables import metadata

config = context.config


def _url() -> str:
    return str(config.attributes.get("database_url") or Settings().database_url)


def _configure(connection: Connection | None = None, **kw: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        **kw,
    )


def run_offline() -> None:
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:  # outside any transaction: inside one SQLite ignores it
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise RuntimeError(f"migration left {len(broken)} rows pointing at missing parents")


async def run_online() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
