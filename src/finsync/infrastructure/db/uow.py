"""SQL unit of work: one AsyncSession, one transaction, rolled back unless committed.

Jobs asked for inside the transaction are buffered and handed to the job queue only after
the commit succeeded (Polar's "flush enqueued jobs" idea): a rollback drops them, so no
worker ever looks for a run that was never stored.
"""

from __future__ import annotations

from typing import Self

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from finsync.domain.analytics_ports import (
    AnalyticsRepository,
    CategoryRepository,
    LabelRepository,
    MarketRepository,
    PositionRepository,
    RuleRepository,
    TransferRepository,
)
from finsync.domain.errors import Conflict, FinsyncError
from finsync.domain.jobs import Job
from finsync.domain.ports import (
    AccountRepository,
    ApiTokenRepository,
    AuthFlowRepository,
    ConnectionRepository,
    HoldingRepository,
    IdempotencyRepository,
    ImportMappingRepository,
    JobQueue,
    LoginAttemptRepository,
    OperatorRepository,
    OrderFeed,
    RefreshTokenRepository,
    SessionRepository,
    SnapshotRepository,
    SyncRunRepository,
    TradingRepository,
    TransactionRepository,
    UserDataRepository,
    UserRepository,
    WebhookRepository,
)
from finsync.infrastructure.db import cash_flow, raw
from finsync.infrastructure.db.repositories.accounts import (
    SqlAccountRepository,
    SqlHoldingRepository,
    SqlSnapshotRepository,
)
from finsync.infrastructure.db.repositories.analytics import SqlAnalyticsRepository
from finsync.infrastructure.db.repositories.connections import (
    SqlAuthFlowRepository,
    SqlConnectionRepository,
    SqlSyncRunRepository,
)
from finsync.infrastructure.db.repositories.idempotency import SqlIdempotencyRepository
from finsync.infrastructure.db.repositories.import_mappings import SqlImportMappingRepository
from finsync.infrastructure.db.repositories.labels import (
    SqlCategoryRepository,
    SqlLabelRepository,
    SqlRuleRepository,
)
from finsync.infrastructure.db.repositories.login_attempts import SqlLoginAttemptRepository
from finsync.infrastructure.db.repositories.market import SqlMarketRepository, SqlPositionRepository
from finsync.infrastructure.db.repositories.operators import SqlOperatorRepository
from finsync.infrastructure.db.repositories.trading import SqlApiTokenRepository, SqlTradingRepository
from finsync.infrastructure.db.repositories.transactions import SqlTransactionRepository
from finsync.infrastructure.db.repositories.transfers import SqlTransferRepository
from finsync.infrastructure.db.repositories.userdata import SqlUserDataRepository
from finsync.infrastructure.db.repositories.users import (
    SqlRefreshTokenRepository,
    SqlSessionRepository,
    SqlUserRepository,
)
from finsync.infrastructure.db.repositories.webhooks import SqlWebhookRepository

