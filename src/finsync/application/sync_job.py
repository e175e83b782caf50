"""The sync job body: fetch everything from the provider, then write it in one transaction.

Fetching completes before any write, so a provider failure half-way leaves stored data
exactly as it was; the single write transaction makes a crash leave either the old or the
new state. Provider faults end up on the run and the connection (never raised), and decide
when the connection syncs next: transient faults back off exponentially, a rate limit waits
for its reset, an authentication failure waits for the user.
"""

from __future__ import annotations

import random
import time
from datetime import datetime

import structlog

from finsync.application.sync import (
    SNAPSHOT_SOURCE,
    Fetched,
    same_credentials,
    session_of,
    write_fetched,
)
from finsync.application.valuation import StoredRates
from finsync.application.webhooks import WebhookEvents, connection_data, run_data
from finsync.domain.entities import Connection, SyncRun, utcnow
from finsync.domain.enums import Capability, ConnectionStatus, SyncStatus
from finsync.domain.errors import BadData, FinsyncError, ProviderAuthError, ProviderError, RateLimited
from finsync.domain.jobs import SyncConnection
from finsync.domain.ports import (
    CredentialCipher,
    HoldingsSource,
    Now,
    PersonPresent,
    ProviderGateway,
    ProviderSession,
    UnitOfWork,
)
from finsync.domain.ports import UnitOfWorkFactory as UowFactory
from finsync.domain.schedule import Random, SyncSchedule, retry_at
from finsync.domain.webhooks import EventType

log = structlog.get_logger(__name__)


def _refuse_repeated_accounts(provider: str, fetched: Fetched) -> None:
    """One account key listed twice is the provider's bad data: written as it is, the account
    would get two snapshots in one sync (its change counted twice in net worth) and one of
    the two entries' transactions would be lost; on a first sync the insert would fail as a
    "try again" conflict that no retry fixes."""
    seen: set[str] = set()
    for account in fetched.accounts:
        key = account.provider_account_id
        if key in seen:
            raise BadData(f"{provider} listed the account {key!r} twice; stored data is unchanged")
        seen.add(key)


