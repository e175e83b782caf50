"""Login-throttle rows: locked per key so that concurrent attempts count one after another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import LoginAttempts
from finsync.infrastructure.db.mapping import to_entity
from finsync.infrastructure.db.tables import LoginThrottleRow

table = LoginThrottleRow.__table__  # type: ignore[attr-defined]
_COLUMNS = [f.name for f in fields(LoginAttempts) if f.name != "key"]


class SqlLoginAttemptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, LoginAttempts]:
        ordered = sorted(set(keys))  # one lock order for everyone: no deadlock between attempts
        # First a write: on SQLite it takes the database's write lock for the whole transaction.
        await self._s.execute(delete(table).where(table.c.expires_at < now))
        dialect = self._s.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        blank = [{"key": k, "failures": 0, "window_start": now, "expires_at": now} for k in ordered]
        await self._s.execute(insert(table).values(blank).on_conflict_do_nothing(index_elements=["key"]))
        stmt = select(table).where(table.c.key.in_(ordered)).order_by(table.c.key)
        if dialect == "postgresql":
            stmt = stmt.with_for_update()
        rows = (await self._s.execute(stmt)).mappings().all()
        return {row["key"]: to_entity(LoginAttempts, row) for row in rows}

    async def save(self, rows: Sequence[LoginAttempts]) -> None:
        if not rows:
            return
        stmt = (
            update(table)
            .where(table.c.key == bindparam("k"))
            .values({name: bindparam(name) for name in _COLUMNS})
        )
        params = [{"k": row.key, **{name: getattr(row, name) for name in _COLUMNS}} for row in rows]
        await self._s.execute(stmt, params)