log = structlog.get_logger(__name__)
# deadlock_detected, serialization_failure
_RETRY_STATES: frozenset[str | int] = frozenset({"40P01", "40001"})
# foreign_key_violation (PostgreSQL); SQLITE_CONSTRAINT_FOREIGNKEY
_VANISHED: frozenset[str | int] = frozenset({"23503", 787})
# unique_violation (PostgreSQL); SQLITE_CONSTRAINT_UNIQUE
_DUPLICATE: frozenset[str | int] = frozenset({"23505", 2067})
# Transactions written by one unit of work above which the table's statistics are refreshed.
ANALYZE_AFTER = 5_000


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
    idempotency: IdempotencyRepository
    user_data: UserDataRepository
    operators: OperatorRepository
    webhooks: WebhookRepository
    market: MarketRepository
    positions: PositionRepository
    categories: CategoryRepository
    rules: RuleRepository
    labels: LabelRepository
    transfers: TransferRepository
    analytics: AnalyticsRepository
    import_mappings: ImportMappingRepository
    trading: TradingRepository
    api_tokens: ApiTokenRepository

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        jobs: JobQueue | None = None,
        feed: OrderFeed | None = None,
        reader: raw.DriverPool | None = None,
    ) -> None:
        self._sessions = sessions
        self._queue = jobs
        self._feed = feed  # SQLite: this process's order streams hear status changes from it
        self._jobs: list[Job] = []
        self._reader = reader  # a read unit of work on PostgreSQL: the hottest reads, on asyncpg

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        s = self.session
        if self._reader is not None:
            s.info[raw.READER] = self._reader
        self.users = SqlUserRepository(s)
        self.refresh_tokens = SqlRefreshTokenRepository(s)
        self.sessions = SqlSessionRepository(s)
        self.login_attempts = SqlLoginAttemptRepository(s)
        self.connections = SqlConnectionRepository(s)
        self.auth_flows = SqlAuthFlowRepository(s)
        self.accounts = SqlAccountRepository(s)
        self.holdings = SqlHoldingRepository(s)
        self.transactions = self._transactions = SqlTransactionRepository(s)
        self.snapshots = SqlSnapshotRepository(s)
        self.sync_runs = SqlSyncRunRepository(s)
        self.idempotency = SqlIdempotencyRepository(s)
        self.user_data = SqlUserDataRepository(s)
        self.operators = SqlOperatorRepository(s)
        self.webhooks = SqlWebhookRepository(s)
        self.market = SqlMarketRepository(s)
        self.positions = SqlPositionRepository(s)
        self.categories = SqlCategoryRepository(s)
        self.rules = SqlRuleRepository(s)
        self.labels = SqlLabelRepository(s)
        self.transfers = SqlTransferRepository(s)
        self.analytics = SqlAnalyticsRepository(s)
        self.import_mappings = SqlImportMappingRepository(s)
        self.trading = self._trading = SqlTradingRepository(s)
        self.api_tokens = SqlApiTokenRepository(s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._jobs.clear()
        if self.session.in_transaction():  # close() rolls back what is not committed
            await self.session.close()  # (one hop into SQLAlchemy's greenlet, not two per request)
        exc = exc_info[1] if len(exc_info) > 1 else None
        if isinstance(exc, FinsyncError):  # a repository already said what went wrong
            return
        if isinstance(exc, Exception) and _caused_by(exc, _RETRY_STATES):
            raise Conflict(
                "another change to the same data was being written at the same time; "
                "nothing of this one was saved, try again"
            ) from exc
        if isinstance(exc, Exception) and _caused_by(exc, _DUPLICATE):
            raise Conflict(
                "the same item was being created at the same time; nothing of this one was saved, try again"
            ) from exc
        if isinstance(exc, Exception) and _caused_by(exc, _VANISHED):
            # Our writes reference only rows they just read: a foreign key fails when one of them
            # was deleted meanwhile (a connection, or the whole user, deleted during an import).
            raise Conflict(
                "what this change refers to was deleted meanwhile; nothing of it was saved"
            ) from exc

    def enqueue(self, job: Job) -> None:
        if self._queue is None:
            raise RuntimeError("this unit of work has no job queue")
        self._jobs.append(job)

    async def commit(self) -> None:
        if self.session.info.get(cash_flow.WRITTEN):  # transactions or transfer links were written
            await cash_flow.refresh(self.session)
        await self.session.commit()
        jobs, self._jobs = self._jobs, []
        notes, self._trading.notes = self._trading.notes, []
        if notes and self._feed is not None:
            self._feed.publish(notes)
        if jobs:
            await _hand_over(self._queue, jobs)  # type: ignore[arg-type]
        if self._transactions.written >= ANALYZE_AFTER:
            await self._refresh_statistics()

    async def _refresh_statistics(self) -> None:
        """After a bulk import or sync, in its own short transaction right after the commit:
        inside the import's transaction, ANALYZE's table lock would serialise concurrent
        imports until they commit. A failure leaves the committed work standing."""
        try:
            await self._transactions.refresh_statistics()
            await self.session.commit()
        except Exception:
            log.exception("statistics_refresh_failed")
            await self.session.rollback()

    async def rollback(self) -> None:
        self._jobs.clear()
        self.session.info.pop(cash_flow.WRITTEN, None)
        self._trading.notes.clear()
        if self.session.in_transaction():  # nothing begun, nothing to roll back (and no hop)
            await self.session.rollback()


async def _hand_over(queue: JobQueue, jobs: list[Job]) -> None:
    """All at once (a tick's thousand jobs in one round trip on procrastinate); a queueing-lock
    clash of one job means "already queued" for that one, never a failure of the others."""
    try:
        await queue.enqueue_many(jobs)
    except Exception:  # committed work stands; the reaper fails a run whose job never came
        log.exception("job_enqueue_failed", kinds=sorted({job.kind for job in jobs}), count=len(jobs))


def _caused_by(exc: BaseException, codes: frozenset[str | int]) -> bool:
    """The driver's error (possibly wrapped by SQLAlchemy) carries one of ``codes``."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) in codes or getattr(seen, "sqlite_errorcode", None) in codes:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False
