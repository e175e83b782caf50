"""ImportStatement: an uploaded file becomes accounts, transactions, holdings and snapshots.

Parsing happens before any write; everything is written in one transaction with its
SyncRun, so a rejected file (too large, unknown, malformed) leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID

import structlog

from finsync.application.sync import Fetched, write_fetched
from finsync.domain.entities import FILES, Account, Connection, SyncRun, utcnow
from finsync.domain.enums import ConnectionStatus, SnapshotSource, SyncStatus, SyncTrigger
from finsync.domain.errors import BadData, FileTooLarge, MalformedFile, UnsupportedFormat
from finsync.domain.ports import Clock, ParsedFile, ParsedStatement, StatementFormat, UnitOfWorkFactory
from finsync.domain.records import ProviderAccount, TransactionBatch
from finsync.gcpause import paused_gc

log = structlog.get_logger(__name__)
SNIFF_BYTES = 8192


@dataclass(slots=True, frozen=True)
class ImportSummary:
    """What an import did, in the words of its answer (API and CLI alike)."""

    accounts_created: int
    accounts_updated: int
    accounts_unchanged: int
    transactions_inserted: int
    transactions_already_present: int
    transactions_updated: int
    holdings: int
    snapshots: int


@dataclass(slots=True)
class ImportResult:
    run: SyncRun
    connection: Connection
    format: str
    accounts: list[Account]
    warnings: list[str]

    def summary(self) -> ImportSummary:
        c = self.run.counts
        return ImportSummary(
            accounts_created=c.get("accounts_inserted", 0),
            accounts_updated=c.get("accounts_updated", 0),
            accounts_unchanged=c.get("accounts_unchanged", 0),
            transactions_inserted=c.get("transactions_inserted", 0),
            transactions_already_present=c.get("transactions_unchanged", 0),
            transactions_updated=c.get("transactions_updated", 0),
            holdings=sum(c.get(f"holdings_{n}", 0) for n in ("inserted", "updated", "unchanged")),
            snapshots=c.get("snapshots", 0),
        )


_FIGURES = ("balance", "available_balance", "cash_value", "holdings_value")


def _merge_known(incoming: ProviderAccount, existing: Account | None) -> ProviderAccount:
    """A later upload never erases what is known: an older statement does not roll the figures
    back, and a figure the statement leaves out keeps its known value."""
    if existing is None or existing.balance_at is None:
        return incoming
    older = incoming.balance_at is None or incoming.balance_at < existing.balance_at
    if older or incoming.balance is None:
        known = {f: getattr(existing, f) for f in _FIGURES}
        return replace(incoming, balance_at=existing.balance_at, **known)
    return replace(incoming, **{f: getattr(existing, f) for f in _FIGURES if getattr(incoming, f) is None})


def _drop_other_currencies(fetched: Fetched, existing: dict[str, Account]) -> list[str]:
    """A statement in another currency than its stored account cannot be added to it (amounts
    would be read in the wrong unit): its figures, transactions and holdings are left out."""
    warnings, kept = [], []
    for incoming in fetched.accounts:
        key, known = incoming.provider_account_id, existing.get(incoming.provider_account_id)
        if known is None or known.currency == incoming.currency:
            kept.append(incoming)
            continue
        skipped = fetched.transactions.pop(key, TransactionBatch())
        fetched.holdings.pop(key, None)
        fetched.snapshot_from.pop(key, None)
        count = len(skipped.provider_ids())
        warnings.append(
            f"account {known.name!r} is kept in {known.currency}, but this file states it in "
            f"{incoming.currency}: its balance, {count} transaction(s) and holdings were not imported"
        )
    fetched.accounts = kept
    return warnings


def _group(statements: Sequence[ParsedStatement]) -> Fetched:
    """One entry per account: a file may hold several statements (periods) of the same account.

    Accounts are keyed by institution + account id, so re-uploads land in the same accounts;
    transactions are concatenated, and the newest statement gives balances and holdings.
    """
    fetched = Fetched(accounts=[])
    by_key: dict[str, ProviderAccount] = {}
    for statement in sorted(
        statements, key=lambda s: s.account.balance_at or datetime.min.replace(tzinfo=UTC)
    ):
        key = f"{statement.institution or 'unknown'}|{statement.account.provider_account_id}"
        by_key[key] = replace(statement.account, provider_account_id=key)
        batch = fetched.transactions.setdefault(key, TransactionBatch())
        if statement.transactions:
            # Eager items are written before deferred ones: build what came before, so
            # that a later statement's version of a transaction still wins.
            _build_all(batch)
            batch.transactions += statement.transactions
        batch.deferred += statement.deferred
        if statement.holdings is not None:
            fetched.holdings[key] = statement.holdings
    fetched.accounts = list(by_key.values())
    return fetched


def _build_all(batch: TransactionBatch) -> None:
    for group in batch.deferred:
        batch.transactions += group.build(list(range(len(group.keys))))
    batch.deferred.clear()


class ImportService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        formats: Sequence[StatementFormat],
        limit_bytes: int,
        clock: Clock = utcnow,
    ) -> None:
        self._uow = uow
        self.formats = list(formats)
        self.limit_bytes = limit_bytes
        self._clock = clock

    def detect(self, data: bytes, filename: str | None) -> StatementFormat:
        head = data[:SNIFF_BYTES]
        for fmt in self.formats:
            if fmt.sniff(head, filename):
                return fmt
        accepted = ", ".join(f"{f.name} ({'/'.join(f.extensions)})" for f in self.formats)
        raise UnsupportedFormat(
            f"{filename or 'the file'} is not a recognised statement format; accepted: {accepted}"
        )

    async def parse(self, data: bytes, filename: str | None) -> ParsedFile:
        return (await self._parse(data, filename))[1]

    async def _parse(self, data: bytes, filename: str | None) -> tuple[StatementFormat, ParsedFile]:
        """(format, parsed). The format names the file connection; the parsed file's own
        ``format`` is what the answer reports (``csv:trading212`` for a CSV preset)."""
        if len(data) > self.limit_bytes:
            raise FileTooLarge(f"the file is {len(data):,} bytes; the limit is {self.limit_bytes:,} bytes")
        if not data.strip():
            raise UnsupportedFormat("the file is empty")
        fmt = self.detect(data, filename)
        # Parsing is CPU-bound: keep the event loop (other requests, sync jobs) responsive.
        return fmt, await asyncio.to_thread(fmt.read, data)

    async def import_file(self, user_id: UUID, data: bytes, filename: str | None) -> ImportResult:
        with paused_gc():  # a big file is millions of short-lived objects: see finsync.gcpause
            return await self._import(user_id, data, filename)

    async def _import(self, user_id: UUID, data: bytes, filename: str | None) -> ImportResult:
        started = time.perf_counter()
        fmt, parsed = await self._parse(data, filename)
        parsed_at = time.perf_counter()
        now = self._clock()
        async with self._uow() as uow:
            # One file connection per user and format, guaranteed by its unique identity: a
            # concurrent first upload waits here for the other one, then adds to its connection.
            connection = await uow.connections.add_or_get(
                Connection(
                    user_id=user_id,
                    provider=fmt.name,
                    identity=FILES,
                    name="Statement files",
                    status=ConnectionStatus.ACTIVE,
                    created_at=now,
                    updated_at=now,
                )
            )
            existing = {a.provider_account_id: a for a in await uow.accounts.for_connection(connection.id)}
            fetched = _group(parsed.statements)
            # A snapshot records what the statement itself says; without a balance it says
            # nothing new, and the stored figures' snapshot is not repeated (see add_many).
            fetched.snapshot_from = {
                a.provider_account_id: a for a in fetched.accounts if a.balance is not None
            }
            # Deferred rows add their warnings to this same list while they are written.
            warnings = parsed.warnings
            warnings += _drop_other_currencies(fetched, existing)
            fetched.accounts = [
                _merge_known(a, existing.get(a.provider_account_id)) for a in fetched.accounts
            ]
            run = SyncRun(
                user_id=user_id,
                connection_id=connection.id,
                trigger=SyncTrigger.IMPORT,
                started_at=now,
                warnings=warnings,
            )
            try:
                accounts = await write_fetched(uow, connection, run, fetched, SnapshotSource.IMPORT, now)
            except BadData as exc:  # the file's content, not a provider, is at fault here
                raise MalformedFile(exc.detail) from exc
            run.status = SyncStatus.SUCCEEDED
            run.finished_at = self._clock()
            run.counts["duration_ms"] = int((time.perf_counter() - started) * 1000)
            run.counts["file_bytes"] = len(data)
            run.counts["parse_ms"] = int((parsed_at - started) * 1000)
            await uow.sync_runs.add(run)
            connection.last_synced_at = now
            connection.updated_at = now
            await uow.connections.save(connection)
            await uow.commit()
        finished = time.perf_counter()  # the run is committed: timings are logged, not stored
        log.info(
            "import_timing",
            run_id=str(run.id),
            parse_ms=int((parsed_at - started) * 1000),
            write_ms=int((finished - parsed_at) * 1000),
            duration_ms=int((finished - started) * 1000),
        )
        log.info("file_imported", run_id=str(run.id), format=parsed.format, **run.counts)
        return ImportResult(run, connection, parsed.format, accounts, warnings)
