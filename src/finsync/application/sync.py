"""Requesting a sync (a queued run plus its job), and the write path syncs and imports share.

The job body that runs a sync is ``application.sync_job.SyncRunner``: requesting and
running meet only through the ``JobQueue`` port, so neither needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog

from finsync.application.labels import id_floor, label_new_transactions
from finsync.application.valuation import duplicates
from finsync.domain.entities import Account, BalanceSnapshot, Connection, SyncRun, utcnow
from finsync.domain.enums import AuthType, ConnectionStatus, SnapshotSource, SyncStatus, SyncTrigger
from finsync.domain.errors import (
    Conflict,
    CredentialsUnreadable,
    InvalidInput,
    NeedsReauthorization,
    NotFound,
)
from finsync.domain.jobs import SyncConnection
from finsync.domain.ports import (
    CredentialCipher,
    Now,
    PersonPresent,
    Preflight,
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
from finsync.domain.worth import is_liability

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
    floor = id_floor()  # transactions inserted from here on are paired as transfers (see labels)
    # The user's rules label new transactions as they are written: no second pass over them.
    rules = [r for r in await uow.rules.list(connection.user_id) if r.enabled]
    # Net worth deltas carry each stored snapshot signed by the account's type then: a type
    # that turns a liability into an asset (or back) needs them recomputed (below).
    was_liability = {a.id: is_liability(a.type) for a in await uow.accounts.for_connection(connection.id)}
    accounts, counts = await uow.accounts.upsert(connection, fetched.accounts)
    record_counts(run, "accounts", counts)
    await flag_held_elsewhere(uow, connection, run, accounts, now)
    snapshots = []
    updated: list[UUID] = []  # transactions whose content changed: their transfers are paired again
    for account in accounts:
        key = account.provider_account_id
        source_of = fetched.snapshot_from.get(key)
        figures = account if source_of is None else source_of
        # A statement's balance is as of its own date, not of the upload.
        taken_at = figures.balance_at if source is SnapshotSource.IMPORT and figures.balance_at else now
        if key in fetched.holdings:
            record_counts(run, "holdings", await uow.holdings.replace(account, fetched.holdings[key]))
            await uow.positions.record(account, fetched.holdings[key], taken_at.astimezone(UTC).date())
        batch = fetched.transactions.get(key)
        if batch is not None:
            tx_counts = await uow.transactions.upsert(account, batch.transactions, rules)
            for group in batch.deferred:
                tx_counts.add(await uow.transactions.upsert_deferred(account, group, rules))
            tx_counts.deleted += await uow.transactions.drop_stale_pending(account, batch)
            record_counts(run, "transactions", tx_counts)
            updated += tx_counts.updated_ids
        snapshots.append(
            BalanceSnapshot(
                user_id=account.user_id,
                account_id=account.id,
                sync_run_id=run.id,
                source=source,
                taken_at=taken_at,
                currency=account.currency,
                balance=figures.balance,
                available_balance=figures.available_balance,
                cash_value=figures.cash_value,
                holdings_value=figures.holdings_value,
            )
        )
    await uow.analytics.record_snapshots(
        snapshots, {a.id: a.type for a in accounts}
    )  # before they are stored
    run.counts["snapshots"] = run.counts.get("snapshots", 0) + await uow.snapshots.add_many(snapshots)
    if any(was_liability.get(a.id, is_liability(a.type)) != is_liability(a.type) for a in accounts):
        await uow.analytics.rebuild_net_worth(connection.user_id)
    await label_new_transactions(uow, connection.user_id, [a.id for a in accounts], floor, updated)
    return accounts


async def flag_held_elsewhere(
    uow: UnitOfWork, connection: Connection, run: SyncRun, accounts: list[Account], now: datetime
) -> None:
    """Warn when an account of this connection is also reached through another connection
    (e.g. the same IBAN through GoCardless and Enable Banking): only one of them counts in
    net worth (domain/reach.py), whichever of the two syncs first or last."""
    found = await duplicates(uow, connection.user_id, now)
    for account in accounts if found.peers else []:
        live = found.live_of.get(account.id)
        for peer in found.peers.get(account.id, []):
            if peer.connection_id == connection.id:
                continue
            counted = "this connection's" if live is None else "the other connection's"
            if live is not None and live != peer.account_id:
                continue  # named by the warning about the peer that counts
            run.warnings.append(
                f"The account {account.name!r} is also connected through connection {peer.connection_id} "
                f"({peer.provider}): net worth counts {counted} only; delete the connection you no longer use"
            )


def session_of(
    connection: Connection, cipher: CredentialCipher, present: PersonPresent | None = None
) -> ProviderSession:
    """What an adapter gets for this connection: decrypted credentials and its own state."""
    credentials: dict[str, Any] = cipher.decrypt(connection.credentials) if connection.credentials else {}
    return ProviderSession(
        connection_id=connection.id,
        credentials=credentials,
        environment=connection.environment,
        state=dict(connection.state),
        last_synced_at=connection.last_synced_at,
        present=present,
    )


def same_credentials(cipher: CredentialCipher, stored: bytes | None, read: bytes | None) -> bool:
    """Whether the stored ciphertext still holds the credentials read earlier. `finsync keys
    rotate` re-encrypts them unchanged (a new ciphertext), so differing bytes alone do not mean
    that someone stored new credentials: compare what they decrypt to."""
    if stored == read:
        return True
    if stored is None or read is None:
        return False
    try:
        return cipher.decrypt(stored) == cipher.decrypt(read)
    except CredentialsUnreadable:
        return False


def _renew_hint(connection: Connection, info: ProviderInfo | None) -> str:
    """What the person must do before a sync can work, without asking the provider again."""
    path = f"/api/v1/connections/{connection.id}"
    if info is not None and info.auth_type.in_browser:
        return f"the provider needs a new consent: POST {path}/reauthorize and open its authorization_url"
    return f"the provider rejected the stored credentials: send new ones with PATCH {path}"


class SyncService:
    """Requests syncs: a queued run, and its job handed to the queue once the run is committed."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        providers: ProviderGateway,
        cipher: CredentialCipher,
        clock: Now = utcnow,
    ) -> None:
        self._uow = uow
        self._providers = providers
        self._cipher = cipher
        self._clock = clock

    async def request(
        self, connection_id: UUID, user_id: UUID, trigger: SyncTrigger, present: PersonPresent | None = None
    ) -> SyncRun:
        """Queue a run; a run already queued or running is returned instead (a button mashed ten
        times queues one sync). ``present``: the person asking, who is at the screen (bank links
        tell the bank, which then does not count the calls as unattended)."""
        async with self._uow() as uow:
            connection = await uow.connections.get(connection_id, user_id)
            if connection is None:
                raise NotFound("connection")
            active = await uow.sync_runs.active_for(connection_id)
            if active is not None:
                return active
            info = self._providers.info(connection.provider)
            if info is not None and info.auth_type is AuthType.FILE:
                raise InvalidInput("statement-file connections are updated by uploading to /api/v1/imports")
            if connection.status is ConnectionStatus.PENDING or connection.credentials is None:
                raise Conflict("this connection is not authorised yet; finish connecting it first")
            lapsed = connection.expires_at is not None and connection.expires_at <= self._clock()
            if connection.status is ConnectionStatus.NEEDS_REAUTH or lapsed:
                raise NeedsReauthorization(_renew_hint(connection, info))
            if trigger is SyncTrigger.MANUAL:
                await self._preflight(connection, present)
            now = self._clock()
            run = SyncRun(
                user_id=user_id,
                connection_id=connection_id,
                trigger=trigger,
                status=SyncStatus.QUEUED,
                queued_at=now,
                started_at=now,
            )
            if not await uow.sync_runs.add_if_idle(run):  # lost a race: another request queued one
                await uow.rollback()
                active = await uow.sync_runs.active_for(connection_id)
                if active is not None:
                    return active
                raise Conflict("a sync of this connection just finished; try again")
            uow.enqueue(
                SyncConnection(
                    connection_id=connection_id,
                    run_id=run.id,
                    provider=connection.provider,
                    present_ip=None if present is None else present.ip_address,
                    present_user_agent=None if present is None else present.user_agent,
                )
            )
            await uow.commit()
        return run

    async def _preflight(self, connection: Connection, present: PersonPresent | None) -> None:
        """Ask the adapter, without calling the provider, whether a sync can run now (bank budgets):
        a manual sync over budget answers 429 with the time it becomes possible, burning nothing."""
        if connection.credentials is None:
            return
        adapter = self._providers.adapter(connection.provider, session_of(connection, self._cipher, present))
        try:
            if isinstance(adapter, Preflight):
                await adapter.preflight()
        finally:
            await adapter.aclose()
