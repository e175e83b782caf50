"""Saved CSV column mappings (``import_mappings``), always scoped to their user."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.csvmapping import ColumnMapping, ImportMapping
from finsync.domain.errors import Conflict
from finsync.infrastructure.db.tables import ImportMappingRow

mappings = ImportMappingRow.__table__  # type: ignore[attr-defined]


def _entity(row: Any) -> ImportMapping:
    return ImportMapping(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        header=list(row["header"]),
        mapping=ColumnMapping.from_json(row["mapping"]),
        account_id=row["account_id"],
        created_at=row["created_at"],
    )


class SqlImportMappingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, mapping: ImportMapping) -> None:
        """One mapping per user and header (the unique key decides, also between concurrent saves)."""
        values = {
            "id": mapping.id,
            "user_id": mapping.user_id,
            "name": mapping.name,
            "header_signature": mapping.signature,
            "header": mapping.header,
            "mapping": mapping.mapping.to_json(),
            "account_id": mapping.account_id,
            "created_at": mapping.created_at,
        }
        try:
            async with self._s.begin_nested():
                await self._s.execute(insert(mappings).values(values))
        except IntegrityError:
            raise Conflict(
                "a mapping for this header already exists; "
                "delete it first (DELETE /api/v1/import-mappings/{id})"
            ) from None

    async def get(self, mapping_id: UUID, user_id: UUID) -> ImportMapping | None:
        stmt = select(mappings).where(mappings.c.id == mapping_id, mappings.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else _entity(row)

    async def for_header(self, user_id: UUID, signature: str) -> ImportMapping | None:
        stmt = select(mappings).where(mappings.c.user_id == user_id, mappings.c.header_signature == signature)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else _entity(row)

    async def list(self, user_id: UUID) -> list[ImportMapping]:
        stmt = (
            select(mappings)
            .where(mappings.c.user_id == user_id)
            .order_by(mappings.c.created_at, mappings.c.id)
        )
        return [_entity(r) for r in (await self._s.execute(stmt)).mappings()]

    async def delete(self, mapping_id: UUID, user_id: UUID) -> bool:
        stmt = delete(mappings).where(mappings.c.id == mapping_id, mappings.c.user_id == user_id)
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]
