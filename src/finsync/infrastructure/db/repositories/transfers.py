"""Links between two of a user's transactions that are a transfer between their own accounts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, insert, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.analytics_ports import TransferCandidate
from finsync.domain.categories import TransferLink, TransferStatus
from finsync.domain.entities import utcnow
from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.ports import Page, PageRequest, WrittenPage
from finsync.infrastructure.db import raw
from finsync.infrastructure.db import written as w
from finsync.infrastructure.db.analytics_tables import TransferLinkRow
from finsync.infrastructure.db.cash_flow import lock, mark_written
from finsync.infrastructure.db.mapping import keyset, make_page
from finsync.infrastructure.db.tables import TransactionRow

links = TransferLinkRow.__table__  # type: ignore[attr-defined]
transactions = TransactionRow.__table__  # type: ignore[attr-defined]
_CHUNK = 2_000


_TRANSFER_LIKE = or_(
    transactions.c.type == TransactionType.TRANSFER.value,
    and_(
        transactions.c.type == TransactionType.OTHER.value,
        transactions.c.subtype.in_([TransactionSubtype.PAYMENT.value, TransactionSubtype.OTHER.value]),
    ),
)


def _link(row: Any) -> TransferLink:
    return TransferLink(
        id=row["id"],
        user_id=row["user_id"],
        outflow_id=row["outflow_id"],
        inflow_id=row["inflow_id"],
        status=TransferStatus(row["status"]),
        created_at=row["created_at"],
    )


_inflow, _outflow = transactions.alias("inflow"), transactions.alias("outflow")
_LEGS = links.outerjoin(_inflow, _inflow.c.id == links.c.inflow_id).outerjoin(
    _outflow, _outflow.c.id == links.c.outflow_id
)
# A link with what its legs say (the amount and currency of the money in, both dates), in the
# link's own statement: one look-up per link made a 50-link page 100 statements (27 ms).
_DESCRIBED = select(
    links,
    _inflow.c.amount,
    _inflow.c.currency,
    _inflow.c.transaction_date.label("inflow_date"),
    _outflow.c.transaction_date.label("outflow_date"),
).select_from(_LEGS)


_LINK_JSON = {  # TransferOut's fields, see db/written.py
    "id": w.quoted("transfer_links.id", nullable=False),
    "outflow_id": w.quoted("transfer_links.outflow_id", nullable=False),
    "inflow_id": w.quoted("transfer_links.inflow_id", nullable=False),
    "status": w.quoted("transfer_links.status", nullable=False),
    "amount": w.quoted("inflow.amount"),
    "currency": w.text("inflow.currency"),
    "outflow_date": w.text("outflow.transaction_date"),
    "inflow_date": w.text("inflow.transaction_date"),
    "created_at": w.utc("transfer_links.created_at"),
}
_LEGS_SQL = raw.inline(_LEGS)  # the written page's FROM


def _described(row: Any) -> TransferLink:
    link = _link(row)
    link.amount, link.currency = row["amount"], row["currency"]
    link.inflow_date, link.outflow_date = row["inflow_date"], row["outflow_date"]
    return link


class SqlTransferRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def lock(self, user_id: UUID) -> None:
        # The user's cash-flow lock (held to commit, taken again there): two syncs of two of
        # the user's accounts at once each saw only their own new leg, and paired neither.
        await lock(self._s, user_id)

    def _linked(self) -> Any:
        live = links.c.status != TransferStatus.REJECTED.value
        return union_all(
            select(links.c.outflow_id.label("id")).where(live),
            select(links.c.inflow_id.label("id")).where(live),
        )

    async def candidates(
        self, user_id: UUID, since: date, until: date, ids: Sequence[UUID] | None = None
    ) -> list[TransferCandidate]:
        t = transactions.c
        stmt = select(t.id, t.account_id, t.amount, t.currency, t.transaction_date).where(
            t.user_id == user_id,
            t.transaction_date >= since,
            t.transaction_date <= until,
            t.status != TransactionStatus.CANCELLED.value,
            _TRANSFER_LIKE,
            or_(t.excluded_from_analytics.is_(None), t.excluded_from_analytics.is_(False)),
            t.id.not_in(self._linked().scalar_subquery()),
        )
        if ids is not None:
            stmt = stmt.where(t.id.in_(list(ids)))
        return [TransferCandidate(*r) for r in (await self._s.execute(stmt)).all()]

    async def rejected_pairs(self, user_id: UUID) -> set[tuple[UUID, UUID]]:
        stmt = select(links.c.outflow_id, links.c.inflow_id).where(
            links.c.user_id == user_id, links.c.status == TransferStatus.REJECTED.value
        )
        return {(a, b) for a, b in (await self._s.execute(stmt)).all()}

    async def add(self, items: Sequence[TransferLink]) -> int:
        if not items:
            return 0
        rows = [
            {
                "id": link.id,
                "user_id": link.user_id,
                "outflow_id": link.outflow_id,
                "inflow_id": link.inflow_id,
                "status": link.status.value,
                "created_at": link.created_at or utcnow(),
            }
            for link in items
        ]
        await self._s.execute(insert(links), rows)
        mark_written(self._s, {link.user_id for link in items})
        return len(rows)

    async def get(self, link_id: UUID, user_id: UUID) -> TransferLink | None:
        stmt = _DESCRIBED.where(links.c.id == link_id, links.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else _described(row)

    async def set_status(self, link_id: UUID, status: TransferStatus) -> None:
        stmt = update(links).where(links.c.id == link_id).values(status=status.value)
        mark_written(self._s, (await self._s.execute(stmt.returning(links.c.user_id))).scalars())

    async def find(
        self, user_id: UUID, status: TransferStatus | None, page: PageRequest
    ) -> Page[TransferLink]:
        stmt = _DESCRIBED.where(links.c.user_id == user_id)
        if status is not None:
            stmt = stmt.where(links.c.status == status.value)
        stmt = keyset(stmt, [(links.c.id, UUID)], page, descending=True)
        items = [_described(r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda link: (link.id,), of=links)

    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page (any status) as ``TransferOut`` JSON, see ``db/written.py``."""
        scope = {"user_id": user_id}
        return await w.written(self._s, links, _LINK_JSON, scope, page, descending=True, source=_LEGS_SQL)

    async def live_link_of(self, transaction_ids: Sequence[UUID]) -> TransferLink | None:
        ids = list(transaction_ids)
        stmt = select(links).where(
            links.c.status != TransferStatus.REJECTED.value,
            or_(links.c.outflow_id.in_(ids), links.c.inflow_id.in_(ids)),
        )
        row = (await self._s.execute(stmt.limit(1))).mappings().first()
        return None if row is None else _link(row)

    async def forget_pair(self, outflow_id: UUID, inflow_id: UUID) -> None:
        await self._s.execute(  # a rejected link counts nothing out: cash flow is unchanged
            delete(links).where(
                links.c.outflow_id == outflow_id,
                links.c.inflow_id == inflow_id,
                links.c.status == TransferStatus.REJECTED.value,
            )
        )

    async def forget_detected(self, transaction_ids: Sequence[UUID]) -> int:
        """Drop the detected links of these transactions (a sync changed them: the pairing is
        made again from what they hold now). Links the user confirmed or rejected stay."""
        ids = list(dict.fromkeys(transaction_ids))
        total = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            stmt = delete(links).where(
                links.c.status == TransferStatus.DETECTED.value,
                or_(links.c.outflow_id.in_(chunk), links.c.inflow_id.in_(chunk)),
            )
            owners = list((await self._s.execute(stmt.returning(links.c.user_id))).scalars())
            mark_written(self._s, owners)
            total += len(owners)
        return total

    async def forget_transactions(self, transaction_ids: Sequence[UUID]) -> int:
        ids = list(transaction_ids)
        total = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            stmt = delete(links).where(or_(links.c.outflow_id.in_(chunk), links.c.inflow_id.in_(chunk)))
            owners = list((await self._s.execute(stmt.returning(links.c.user_id))).scalars())
            mark_written(self._s, owners)
            total += len(owners)
        return total
