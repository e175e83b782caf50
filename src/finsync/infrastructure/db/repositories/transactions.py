"""Transactions: set-based upsert keyed by (account_id, provider_transaction_id)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
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
_CHUNK = 1000  # rows per statement: well under both backends' bound-parameter limits
_LIKE_ESCAPE = str.maketrans({"%": r"\%", "_": r"\_", "\\": r"\\"})


def content_hash(values: dict[str, Any]) -> str:
    """Fingerprint of everything a provider can change, so re-syncs skip identical rows."""
    return hashlib.sha256(json_dumps([values[f] for f in _FIELDS]).encode()).hexdigest()


class SqlTransactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    def _insert(self) -> Any:
        dialect = self._s.get_bind().dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(transactions)

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
        counts = UpsertCounts()
        base = self._insert()
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
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            fresh = {r["id"] for r in chunk}
            returned = (await self._s.execute(stmt.values(chunk))).scalars().all()
            inserted = sum(1 for i in returned if i in fresh)
            counts.inserted += inserted
            counts.updated += len(returned) - inserted
            counts.unchanged += len(chunk) - len(returned)
        counts.unchanged += len(incoming) - len(rows)
        return counts

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
