"""Transactions: set-based upsert keyed by (account_id, provider_transaction_id)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import Account, Transaction, new_id, utcnow
from finsync.domain.enums import TransactionStatus
from finsync.domain.ports import Page, PageRequest, TransactionFilter
from finsync.domain.records import ProviderTransaction, TransactionBatch, UpsertCounts
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
_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS _transactions_stage "
    "(LIKE transactions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_FIELDS, "content_hash"))
_MERGE_SQL = (  # built from our own column constants, no user input
    f"INSERT INTO transactions ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"SELECT {', '.join(_COLUMNS)} FROM _transactions_stage "
    f"ON CONFLICT (account_id, provider_transaction_id) DO UPDATE SET {_UPDATES}, updated_at = $1 "
    "WHERE transactions.content_hash IS DISTINCT FROM EXCLUDED.content_hash RETURNING id"
)
_LIKE_ESCAPE = str.maketrans({"%": r"\%", "_": r"\_", "\\": r"\\"})


def _copy_value(value: Any) -> Any:
    # asyncpg's COPY wants JSON as text and enums as their plain values.
    if isinstance(value, dict):
        return json_dumps(value)
    if isinstance(value, Enum):
        return value.value
    return value


def content_hash(values: dict[str, Any]) -> str:
    """Fingerprint of everything a provider can change, so re-syncs skip identical rows."""
    return hashlib.sha256(json_dumps([values[f] for f in _FIELDS]).encode()).hexdigest()


class SqlTransactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def upsert(self, account: Account, incoming: Sequence[ProviderTransaction]) -> UpsertCounts:
        """Multi-row INSERT ... ON CONFLICT DO UPDATE only where the content changed.

        Each row carries a fresh id; a returned id equal to it was inserted, any other
        returned id was an update, and rows not returned were unchanged.
        """
        latest: dict[str, dict[str, Any]] = {}
        now = utcnow()
        for record in incoming:  # last occurrence wins: one statement may not touch a row twice
            values = {f: getattr(record, f) for f in _FIELDS}
            values.update(
                id=new_id(),
                user_id=account.user_id,
                account_id=account.id,
                provider_transaction_id=record.provider_transaction_id,
                content_hash=content_hash(values),
                created_at=now,
                updated_at=now,
            )
            latest[record.provider_transaction_id] = values
        rows = list(latest.values())
        if not rows:
            return UpsertCounts(unchanged=len(incoming))
        if self._s.get_bind().dialect.name == "postgresql":
            returned = await self._upsert_copy(rows, now)
        else:
            returned = await self._upsert_values(rows, now)
        fresh = {r["id"] for r in rows}
        inserted = sum(1 for i in returned if i in fresh)
        return UpsertCounts(
            inserted=inserted,
            updated=len(returned) - inserted,
            unchanged=len(incoming) - len(returned),
        )

    async def _upsert_values(self, rows: list[dict[str, Any]], now: datetime) -> list[UUID]:
        """SQLite: one prepared upsert, batched by SQLAlchemy's insertmanyvalues."""
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
        return list((await self._s.execute(stmt, rows)).scalars().all())

    async def _upsert_copy(self, rows: list[dict[str, Any]], now: datetime) -> list[UUID]:
        """PostgreSQL: COPY into a temporary staging table, then one INSERT ... SELECT ... ON CONFLICT.

        COPY moves rows several times faster than multi-row INSERTs; the staging table lives
        in the same transaction, so the unit of work still commits or rolls back everything.
        """
        conn = await self._s.connection()
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(_STAGE_DDL)
        records = [tuple(_copy_value(r[c]) for c in _COLUMNS) for r in rows]
        await raw.copy_records_to_table("_transactions_stage", records=records, columns=_COLUMNS)
        result = await raw.fetch(_MERGE_SQL, now)
        await raw.execute("TRUNCATE _transactions_stage")
        return [r["id"] for r in result]

    async def drop_stale_pending(self, account: Account, batch: TransactionBatch) -> int:
        """Pending items are often re-identified by banks; drop stored ones the batch no longer has."""
        if batch.replace_pending_since is None:
            return 0
        keep = [t.provider_transaction_id for t in batch.transactions]
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
