"""SQL unit of work: one AsyncSession, one transaction, rolled back unless committed.

Jobs asked for inside the transaction are buffered and handed to the job queue only after
the commit succeeded (Polar's "flush enqueued jobs" idea): a rollback drops them, so no
worker ever looks for a run that was never stored.
"""

from __future__ import annotations

import asyncio
from typing import Self

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from finsync.domain.errors import Conflict
from finsync.domain.jobs import Job
from finsync.domain.ports import (
    AccountRepository,
    AuthFlowRepository,
    ConnectionRepository,
    HoldingRepository,
    IdempotencyRepository,
    JobQueue,
    RefreshTokenRepository,
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
from finsync.infrastructure.db.repositories.idempotency import SqlIdempotencyRepository
from finsync.infrastructure.db.repositories.transactions import SqlTransactionRepository
from finsync.infrastructure.db.repositories.users import SqlRefreshTokenRepository, SqlUserRepository

log = structlog.get_logger(__name__)
_RETRY_STATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
_UNIQUE = ("23505", "SQLITE_CONSTRAINT_UNIQUE")  # unique_violation (PostgreSQL, SQLite)


class SqlUnitOfWork:
    users: UserRepository
    refresh_tokens: RefreshTokenRepository
    connections: ConnectionRepository
    auth_flows: AuthFlowRepository
    accounts: AccountRepository
    holdings: HoldingRepository
    transactions: TransactionRepository
    snapshots: SnapshotRepository
    sync_runs: SyncRunRepository
    idempotency: IdempotencyRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession], jobs: JobQueue | None = None) -> None:
        self._sessions = sessions
        self._queue = jobs
        self._jobs: list[Job] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        s = self.session
        self.users = SqlUserRepository(s)
        self.refresh_tokens = SqlRefreshTokenRepository(s)
        self.connections = SqlConnectionRepository(s)
        self.auth_flows = SqlAuthFlowRepository(s)
        self.accounts = SqlAccountRepository(s)
        self.holdings = SqlHoldingRepository(s)
        self.transactions = SqlTransactionRepository(s)
        self.snapshots = SqlSnapshotRepository(s)
        self.sync_runs = SqlSyncRunRepository(s)
        self.idempotency = SqlIdempotencyRepository(s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._jobs.clear()
        try:
            await self.session.rollback()
        finally:
            await self.session.close()
        exc = exc_info[1] if len(exc_info) > 1 else None
        if isinstance(exc, Exception) and _driver_state(exc) in _RETRY_STATES:
            raise Conflict(
                "another change to the same data was being written at the same time; "
                "nothing of this one was saved, try again"
            ) from exc
        if isinstance(exc, Exception) and _driver_state(exc) in _UNIQUE:
            raise Conflict(
                "the same item was being created at the same time; nothing of this one was saved, try again"
            ) from exc

    def enqueue(self, job: Job) -> None:
        if self._queue is None:
            raise RuntimeError("this unit of work has no job queue")
        self._jobs.append(job)

    async def commit(self) -> None:
        await self.session.commit()
        jobs, self._jobs = self._jobs, []
        if jobs:
            await _hand_over(self._queue, jobs)  # type: ignore[arg-type]

    async def rollback(self) -> None:
        self._jobs.clear()
        await self.session.rollback()


async def _hand_over(queue: JobQueue, jobs: list[Job], parallel: int = 4) -> None:
    """Each job on its own (a queueing-lock clash means "already queued", not a failure of the
    others), a few at a time: a tick's thousand jobs should not take a thousand round trips."""
    slots = asyncio.Semaphore(parallel)

    async def one(job: Job) -> None:
        async with slots:
            try:
                await queue.enqueue(job)
            except Exception:  # committed work stands; the reaper fails a run whose job never came
                log.exception("job_enqueue_failed", kind=job.kind)

    await asyncio.gather(*(one(job) for job in jobs))


def _driver_state(exc: BaseException) -> str | None:
    """The database's error code: a deadlock or serialisation abort, a unique violation..."""
    seen: BaseException | None = exc
    for _ in range(4):  # the driver's error, possibly wrapped by SQLAlchemy (.orig or __cause__)
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "sqlite_errorname", None)
        if code:
            return str(code)
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None
