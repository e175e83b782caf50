"""The PostgreSQL connection pool: a connection idle for a while is checked before use and
replaced when the database dropped it (a restart); one used moments ago is not pinged."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from finsync.infrastructure.db.engine import create_engine

pytestmark = pytest.mark.integration


async def test_an_idle_connection_the_database_dropped_is_replaced(pg_database: str | None) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    engine = create_engine(pg_database, ping_after_idle=0.0, pool_size=1, max_overflow=0)
    admin = await asyncpg.connect(pg_database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with engine.connect() as conn:
            first = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await admin.execute("SELECT pg_terminate_backend($1)", first)  # as a restart would
        async with engine.connect() as conn:  # pinged, found dead, replaced: no error
            second = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await admin.close()
        await engine.dispose()
