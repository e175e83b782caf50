"""Idempotency keys: one row per user and key, claimed atomically."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import IdempotencyRecord
from finsync.infrastructure.db.mapping import to_entity, to_row
from finsync.infrastructure.db.tables import IdempotencyKeyRow

keys = IdempotencyKeyRow.__table__  # type: ignore[attr-defined]


class SqlIdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def claim(self, record: IdempotencyRecord) -> bool:
        dialect = self._s.get_bind().dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(keys).values(to_row(record))
        stmt = stmt.on_conflict_do_nothing(index_elements=["user_id", "key"])
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def get(self, user_id: UUID, key: str) -> IdempotencyRecord | None:
        stmt = select(keys).where(keys.c.user_id == user_id, keys.c.key == key)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(IdempotencyRecord, row)

    async def complete(
        self, record_id: UUID, status_code: int, response: dict[str, Any], connection_id: UUID | None
    ) -> None:
        stmt = (
            update(keys)
            .where(keys.c.id == record_id)
            .values(status_code=status_code, response=response, connection_id=connection_id)
        )
        await self._s.execute(stmt)

    async def remove(self, record_id: UUID) -> None:
        await self._s.execute(delete(keys).where(keys.c.id == record_id))

    async def prune(self, now: datetime, limit: int) -> int:
        old = select(keys.c.id).where(keys.c.expires_at <= now).limit(limit)
        ids = list((await self._s.execute(old)).scalars())
        if ids:
            await self._s.execute(delete(keys).where(keys.c.id.in_(ids)))
        return len(ids)
