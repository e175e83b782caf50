"""SyncConnection: fetch everything from the provider, then write it in one transaction.

Fetching completes before any write, so a provider failure half-way leaves stored
data exactly as it was; the single write transaction makes a crash leave either the
old or the new state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import structlog

from finsync.domain.entities import Account, BalanceSnapshot, Connection, SyncRun, utcnow
from finsync.domain.enums import (
    AuthType,
    Capability,
    ConnectionStatus,
    SnapshotSource,
    SyncStatus,
    SyncTrigger,
)
from finsync.domain.errors import (
    AuthError,
    BadData,
    Conflict,
    FinsyncError,
    InvalidInput,
    NeedsReauthorization,
    NotFound,
    ProviderError,
    RateLimited,
)
from finsync.domain.ports import (
    Clock,
    CredentialCipher,
    JobQueue,
    ProviderGateway,
    ProviderInfo,
    ProviderSession,
    UnitOfWork,
    UnitOfWorkFactory,
)
from finsync.domain.records import (
    ProviderAccount,
    ProviderHolding,
    TransactionBatch,
    UpsertCounts,
)

log = structlog.get_logger(__name__)

SNAPSHOT_SOURCE = {
    SyncTrigger.INITIAL: SnapshotSource.INITIAL,
    SyncTrigger.MANUAL: SnapshotSource.MANUAL,
    SyncTrigger.SCHEDULED: SnapshotSource.SCHEDULED,
    SyncTrigger.IMPORT: SnapshotSource.IMPORT,
}


@dataclass(slots=True)
class Fetched:
    """Everything one sync read from a provider, keyed by provider account id."""

    accounts: list[ProviderAccount]
    holdings: dict[str, list[ProviderHolding]] = field(default_factory=dict)
    transactions: dict[str, TransactionBatch] = field(default_factory=dict)
    # Where a snapshot's figures come from when not the stored account (an older statement
    # must record its own balance, while the account keeps the newer one).
    snapshot_from: dict[str, ProviderAccount] = field(default_factory=dict)


def record_counts(run: SyncRun, entity: str, counts: UpsertCounts) -> None:
    for name in ("inserted", "updated", "unchanged", "deleted"):
        key = f"{entity}_{name}"
        run.counts[key] = run.counts.get(key, 0) + getattr(counts, name)


async def write_fetched(
    uow: UnitOfWork,
    connection: Connection,
    run: SyncRun,
    fetched: Fetched,
    source: SnapshotSource,
    now: datetime,
) -> list[Account]:
    """Persist one fetch: upsert accounts, replace holdings, upsert transactions, snapshot balances.

    Shared by provider syncs and file imports so both keep the same guarantees.
    """
    accounts, counts = await uow.accounts.upsert(connection, fetched.accounts)
    record_counts(run, "accounts", counts)
    snapshots = []
    for account in accounts:
        key = account.provider_account_id
        if key in fetched.holdings:
            record_counts(run, "holdings", await uow.holdings.replace(account, fetched.holdings[key]))
        batch = fetched.transactions.get(key)
        if batch is not None:
            tx_counts = await uow.transactions.upsert(account, batch.transactions)
            for group in batch.deferred:
                tx_counts.add(await uow.transactions.upsert_deferred(account, group))
            tx_counts.deleted += await uow.transactions.drop_stale_pending(account, batch)
            record_counts(run, "transactions", tx_counts)
        source_of = fetched.snapshot_from.get(key)
        figures = account if source_of is None else source_of
        snapshots.append(
            BalanceSnapshot(
                user_id=account.user_id,
                account_id=account.id,
                sync_run_id=run.id,
                source=source,
                # A statement's balance is as of its own date, not of the upload.
                taken_at=figures.balance_at
                if source is SnapshotSource.IMPORT and figures.balance_at
                else now,
                currency=account.currency,
                balance=figures.balance,
                available_balance=figures.available_balance,
                cash_value=figures.cash_value,
                holdings_value=figures.holdings_value,
            )
        )
    run.counts["snapshots"] = run.counts.get("snapshots", 0) + await uow.snapshots.add_many(snapshots)
    return accounts


def _renew_hint(connection: Connection, info: ProviderInfo | None) -> str:
    """What the person must do before a sync can work, without asking the provider again."""
    path = f"/api/v1/connections/{connection.id}"
    if info is not None and info.auth_type.in_browser:
        return f"the provider needs a new consent: POST {path}/reauthorize and open its authorization_url"
    return f"the provider rejected the stored credentials: send new ones with PATCH {path}"


class SyncService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        providers: ProviderGateway,
        cipher: CredentialCipher,
        jobs: JobQueue,
        clock: Clock = utcnow,
    ) -> None:
        self._uow = uow
        self._providers = providers
        self._cipher = cipher
        self._jobs = jobs
        self._clock = clock

    async def request(self, connection_id: UUID, user_id: UUID, trigger: SyncTrigger) -> SyncRun:
        """Open a SyncRun and queue it after commit; a sync already running is returned instead."""
        async with self._uow() as uow:
            connection = await uow.connections.get(connection_id, user_id)
            if connection is None:
                raise NotFound("connection")
            running = await uow.sync_runs.running_for(connection_id)
            if running is not None:
                return running
            info = self._providers.info(connection.provider)
            if info is not None and info.auth_type is AuthType.FILE:
                raise InvalidInput("statement-file connections are updated by uploading to /api/v1/imports")
            if connection.status is ConnectionStatus.PENDING or connection.credentials is None:
                raise Conflict("this connection is not authorised yet; finish connecting it first")
            lapsed = connection.expires_at is not None and connection.expires_at <= self._clock()
            if connection.status is ConnectionStatus.NEEDS_REAUTH or lapsed:
                raise NeedsReauthorization(_renew_hint(connection, info))
            if trigger is SyncTrigger.MANUAL:
                await self._preflight(connection)
            run = SyncRun(
                user_id=user_id, connection_id=connection_id, trigger=trigger, started_at=self._clock()
            )
            if not await uow.sync_runs.add_if_idle(run):  # lost a race: another request started one
                await uow.rollback()
                running = await uow.sync_runs.running_for(connection_id)
                if running is not None:
                    return running
                raise Conflict("a sync of this connection just finished; try again")
            await uow.commit()
        await self._jobs.enqueue_sync(run.id)
        return run

    async def close_interrupted(self) -> int:
        """Runs a stopped process left 'running' can never finish: close them so history never lies."""
        async with self._uow() as uow:
            closed = await uow.sync_runs.close_interrupted(self._clock())
            await uow.commit()
        if closed:
            log.warning("interrupted_sync_runs_closed", count=closed)
        return closed

    def _session(self, connection: Connection) -> ProviderSession:
        return ProviderSession(
            connection_id=connection.id,
            credentials=self._cipher.decrypt(connection.credentials) if connection.credentials else {},
            environment=connection.environment,
            state=dict(connection.state),
            last_synced_at=connection.last_synced_at,
        )

    async def _preflight(self, connection: Connection) -> None:
        """Ask the adapter, without calling the provider, whether a sync can run now (bank budgets):
        a manual sync over budget answers 429 with the time it becomes possible, burning nothing."""
        if connection.credentials is None:
            return
        adapter = self._providers.adapter(connection.provider, self._session(connection))
        try:
            check = getattr(adapter, "preflight", None)
            if check is not None:
                await check()
        finally:
            await adapter.aclose()

    async def execute(self, run_id: UUID) -> SyncRun:
        """The job body: never raises for provider faults; they end up on the run and connection."""
        async with self._uow() as uow:
            run = await uow.sync_runs.get(run_id)
            connection = None if run is None else await uow.connections.get(run.connection_id)
        if run is None or connection is None:
            raise NotFound("sync run")
        started = time.perf_counter()
        # Until the credentials are decrypted the session is empty: a failure then changes none.
        session = ProviderSession(connection_id=connection.id, credentials={})
        original_credentials: dict[str, object] = {}
        log.info(
            "sync_started", run_id=str(run.id), connection_id=str(connection.id), provider=connection.provider
        )
        try:
            session = self._session(connection)
            original_credentials = dict(session.credentials)
            fetched = await self._fetch(connection.provider, session)
            return await self._write(run, connection, session, original_credentials, fetched, started)
        except FinsyncError as exc:
            return await self._fail(run, connection, session, original_credentials, exc, started)
        except Exception as exc:
            log.exception("sync_crashed", run_id=str(run.id))
            error = FinsyncError(f"internal error ({type(exc).__name__}); stored data is unchanged")
            return await self._fail(run, connection, session, original_credentials, error, started)

    async def _write(
        self,
        run: SyncRun,
        connection: Connection,
        session: ProviderSession,
        original_credentials: dict[str, object],
        fetched: Fetched,
        started: float,
    ) -> SyncRun:
        async with self._uow() as uow:
            now = self._clock()
            # Re-read: a rename, new key or re-authorisation may have landed while we fetched,
            # and only the fields a sync owns may be written back.
            current = await uow.connections.get(connection.id, lock=True)
            if current is None:
                raise NotFound("connection (deleted during the sync)")
            await write_fetched(uow, current, run, fetched, SNAPSHOT_SOURCE[run.trigger], now)
            current.state = session.state
            if session.credentials != original_credentials and current.credentials == connection.credentials:
                current.credentials = self._cipher.encrypt(session.credentials)
            current.status = ConnectionStatus.ACTIVE
            current.last_synced_at = now
            current.last_error = None
            current.updated_at = now
            await uow.connections.save(current)
            run.status = SyncStatus.SUCCEEDED
            run.finished_at = now
            run.counts["duration_ms"] = int((time.perf_counter() - started) * 1000)
            await uow.sync_runs.save(run)
            await uow.commit()
        log.info("sync_succeeded", run_id=str(run.id), **run.counts)
        return run

    async def _fetch(self, provider: str, session: ProviderSession) -> Fetched:
        capabilities = self._providers.capabilities(provider)
        adapter = self._providers.adapter(provider, session)
        try:
            fetched = Fetched(accounts=await adapter.fetch_accounts())
            for account in fetched.accounts:
                key = account.provider_account_id
                if Capability.HOLDINGS in capabilities:
                    fetched.holdings[key] = await adapter.fetch_holdings(account)
                if Capability.TRANSACTIONS in capabilities:
                    fetched.transactions[key] = await adapter.fetch_transactions(account)
            return fetched
        except ProviderError:
            raise
        except Exception as exc:  # a mapper choking on a payload is the provider's bad data to the user
            log.exception("provider_payload_unreadable", provider=provider)
            raise BadData(f"{provider} sent data finsync could not read ({type(exc).__name__})") from exc
        finally:
            await adapter.aclose()

    async def _fail(
        self,
        run: SyncRun,
        connection: Connection,
        session: ProviderSession,
        original_credentials: dict[str, object],
        exc: FinsyncError,
        started: float,
    ) -> SyncRun:
        async with self._uow() as uow:
            now = self._clock()
            current = await uow.connections.get(connection.id, lock=True)
            if current is not None:
                if isinstance(exc, AuthError):
                    current.status = ConnectionStatus.NEEDS_REAUTH
                elif not isinstance(exc, RateLimited):
                    current.status = ConnectionStatus.ERROR
                current.last_error = exc.detail
                current.updated_at = now
                # Tokens rotated before the failure must survive it, or the next sync cannot log in;
                # so must provider calls already spent (bank budgets).
                if (
                    session.credentials != original_credentials
                    and current.credentials == connection.credentials
                ):
                    current.credentials = self._cipher.encrypt(session.credentials)
                if "budget" in session.state:
                    current.state = {**current.state, "budget": session.state["budget"]}
                await uow.connections.save(current)
            run.status = SyncStatus.FAILED
            run.finished_at = now
            run.error = exc.detail
            run.error_type = exc.code
            run.counts = {"duration_ms": int((time.perf_counter() - started) * 1000)}
            await uow.sync_runs.save(run)
            await uow.commit()
        log.warning("sync_failed", run_id=str(run.id), error_type=exc.code, error=exc.detail)
        return run
