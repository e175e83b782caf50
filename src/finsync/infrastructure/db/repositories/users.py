"""Users and refresh tokens."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import RefreshToken, User
from finsync.infrastructure.db.mapping import to_entity, to_row
from finsync.infrastructure.db.tables import RefreshTokenRow, UserRow

users = UserRow.__table__  # type: ignore[attr-defined]
tokens = RefreshTokenRow.__table__  # type: ignore[attr-defined]


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, user: User) -> None:
        await self._s.execute(insert(users).values(to_row(user)))

    async def get(self, user_id: UUID) -> User | None:
        row = (await self._s.execute(select(users).where(users.c.id == user_id))).mappings().first()
        return None if row is None else to_entity(User, row)

    async def get_by_email(self, email: str) -> User | None:
        stmt = select(users).where(users.c.email == email.lower())
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(User, row)

    async def count(self) -> int:
        return int((await self._s.execute(select(func.count()).select_from(users))).scalar_one())


class SqlRefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, token: RefreshToken) -> None:
        await self._s.execute(insert(tokens).values(to_row(token)))

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        stmt = select(tokens).where(tokens.c.token_hash == token_hash)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(RefreshToken, row)

    async def mark_used(self, token_id: UUID, when: datetime) -> bool:
        """Atomically claim a token: False when a concurrent request already used it."""
        stmt = (
            update(tokens)
            .where(tokens.c.id == token_id, tokens.c.used_at.is_(None), tokens.c.revoked_at.is_(None))
            .values(used_at=when)
        )
        result = await self._s.execute(stmt)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_family(self, family_id: UUID, when: datetime) -> None:
        stmt = (
            update(tokens)
            .where(tokens.c.family_id == family_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        await self._s.execute(stmt)