class SyncRunner:
    def __init__(
        self,
        uow: UowFactory,
        providers: ProviderGateway,
        cipher: CredentialCipher,
        clock: Now = utcnow,
        rand: Random = random.random,
        events: WebhookEvents | None = None,
    ) -> None:
        self._events = events or WebhookEvents(clock)
        self._uow = uow
        self._providers = providers
        self._cipher = cipher
        self._clock = clock
        self._rand = rand

    async def run(self, job: SyncConnection) -> SyncRun | None:
        """Pick the run up (queued → running) and execute it; None when there is nothing to run
        (finished meanwhile, or its connection deleted)."""
        async with self._uow() as uow:
            now = self._clock()
            run = await uow.sync_runs.start(job.run_id, now)
            if run is None:  # this job outlived its run: run whatever the connection has queued now
                active = await uow.sync_runs.active_for(job.connection_id)
                run = None if active is None else await uow.sync_runs.start(active.id, now)
            connection = None if run is None else await uow.connections.get(run.connection_id)
            if run is None or connection is None:
                return None
            await uow.commit()
        present = None  # a retry, later, runs unattended
        if job.present_ip is not None and run.id == job.run_id and run.attempts <= 1:
            present = PersonPresent(job.present_ip, job.present_user_agent)
        return await self.execute(run, connection, present)

    async def execute(
        self, run: SyncRun, connection: Connection, present: PersonPresent | None = None
    ) -> SyncRun:
        started = time.perf_counter()
        # Until the credentials are decrypted the session is empty: a failure then changes none.
        session = ProviderSession(connection_id=connection.id, credentials={})
        original: dict[str, object] = {}
        log.info(
            "sync_started",
            run_id=str(run.id),
            connection_id=str(connection.id),
            provider=connection.provider,
            attempt=run.attempts,
        )
        try:
            session = session_of(connection, self._cipher, present)
            session.rates = StoredRates(self._uow, self._clock().date())  # values in a fiat it lacks
            original = dict(session.credentials)
            fetched = await self._fetch(connection.provider, session)
            return await self._finish(run, connection, session, original, started, fetched=fetched)
        except FinsyncError as exc:
            return await self._finish(run, connection, session, original, started, error=exc)
        except Exception as exc:
            log.exception("sync_crashed", run_id=str(run.id))
            error = FinsyncError(f"internal error ({type(exc).__name__}); stored data is unchanged")
            return await self._finish(run, connection, session, original, started, error=error)

    async def _fetch(self, provider: str, session: ProviderSession) -> Fetched:
        capabilities = self._providers.capabilities(provider)
        adapter = self._providers.adapter(provider, session)
        try:
            fetched = Fetched(accounts=await adapter.fetch_accounts())
            _refuse_repeated_accounts(provider, fetched)
            for account in fetched.accounts:
                key = account.provider_account_id
                if Capability.HOLDINGS in capabilities and isinstance(adapter, HoldingsSource):
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

    async def _finish(
        self,
        run: SyncRun,
        connection: Connection,
        session: ProviderSession,
        original: dict[str, object],
        started: float,
        *,
        fetched: Fetched | None = None,
        error: FinsyncError | None = None,
    ) -> SyncRun:
        async with self._uow() as uow:
            now = self._clock()
            # Re-read under the lock: a rename, new key or re-authorisation may have landed while
            # we fetched, and only the fields a sync owns may be written back.
            current = await uow.connections.get(connection.id, lock=True)
            if current is None or not await self._still_ours(uow, run):
                return run  # deleted with its connection, or picked up again by a newer attempt
            if fetched is not None:
                await write_fetched(uow, current, run, fetched, SNAPSHOT_SOURCE[run.trigger], now)
                current.state = session.state
            elif "budget" in session.state:  # provider calls already spent survive a failure
                current.state = {**current.state, "budget": session.state["budget"]}
            # Tokens rotated before a failure must survive it too, or the next sync cannot log in.
            # (A key rotation meanwhile re-encrypted the same credentials: they are still ours.)
            replaced = not same_credentials(self._cipher, current.credentials, connection.credentials)
            if session.credentials != original and not replaced:
                current.credentials = self._cipher.encrypt(session.credentials)
            before = current.status
            if error is not None and replaced:
                # New credentials or a new consent landed while this run used the old ones: its
                # failure says nothing about them (it must not turn a fresh re-authorisation
                # into needs_reauth). The next scheduled sync tries them now.
                current.updated_at = now
                if self._schedule(current.provider).default_minutes is not None:
                    current.next_sync_at = now
            else:
                self._outcome(current, now, error)
            current.provider_messages = list(dict.fromkeys(session.warnings)) or None  # the latest only
            await uow.connections.save(current)
            run.status = SyncStatus.FAILED if error else SyncStatus.SUCCEEDED
            run.warnings = list(dict.fromkeys([*run.warnings, *session.warnings]))
            run.finished_at = now
            if error is not None:
                run.error, run.error_type, run.counts = error.detail, error.code, {}
            run.counts["duration_ms"] = int((time.perf_counter() - started) * 1000)
            await uow.sync_runs.save(run)
            await self._publish(uow, current, run, before)
            await uow.commit()
        if error is None:
            log.info("sync_succeeded", run_id=str(run.id), **run.counts)
        else:
            log.warning("sync_failed", run_id=str(run.id), error_type=error.code, error=error.detail)
        return run

    async def _publish(
        self, uow: UnitOfWork, connection: Connection, run: SyncRun, before: ConnectionStatus
    ) -> None:
        """Webhook events of this outcome, in its transaction; delivered after the commit."""
        failed = run.status is SyncStatus.FAILED
        event = EventType.SYNC_FAILED if failed else EventType.SYNC_SUCCEEDED
        await self._events.publish(uow, connection.user_id, event, run_data(connection, run))
        if connection.status is ConnectionStatus.NEEDS_REAUTH and before is not ConnectionStatus.NEEDS_REAUTH:
            data = connection_data(connection) | {"reason": connection.last_error}
            await self._events.publish(uow, connection.user_id, EventType.CONNECTION_NEEDS_REAUTH, data)

    @staticmethod
    async def _still_ours(uow: UnitOfWork, run: SyncRun) -> bool:
        """A run picked up again (its worker stalled and the job was retried) belongs to the newer
        attempt: this one must not write (the fencing token is ``attempts``). A run the reaper
        closed (its job was ended while this attempt still ran) is not ours either. The row stays
        locked until the outcome commits: a close or a new pick-up that comes after this check
        waits for it and then finds the run finished, so exactly one outcome (and one of
        sync.succeeded / sync.failed) is recorded."""
        stored = await uow.sync_runs.get(run.id, lock=True)
        if stored is None or stored.status is not SyncStatus.RUNNING or stored.attempts != run.attempts:
            log.warning("sync_superseded", run_id=str(run.id), attempt=run.attempts)
            return False
        return True

    def _outcome(self, connection: Connection, now: datetime, error: FinsyncError | None) -> None:
        """Status, reason and next sync after this one."""
        connection.updated_at = now
        schedule = self._schedule(connection.provider)
        if error is None:
            connection.status = ConnectionStatus.ACTIVE
            connection.last_synced_at = now
            connection.last_error = None
            connection.last_error_code = None
            connection.failure_count = 0
            connection.next_sync_at = schedule.next_at(now, connection.sync_interval_minutes, self._rand)
            return
        connection.last_error = error.detail
        connection.last_error_code = error.code
        if isinstance(error, ProviderAuthError):  # never retried: the user must re-authorise
            connection.status = ConnectionStatus.NEEDS_REAUTH
            connection.failure_count += 1
        elif isinstance(error, RateLimited):  # not the connection's fault: wait for the reset
            connection.next_sync_at = retry_at(now, connection.failure_count, error.reset_at(now), self._rand)
        else:
            connection.status = ConnectionStatus.ERROR
            connection.failure_count += 1
            connection.next_sync_at = retry_at(now, connection.failure_count, None, self._rand)
        if schedule.default_minutes is None:
            connection.next_sync_at = None

    def _schedule(self, provider: str) -> SyncSchedule:
        info = self._providers.info(provider)
        return info.schedule if info is not None else SyncSchedule(default_minutes=None)
