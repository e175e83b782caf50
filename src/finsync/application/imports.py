"""ImportStatement: an uploaded file becomes accounts, transactions, holdings and snapshots.

Parsing happens before any write; everything is written in one transaction with its
SyncRun, so a rejected file (too large, unknown, malformed) leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog

from finsync.application.labels import id_floor, label_new_transactions
from finsync.application.sync import Fetched, record_counts, write_fetched
from finsync.application.webhooks import WebhookEvents, run_data
from finsync.domain.csvmapping import ImportMapping
from finsync.domain.entities import FILES, Account, Connection, SyncRun, utcnow
from finsync.domain.enums import ConnectionStatus, SnapshotSource, SyncStatus, SyncTrigger
from finsync.domain.errors import (
    BadData,
    FileTooLarge,
    ImportRejected,
    InvalidInput,
    MalformedFile,
    NotFound,
    UnsupportedFormat,
)
from finsync.domain.ports import (
    MappableFormat,
    Now,
    ParsedFile,
    ParsedStatement,
    StatementFormat,
    UnitOfWork,
    UnitOfWorkFactory,
)
from finsync.domain.records import ProviderAccount, ProviderTransaction, TransactionBatch
from finsync.domain.webhooks import EventType
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
    if _older(incoming, existing) or incoming.balance is None:
        known = {f: getattr(existing, f) for f in _FIGURES}
        return replace(incoming, balance_at=existing.balance_at, **known)
    return replace(incoming, **{f: getattr(existing, f) for f in _FIGURES if getattr(incoming, f) is None})


def _older(incoming: ProviderAccount, existing: Account | None) -> bool:
    """Whether a statement is older than what is known of its account (or undated)."""
    if existing is None or existing.balance_at is None:
        return False
    return incoming.balance_at is None or incoming.balance_at < existing.balance_at


def _keep_newer_holdings(fetched: Fetched, existing: dict[str, Account]) -> list[str]:
    """An older statement's positions are not the account's holdings any more: they would
    replace newer ones (and disagree with the account's value, which is kept). Its balance
    is still recorded as of its own date; the position history ignores older days anyway."""
    warnings = []
    for incoming in fetched.accounts:
        known = existing.get(incoming.provider_account_id)
        if known is None or known.balance_at is None:
            continue
        if incoming.provider_account_id in fetched.holdings and _older(incoming, known):
            del fetched.holdings[incoming.provider_account_id]
            warnings.append(
                f"account {known.name!r}: this statement is older than the one its holdings come from "
                f"(as of {known.balance_at.date().isoformat()}): its positions were not applied"
            )
    return warnings


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
        clock: Now = utcnow,
        events: WebhookEvents | None = None,
    ) -> None:
        self._events = events or WebhookEvents(clock)
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
        return (await self._parse(data, filename, None))[1]

    def _checked(self, data: bytes, filename: str | None) -> StatementFormat:
        if len(data) > self.limit_bytes:
            raise FileTooLarge(f"the file is {len(data):,} bytes; the limit is {self.limit_bytes:,} bytes")
        if not data.strip():
            raise UnsupportedFormat("the file is empty")
        return self.detect(data, filename)

    async def _parse(
        self, data: bytes, filename: str | None, saved: ImportMapping | None
    ) -> tuple[StatementFormat, ParsedFile]:
        """(format, parsed). The format names the file connection; the parsed file's own
        ``format`` is what the answer reports (``csv:trading212`` for a CSV preset)."""
        fmt = self._checked(data, filename)
        # Parsing is CPU-bound: keep the event loop (other requests, sync jobs) responsive.
        if saved is not None:
            mappable = _mappable(fmt)
            return fmt, await asyncio.to_thread(mappable.read, data, saved.mapping, str(saved.id), saved.name)
        return fmt, await asyncio.to_thread(fmt.read, data)

    async def _saved_mapping(
        self, user_id: UUID, data: bytes, filename: str | None, mapping_id: UUID | None
    ) -> ImportMapping | None:
        """The mapping named by id, else the user's mapping for this file's header (CSV only)."""
        fmt = self._checked(data, filename)
        if mapping_id is not None:
            _mappable(fmt)
            async with self._uow() as uow:
                saved = await uow.import_mappings.get(mapping_id, user_id)
            if saved is None:
                raise NotFound("import mapping")
            return saved
        if not hasattr(fmt, "header_signature"):
            return None
        signature = _mappable(fmt).header_signature(data)  # reads the first line only
        async with self._uow() as uow:
            return await uow.import_mappings.for_header(user_id, signature)

    async def preview(
        self, user_id: UUID, data: bytes, filename: str | None, mapping_id: UUID | None = None
    ) -> dict[str, Any]:
        """What an import of ``data`` would read; writes nothing."""
        saved = await self._saved_mapping(user_id, data, filename, mapping_id)
        fmt = _mappable(self._checked(data, filename))
        result = await asyncio.to_thread(fmt.preview, data, saved.mapping if saved else None)
        result["mapping_id"] = saved.id if saved else None
        return result

    async def save_mapping(self, mapping: ImportMapping) -> ImportMapping:
        problems = mapping.mapping.problems()
        present = {" ".join(h.split()).casefold() for h in mapping.header}
        missing = [c for c in mapping.mapping.columns() if " ".join(c.split()).casefold() not in present]
        if missing:
            problems.append(f"columns not in the header: {', '.join(missing)}")
        if problems:
            raise InvalidInput("; ".join(problems))
        async with self._uow() as uow:
            if (
                mapping.account_id is not None
                and await uow.accounts.get(mapping.account_id, mapping.user_id) is None
            ):
                raise NotFound("account")
            await uow.import_mappings.add(mapping)
            await uow.commit()
        return mapping

    async def mappings(self, user_id: UUID) -> list[ImportMapping]:
        async with self._uow() as uow:
            return await uow.import_mappings.list(user_id)

    async def delete_mapping(self, mapping_id: UUID, user_id: UUID) -> None:
        async with self._uow() as uow:
            if not await uow.import_mappings.delete(mapping_id, user_id):
                raise NotFound("import mapping")
            await uow.commit()

    async def import_file(
        self,
        user_id: UUID,
        data: bytes,
        filename: str | None,
        *,
        mapping_id: UUID | None = None,
        account_id: UUID | None = None,
    ) -> ImportResult:
        """``mapping_id``: read a CSV file with that saved mapping (otherwise the user's mapping
        for the file's header, then a preset, then guessed columns). ``account_id`` (or the
        mapping's account): load the rows into that existing account."""
        with paused_gc():  # a big file is millions of short-lived objects: see finsync.gcpause
            return await self._import(user_id, data, filename, mapping_id, account_id)

    async def _import(
        self,
        user_id: UUID,
        data: bytes,
        filename: str | None,
        mapping_id: UUID | None,
        account_id: UUID | None,
    ) -> ImportResult:
        started = time.perf_counter()
        saved = await self._saved_mapping(user_id, data, filename, mapping_id)
        fmt, parsed = await self._parse(data, filename, saved)
        parsed_at = time.perf_counter()
        target = account_id or (saved.account_id if saved is not None else None)
        if target is not None:
            return await self._into_account(user_id, target, parsed, len(data), started, parsed_at)
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
            warnings += _keep_newer_holdings(fetched, existing)
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
            event = run_data(connection, run) | {"format": parsed.format, "warnings": len(warnings)}
            await self._events.publish(uow, user_id, EventType.IMPORT_COMPLETED, event)
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

    async def _into_account(
        self, user_id: UUID, account_id: UUID, parsed: ParsedFile, size: int, started: float, parsed_at: float
    ) -> ImportResult:
        """Load a file's rows into an existing account (say, years of history into the account
        an API syncs): ids get a ``file:`` prefix so they never meet the other source's ids,
        and rows the account already holds from another source are matched by
        :func:`cross_source_key` and not added twice. The account's figures are left alone."""
        now = self._clock()
        warnings = parsed.warnings
        async with self._uow() as uow:
            account = await uow.accounts.get(account_id, user_id)
            if account is None:
                raise NotFound("account")
            connection = await uow.connections.get(account.connection_id, user_id)
            if connection is None:
                raise NotFound("account")
            incoming: list[ProviderTransaction] = []
            sources: dict[tuple[str | None, str], str] = {}  # the file's accounts that give rows
            for statement in parsed.statements:
                batch = TransactionBatch(
                    transactions=list(statement.transactions), deferred=statement.deferred
                )
                _build_all(batch)
                other = [t for t in batch.transactions if t.currency != account.currency]
                if other:
                    warnings.append(
                        f"account {account.name!r} is kept in {account.currency}: "
                        f"{len(other)} transaction(s) "
                        f"in {other[0].currency} were not imported"
                    )
                rows = [
                    replace(t, provider_transaction_id=f"file:{t.provider_transaction_id}")
                    for t in batch.transactions
                    if t.currency == account.currency
                ]
                if rows:
                    source = (statement.institution, statement.account.provider_account_id)
                    sources.setdefault(source, statement.account.name)
                incoming += rows
            if not incoming:
                raise MalformedFile(f"no row of the file is in the account's currency ({account.currency})")
            if len(sources) > 1:
                # One account's rows, not several accounts' mixed into one (a multi-account OFX
                # file; their ids are only unique per account, so they would even collide).
                raise ImportRejected(
                    f"the file holds transactions of {len(sources)} accounts "
                    f"({', '.join(sources.values())}) in {account.currency}: only one account's "
                    "statement can be loaded into an existing account; upload it without "
                    "account_id, or export one account at a time"
                )
            # Writers of the connection's accounts (a sync) queue here, so the rows compared
            # below are all there are until this import commits.
            await uow.accounts.for_connection(connection.id, lock=True)
            kept, matched = await _not_held(uow, account, incoming)
            run = SyncRun(
                user_id=user_id,
                connection_id=connection.id,
                trigger=SyncTrigger.IMPORT,
                started_at=now,
                warnings=warnings,
            )
            floor = id_floor()
            counts = await uow.transactions.upsert(account, kept)
            counts.unchanged += matched
            record_counts(run, "transactions", counts)
            record_counts(run, "accounts", type(counts)(unchanged=1))
            if matched:
                warnings.append(f"{matched} row(s) were already in the account from another source")
            await label_new_transactions(uow, user_id, [account.id], floor, counts.updated_ids)
            run.status = SyncStatus.SUCCEEDED
            run.finished_at = self._clock()
            run.counts["duration_ms"] = int((time.perf_counter() - started) * 1000)
            run.counts["file_bytes"] = size
            run.counts["parse_ms"] = int((parsed_at - started) * 1000)
            await uow.sync_runs.add(run)
            event = run_data(connection, run) | {"format": parsed.format, "warnings": len(warnings)}
            await self._events.publish(uow, user_id, EventType.IMPORT_COMPLETED, event)
            await uow.commit()
        log.info(
            "file_imported",
            run_id=str(run.id),
            format=parsed.format,
            account_id=str(account.id),
            **run.counts,
        )
        return ImportResult(run, connection, parsed.format, [account], warnings)


def _mappable(fmt: StatementFormat) -> MappableFormat:
    if not hasattr(fmt, "preview"):
        raise UnsupportedFormat(
            f"{fmt.name} files are read as they are: previews and column mappings are for CSV files"
        )
    return fmt  # type: ignore[return-value]


def _symbol(symbol: str | None) -> str:
    """Tickers as sources spell them differently: Trading 212's API says ``AAPL_US_EQ``, its
    export ``AAPL``; the part before the first underscore, upper-cased, is compared."""
    return (symbol or "").split("_", 1)[0].strip().upper()


def _number(value: Decimal | None) -> str:
    return "" if value is None else format(abs(value).normalize(), "f")


def cross_source_key(t: ProviderTransaction) -> tuple[str, ...]:
    """What identifies one money movement whichever source reported it: date, signed amount,
    currency, symbol and quantity (ids differ between an export and an API)."""
    return (t.transaction_date.isoformat(), _number(t.amount) if t.amount >= 0 else "-" + _number(t.amount),
            t.currency, _symbol(t.symbol), _number(t.quantity))  # fmt: skip


async def _not_held(
    uow: UnitOfWork, account: Account, incoming: list[ProviderTransaction]
) -> tuple[list[ProviderTransaction], int]:
    """``incoming`` without the rows the account already holds from another source (matched by
    :func:`cross_source_key`, one stored row per incoming row). Rows stored under the same id
    are this file's own earlier import: the usual upsert handles them."""
    if not incoming:
        return incoming, 0
    first = min(t.transaction_date for t in incoming)
    last = max(t.transaction_date for t in incoming)
    stored = await uow.transactions.between(account.id, first, last)
    stored_ids = {t.provider_transaction_id for t in stored}
    own = {t.provider_transaction_id for t in incoming}
    others = Counter(cross_source_key(t) for t in stored if t.provider_transaction_id not in own)
    kept: list[ProviderTransaction] = []
    matched = 0
    for t in incoming:
        if t.provider_transaction_id not in stored_ids:
            key = cross_source_key(t)
            if others[key] > 0:
                others[key] -= 1
                matched += 1
                continue
        kept.append(t)
    return kept, matched
