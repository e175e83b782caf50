"""Transactions: set-based upsert keyed by (account_id, provider_transaction_id)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import uuid_utils
from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import Account, Transaction, new_id, utcnow
from finsync.domain.enums import TransactionStatus
from finsync.domain.errors import BadData, Conflict
from finsync.domain.ports import Page, PageRequest, TransactionFilter
from finsync.domain.records import DeferredTransactions, ProviderTransaction, TransactionBatch, UpsertCounts
from finsync.infrastructure.db.mapping import keyset, make_page, to_entity
from finsync.infrastructure.db.tables import TransactionRow
from finsync.infrastructure.db.types import json_dumps

transactions = TransactionRow.__table__  # type: ignore[attr-defined]

_FIELDS = (
    "type", "subtype", "status", "amount", "currency", "transaction_date", "settlement_date",
    "symbol", "quantity", "unit_price", "fees", "description", "raw",
)  # fmt: skip
_COLUMNS = [
    "id", "user_id", "account_id", "provider_transaction_id", *_FIELDS,
    "content_hash", "created_at", "updated_at",
]  # fmt: skip
_COMPARE_SQL = (  # 1-based positions of the keys stored with the same and with another fingerprint
    "SELECT array_agg(k.i) FILTER (WHERE t.content_hash = k.fingerprint), "
    "array_agg(k.i) FILTER (WHERE t.content_hash <> k.fingerprint) "
    "FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(pid, fingerprint, i) "
    "JOIN transactions t ON t.account_id = $1 AND t.provider_transaction_id = k.pid"
)
_ANY_SQL = "SELECT EXISTS (SELECT 1 FROM transactions WHERE account_id = $1)"
_SQLITE_CHUNK = 5_000
_LOCK_SQL = "SELECT id FROM accounts WHERE id = $1 FOR UPDATE"
_COPIED = _COLUMNS[:-2]  # created_at, updated_at: the column defaults (the transaction's time)
_RAW_AT, _HASH_AT = _COLUMNS.index("raw"), _COLUMNS.index("content_hash")
_KNOWN_SQL = (
    "SELECT t.provider_transaction_id, t.content_hash FROM unnest($2::text[]) AS k(pid) "
    "JOIN transactions t ON t.account_id = $1 AND t.provider_transaction_id = k.pid"
)
# Staged: only what varies per row; user, account and timestamps are constants of the merge.
_STAGED = ["id", "provider_transaction_id", *_FIELDS, "content_hash"]
_STAGE_DDL = (  # our own column constants
    "CREATE TEMP TABLE IF NOT EXISTS _transactions_stage ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {', '.join(_STAGED)} FROM transactions WITH NO DATA"
)
_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_FIELDS, "content_hash"))
_MERGE_SQL = (  # built from our own column constants, no user input
    f"INSERT INTO transactions ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"SELECT id, $2, $3, provider_transaction_id, {', '.join(_FIELDS)}, content_hash, $1, $1 "
    "FROM _transactions_stage "
    f"ON CONFLICT (account_id, provider_transaction_id) DO UPDATE SET {_UPDATES}, updated_at = $1 "
    "WHERE transactions.content_hash IS DISTINCT FROM EXCLUDED.content_hash RETURNING 1"
)
_LIKE_ESCAPE = str.maketrans({"%": r"\%", "_": r"\_", "\\": r"\\"})


def content_hash(values: tuple[Any, ...]) -> str:
    """Fingerprint of everything a provider can change, so re-syncs skip identical rows.

    ``repr`` is deterministic for the same payload and several times cheaper than JSON.
    """
    return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


def _row(
    r: ProviderTransaction,
    row_id: UUID | uuid_utils.UUID | None,
    user_id: UUID,
    account_id: UUID,
    now: datetime,
    copy: bool = False,
) -> tuple[Any, ...]:
    """A transaction as a row in ``_COLUMNS`` order; ``copy=True``: in ``_COPIED`` order, ``raw``
    as JSON text and the timestamps left to their column defaults."""
    pid = r.provider_transaction_id
    if len(pid) > 255 or "\x00" in pid:
        raise BadData(f"transaction id {pid[:40]!r}… is longer than 255 characters or has a NUL byte")
    description = r.description
    if description is not None and "\x00" in description:  # PostgreSQL text cannot hold NUL
        description = description.replace("\x00", "")
    symbol = r.symbol[:64].replace("\x00", "") if r.symbol else r.symbol
    values = (
        r.type.value, r.subtype.value, r.status.value, r.amount, r.currency, r.transaction_date,
        r.settlement_date, symbol, r.quantity, r.unit_price, r.fees, description, r.raw,
    )  # fmt: skip
    fingerprint = r.fingerprint
    if fingerprint is None or len(fingerprint) > 64:
        fingerprint = content_hash(values)
    if copy:
        return (row_id, user_id, account_id, pid, *values[:-1], json_dumps(r.raw), fingerprint)
    return (row_id, user_id, account_id, pid, *values, fingerprint, now, now)


async def _yielding(rows: Iterator[tuple[Any, ...]], every: int = 5_000) -> AsyncIterator[tuple[Any, ...]]:
    """``rows``, letting other tasks run every ``every`` rows: mapping a big file's rows
    is CPU work on the event loop, and other requests should not wait for all of it."""
    for count, row in enumerate(rows, 1):
        yield row
        if count % every == 0:
            await asyncio.sleep(0)


class SqlTransactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def upsert(self, account: Account, incoming: Sequence[ProviderTransaction]) -> UpsertCounts:
        """Insert new rows, update rows whose content changed, leave the rest untouched.

        This is the hot path of big imports, hence tuples in column order rather than
        dicts, and ids generated only for rows that are actually inserted.
        """
        now, user_id, account_id = utcnow(), account.user_id, account.id
        # Last occurrence wins: one statement may not touch a row twice.
        latest = {r.provider_transaction_id: _row(r, None, user_id, account_id, now) for r in incoming}
        rows = list(latest.values())
        if not rows:
            return UpsertCounts(unchanged=len(incoming))
        if self._s.get_bind().dialect.name == "postgresql":
            inserted, updated = await self._upsert_copy(rows, now)
        else:
            inserted, updated = await self._upsert_values(rows, now)
        return UpsertCounts(inserted=inserted, updated=updated, unchanged=len(incoming) - inserted - updated)

    async def upsert_deferred(self, account: Account, group: DeferredTransactions) -> UpsertCounts:
        """Build and write only the group's new and changed transactions.

        On PostgreSQL the new ones stream from ``group.build`` straight into one COPY, so
        the database ingests rows while the next ones are mapped and nothing holds the
        whole batch. Their ids are unique by the group's contract and absent under the
        account lock, so they need no conflict handling.
        """
        postgres = self._s.get_bind().dialect.name == "postgresql"
        if postgres:
            await self._lock(account.id)
        new, changed = await self._compare(account, group.keys, postgres)
        counts = UpsertCounts(unchanged=len(group.keys) - len(new) - len(changed))
        if not postgres:  # SQLite: one upsert of everything that is not unchanged
            counts.add(await self.upsert(account, list(group.build(sorted(new + changed)))))
            return counts
        if new:
            now, user_id, uuid7 = utcnow(), account.user_id, uuid_utils.uuid7
            # uuid_utils' UUIDv7 objects go to asyncpg as they are: no stdlib UUID per row.
            records = (_row(r, uuid7(), user_id, account.id, now, copy=True) for r in group.build(new))
            status = await (await self._driver()).copy_records_to_table(
                "transactions", records=_yielding(records), columns=_COPIED
            )
            counts.inserted = int(status.rsplit(" ", 1)[-1])  # "COPY <rows>"
        if changed:
            counts.add(await self.upsert(account, list(group.build(changed))))
        return counts

    async def _compare(
        self, account: Account, keys: list[tuple[str, str]], postgres: bool
    ) -> tuple[list[int], list[int]]:
        """Positions of the keys that are new, and of those stored with another fingerprint.

        PostgreSQL compares on the server and answers two integer arrays: no stored id or
        fingerprint travels back to Python, whether the keys are all new or all known.
        """
        if postgres:
            raw = await self._driver()
            if not await raw.fetchval(_ANY_SQL, account.id):  # a new account: skip the join
                return list(range(len(keys))), []
            pids, fingerprints = [pid for pid, _ in keys], [fp for _, fp in keys]
            same, other = await raw.fetchrow(_COMPARE_SQL, account.id, pids, fingerprints)
            present = bytearray(len(keys))
            for at in (*(same or ()), *(other or ())):
                present[at - 1] = 1
            return [at for at, known in enumerate(present) if not known], sorted(at - 1 for at in other or ())
        t = transactions.c
        stored: dict[str, str] = {}
        for start in range(0, len(keys), _SQLITE_CHUNK):  # bound the bound parameters
            chunk = [pid for pid, _ in keys[start : start + _SQLITE_CHUNK]]
            stmt = select(t.provider_transaction_id, t.content_hash).where(
                t.account_id == account.id, t.provider_transaction_id.in_(chunk)
            )
            stored.update((pid, digest) for pid, digest in await self._s.execute(stmt))
        new: list[int] = []
        changed: list[int] = []
        for at, (pid, fingerprint) in enumerate(keys):
            known = stored.get(pid)
            if known is None:
                new.append(at)
            elif known != fingerprint:
                changed.append(at)
        return new, changed

    async def _lock(self, account_id: UUID) -> None:
        """Serialise writers of one account until commit (PostgreSQL): an id absent now stays
        absent, so new rows can be COPYed without ON CONFLICT."""
        if await (await self._driver()).fetchval(_LOCK_SQL, account_id) is None:
            raise Conflict("the account was deleted while its transactions were being written")

    async def _upsert_values(self, rows: list[tuple[Any, ...]], now: datetime) -> tuple[int, int]:
        """SQLite: one prepared upsert, batched by SQLAlchemy's insertmanyvalues.

        Each row carries a fresh id; a returned id equal to it was inserted, any other
        returned id was an update, and rows not returned were unchanged.
        """
        params = [dict(zip(_COLUMNS, (new_id(), *row[1:]), strict=True)) for row in rows]
        base = sqlite.insert(transactions)
        excluded = base.excluded
        stmt = base.on_conflict_do_update(
            index_elements=["account_id", "provider_transaction_id"],
            set_={
                **{f: excluded[f] for f in _FIELDS},
                "content_hash": excluded.content_hash,
                "updated_at": now,
            },
            where=transactions.c.content_hash != excluded.content_hash,
        ).returning(transactions.c.id)
        returned = (await self._s.execute(stmt, params)).scalars().all()
        fresh = {p["id"] for p in params}
        inserted = sum(1 for i in returned if i in fresh)
        return inserted, len(returned) - inserted

    async def _upsert_copy(self, rows: list[tuple[Any, ...]], now: datetime) -> tuple[int, int]:
        """PostgreSQL: new rows are COPYed straight into the table; changed ones are merged.

        The account row is locked first, so no other writer can add this account's rows
        before we commit: an id absent from the table now is safe to COPY without
        ON CONFLICT, which skips a staging table and the merge for the bulk of an import.
        The statements go through SQLAlchemy's connection so they run in the unit of work's
        transaction and commit or roll back with it.
        """
        raw = await self._driver()
        account_id = rows[0][2]
        await self._lock(account_id)
        known = dict(await raw.fetch(_KNOWN_SQL, account_id, [row[3] for row in rows]))
        new = [row for row in rows if row[3] not in known]
        changed = [row for row in rows if known.get(row[3], row[_HASH_AT]) != row[_HASH_AT]]
        if new:  # one COPY fed by a generator: PostgreSQL ingests while the next rows are encoded
            records = ((new_id(), *row[1:_RAW_AT], json_dumps(row[_RAW_AT]), *row[_HASH_AT:]) for row in new)
            await raw.copy_records_to_table("transactions", records=records, columns=_COLUMNS)
        if not changed:
            return len(new), 0
        staged = (
            (new_id(), row[3], *row[4:_RAW_AT], json_dumps(row[_RAW_AT]), row[_HASH_AT]) for row in changed
        )
        await raw.copy_records_to_table("_transactions_stage", records=staged, columns=_STAGED)
        result = await raw.fetch(_MERGE_SQL, now, rows[0][1], account_id)
        await raw.execute("TRUNCATE _transactions_stage")
        return len(new), len(result)

    async def _driver(self) -> Any:
        """The asyncpg connection under the unit of work's session, its transaction open."""
        conn = await self._s.connection()
        await conn.exec_driver_sql(_STAGE_DDL)  # also opens the unit of work's transaction
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        assert raw.is_in_transaction(), "statements must run inside the unit of work's transaction"
        return raw

    async def drop_stale_pending(self, account: Account, batch: TransactionBatch) -> int:
        """Pending items are often re-identified by banks; drop stored ones the batch no longer has."""
        if batch.replace_pending_since is None:
            return 0
        keep = batch.provider_ids()
        stmt = delete(transactions).where(
            transactions.c.account_id == account.id,
            transactions.c.status == TransactionStatus.PENDING.value,
            transactions.c.transaction_date >= batch.replace_pending_since,
        )
        if keep:
            stmt = stmt.where(transactions.c.provider_transaction_id.not_in(keep))
        result = await self._s.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def get(self, transaction_id: UUID, user_id: UUID) -> Transaction | None:
        stmt = select(transactions).where(
            transactions.c.id == transaction_id, transactions.c.user_id == user_id
        )
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Transaction, row)

    async def find(self, user_id: UUID, filters: TransactionFilter, page: PageRequest) -> Page[Transaction]:
        t = transactions.c
        stmt = select(transactions).where(t.user_id == user_id)
        if filters.account_id is not None:
            stmt = stmt.where(t.account_id == filters.account_id)
        if filters.date_from is not None:
            stmt = stmt.where(t.transaction_date >= filters.date_from)
        if filters.date_to is not None:
            stmt = stmt.where(t.transaction_date <= filters.date_to)
        for column, value in (
            (t.type, filters.type),
            (t.subtype, filters.subtype),
            (t.status, filters.status),
        ):
            if value is not None:
                stmt = stmt.where(column == value.value)
        if filters.symbol:
            stmt = stmt.where(func.upper(t.symbol) == filters.symbol.upper())
        if filters.text:
            pattern = f"%{filters.text.lower().translate(_LIKE_ESCAPE)}%"
            stmt = stmt.where(
                or_(
                    func.lower(t.description).like(pattern, escape="\\"),
                    func.lower(t.symbol) == filters.text.lower(),
                )
            )
        stmt = keyset(stmt, [(t.transaction_date, date), (t.id, UUID)], page, descending=True)
        items = [to_entity(Transaction, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda x: (x.transaction_date, x.id))

    async def count_for(self, account_id: UUID) -> int:
        stmt = select(func.count()).select_from(transactions).where(transactions.c.account_id == account_id)
        return int((await self._s.execute(stmt)).scalar_one())
