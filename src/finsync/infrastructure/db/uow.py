"""SQL unit of work: one AsyncSession, one transaction, rolled back unless committed."""

from __future__ import annotations

from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from finsync.domain.errors import Conflict
from finsync.domain.ports import (
    AccountRepository,
    AuthFlowRepository,
    ConnectionRepository,
    HoldingRepository,
    LoginAttemptRepository,
    RefreshTokenRepository,
    SessionRepository,
    SnapshotRepository,
    SyncRunRepository,
    TransactionRepository,
    UserRepository,
)
from finsync.infrastructure.db.repositories.accounts import (
    SqlAccountRepository,
    SqlHoldingRepository,
    SqlSnapshotRepository,
)
from finsync.infrastructure.db.repositories.connections import (
    SqlAuthFlowRepository,
    SqlConnectionRepository,
    SqlSyncRunRepository,
)
from finsync.infrastructure.db.repositories.login_attempts import SqlLoginAttemptRepository
from finsync.infrastructure.db.repositories.transactions import SqlTransactionRepository
from finsync.infrastructure.db.repositories.users import (
    SqlRefreshTokenRepository,
    SqlSessionRepository,
    SqlUserRepository,
)

_RETRY_STATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


class SqlUnitOfWork:
    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    sessions: SessionRepository
    login_attempts: LoginAttemptRepository
    connections: ConnectionRepository
    auth_flows: AuthFlowRepository
    accounts: AccountRepository
    holdings: HoldingRepository
    transactions: TransactionRepository
    snapshots: SnapshotRepository
    sync_runs: SyncRunRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        s = self.session
        self.users = SqlUserRepository(s)
        self.refresh_tokens = SqlRefreshTokenRepository(s)
        self.sessions = SqlSessionRepository(s)
        self.login_attempts = SqlLoginAttemptRepository(s)
        self.connections = SqlConnectionRepository(s)
        self.auth_flows = SqlAuthFlowRepository(s)
        self.accounts = SqlAccountRepository(s)
        self.holdings = SqlHoldingRepository(s)
        self.transactions = SqlTransactionRepository(s)
        self.snapshots = SqlSnapshotRepository(s)
        self.sync_runs = SqlSyncRunRepository(s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()
        exc = exc_info[1] if len(exc_info) > 1 else None
        if isinstance(exc, Exception) and _must_retry(exc):
            raise Conflict(
                "another change to the same data was being written at the same time; "
                "nothing of this one was saved, try again"
            ) from exc

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


def _must_retry(exc: BaseException) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock or a serialisation conflict."""
    seen: BaseException | None = exc
    for _ in range(4):  # the driver's error, possibly wrapped by SQLAlchemy (.orig or __cause__)
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) in _RETRY_STATES:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False
