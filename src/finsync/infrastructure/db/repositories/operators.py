"""What the operator's command line reads and writes across users: the user list, the
active switch, and every encrypted value at rest (for key rotation)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.ports import StoredSecret, UserSummary
from finsync.infrastructure.db.tables import (
    AuthFlowRow,
    AuthSessionRow,
    ConnectionRow,
    RefreshTokenRow,
    UserRow,
    WebhookRow,
)

users: Table = UserRow.__table__  # type: ignore[attr-defined]
connections: Table = ConnectionRow.__table__  # type: ignore[attr-defined]
flows: Table = AuthFlowRow.__table__  # type: ignore[attr-defined]
tokens: Table = RefreshTokenRow.__table__  # type: ignore[attr-defined]
sessions: Table = AuthSessionRow.__table__  # type: ignore[attr-defined]
# Every column that holds ciphertext, by the kind a StoredSecret names.
ENCRYPTED: dict[str, tuple[Table, str]] = {
    "connection": (connections, "credentials"),
    "auth_flow": (flows, "flow_data"),
    "webhook": (WebhookRow.__table__, "secret"),  # type: ignore[attr-defined]
}


class SqlOperatorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def users(self) -> list[UserSummary]:
        count = (
            select(func.count())
            .select_from(connections)
            .where(connections.c.user_id == users.c.id)
            .scalar_subquery()
        )
        stmt = select(users.c.id, users.c.email, users.c.is_active, users.c.created_at, count.label("n"))
        return [
            UserSummary(
                id=r.id, email=r.email, is_active=r.is_active, created_at=r.created_at, connections=r.n
            )
            for r in await self._s.execute(stmt.order_by(users.c.email))
        ]

    async def set_active(self, user_id: UUID, active: bool, when: datetime) -> None:
        await self._s.execute(update(users).where(users.c.id == user_id).values(is_active=active))
        if not active:  # every session ends: neither a refresh nor (once enabled again) an access token
            for table in (tokens, sessions):
                await self._s.execute(
                    update(table)
                    .where(table.c.user_id == user_id, table.c.revoked_at.is_(None))
                    .values(revoked_at=when)
                )

    async def secrets(self) -> list[StoredSecret]:
        found: list[StoredSecret] = []
        for kind, (table, column) in ENCRYPTED.items():
            stmt = (
                select(table.c.id, table.c[column], users.c.email)
                .join(users, users.c.id == table.c.user_id)
                .where(table.c[column].is_not(None))
                .order_by(table.c.id)
            )
            found += [
                StoredSecret(kind=kind, id=row_id, owner=email, ciphertext=bytes(value))
                for row_id, value, email in await self._s.execute(stmt)
            ]
        return found

    async def replace_secret(self, secret: StoredSecret, ciphertext: bytes) -> bool:
        table, column = ENCRYPTED[secret.kind]
        stmt = (
            update(table)
            .where(table.c.id == secret.id, table.c[column] == secret.ciphertext)
            .values({column: ciphertext})
        )
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]
