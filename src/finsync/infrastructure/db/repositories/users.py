"""Users, their sessions and refresh tokens."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import AuthSession, RefreshToken, User
from finsync.domain.errors import Conflict
from finsync.infrastructure.db import raw
from finsync.infrastructure.db.live_session import IN_SESSION
from finsync.infrastructure.db.mapping import to_entity, to_row
from finsync.infrastructure.db.tables import AuthSessionRow, RefreshTokenRow, UserRow

users = UserRow.__table__  # type: ignore[attr-defined]
tokens = RefreshTokenRow.__table__  # type: ignore[attr-defined]
sessions = AuthSessionRow.__table__  # type: ignore[attr-defined]
REGISTRATION_LOCK = 0x66696E73  # "fins": the advisory lock id that serialises registrations
_IN_SESSION_SQL, _IN_SESSION_ARGS = raw.prepared(IN_SESSION)  # every authenticated request


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, user: User) -> None:
        try:
            await self._s.execute(insert(users).values(to_row(user)))
        except IntegrityError as exc:  # the unique email index, also against a concurrent registration
            raise Conflict("a user with this email already exists") from exc

    async def get(self, user_id: UUID) -> User | None:
        row = (await self._s.execute(select(users).where(users.c.id == user_id))).mappings().first()
        return None if row is None else to_entity(User, row)

    async def get_by_email(self, email: str) -> User | None:
        stmt = select(users).where(users.c.email == email.lower())
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(User, row)

    async def get_in_session(self, user_id: UUID, session_id: UUID, now: datetime) -> User | None:
        """Asked on every authenticated request, so never cached: a revoked session is refused
        at once. PostgreSQL reads run it straight on asyncpg (``raw``)."""
        values = {"user_id": user_id, "session_id": session_id, "now": now}
        found = await raw.fetch(self._s, _IN_SESSION_SQL, [values[name] for name in _IN_SESSION_ARGS])
        if found is None:
            found = list((await self._s.execute(IN_SESSION, values)).mappings())
        return to_entity(User, found[0]) if found else None

    async def count(self) -> int:
        return int((await self._s.execute(select(func.count()).select_from(users))).scalar_one())

    async def lock_registration(self) -> None:
        if self._s.get_bind().dialect.name == "postgresql":
            await self._s.execute(select(func.pg_advisory_xact_lock(REGISTRATION_LOCK)))
        else:
            # SQLite has one writer at a time: a write statement (even one matching no row) takes
            # the database's write lock now, so a competing registration waits for our commit.
            await self._s.execute(text("UPDATE users SET id = id WHERE 0 = 1"))

    async def set_password(self, user_id: UUID, password_hash: str) -> None:
        await self._s.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))

    async def unchanged(self, user_id: UUID, password_hash: str) -> bool:
        stmt = select(users.c.id).where(
            users.c.id == user_id, users.c.password_hash == password_hash, users.c.is_active.is_(True)
        )
        if self._s.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return (await self._s.execute(stmt)).first() is not None

    async def set_base_currency(self, user_id: UUID, currency: str) -> None:
        await self._s.execute(update(users).where(users.c.id == user_id).values(base_currency=currency))


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, auth_session: AuthSession) -> None:
        await self._s.execute(insert(sessions).values(to_row(auth_session)))

    async def get(self, session_id: UUID, user_id: UUID) -> AuthSession | None:
        stmt = select(sessions).where(sessions.c.id == session_id, sessions.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(AuthSession, row)

    async def live(self, user_id: UUID, now: datetime) -> list[AuthSession]:
        stmt = (
            select(sessions)
            .where(
                sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None), sessions.c.expires_at > now
            )
            .order_by(sessions.c.id)
        )
        return [to_entity(AuthSession, row) for row in (await self._s.execute(stmt)).mappings()]

    async def touch(
        self,
        session_id: UUID,
        when: datetime,
        expires_at: datetime,
        address: str | None,
        user_agent: str | None,
    ) -> bool:
        values = {
            "last_used_at": when,
            "expires_at": expires_at,
            "address": address,
            "user_agent": user_agent,
        }
        stmt = update(sessions).where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        return bool((await self._s.execute(stmt.values(values))).rowcount)  # type: ignore[attr-defined]

    # Lock order, as in refresh (mark_used, then touch) and revoke_family: refresh tokens,
    # then the session row. The other way round, a revocation and a refresh deadlocked.
    async def revoke(self, session_id: UUID, when: datetime) -> None:
        await self._s.execute(
            update(tokens)
            .where(tokens.c.family_id == session_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        await self._s.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )

    async def revoke_others(self, user_id: UUID, keep: UUID | None, when: datetime) -> None:
        session_filter = [sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)]
        token_filter = [tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None)]
        if keep is not None:
            session_filter.append(sessions.c.id != keep)
            token_filter.append(tokens.c.family_id != keep)
        await self._s.execute(update(tokens).where(*token_filter).values(revoked_at=when))
        await self._s.execute(update(sessions).where(*session_filter).values(revoked_at=when))


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
        """Ends a refresh chain and the session (access tokens) it belongs to."""
        stmt = (
            update(tokens)
            .where(tokens.c.family_id == family_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        await self._s.execute(stmt)
        await self._s.execute(
            update(sessions)
            .where(sessions.c.id == family_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )
