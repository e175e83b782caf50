"""Trading settings, orders (one per user and idempotency key) and their audit trail; API tokens."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import ARRAY, Text, and_, bindparam, func, insert, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import Account, Connection, User
from finsync.domain.ports import Page, PageRequest, WrittenPage
from finsync.domain.trading import (
    ORDER_STATUS_CHANNEL,
    ApiToken,
    Expected,
    Order,
    OrderEvent,
    OrderStatus,
    OrderStatusChange,
    StatusNote,
    TradingSettings,
)
from finsync.infrastructure.db import written as w
from finsync.infrastructure.db.mapping import keyset, make_page, to_entity, to_row
from finsync.infrastructure.db.tables import (
    UNSETTLED,
    AccountRow,
    ApiTokenRow,
    ConnectionRow,
    OrderEventRow,
    OrderRow,
    TradingSettingsRow,
    UserRow,
)

settings_t = TradingSettingsRow.__table__  # type: ignore[attr-defined]
orders = OrderRow.__table__  # type: ignore[attr-defined]
# A fill as FillOut writes it: stored as JSON text (decimals as str(), times ISO with offset).
_FILL = w.item(
    {
        "quantity": w.quoted(w.decimal_in_json("f->>'quantity'"), nullable=False),
        "price": w.quoted(w.decimal_in_json("f->>'price'"), nullable=False),
        "at": w.utc("(f->>'at')::timestamptz", nullable=True),
    }
)
_ORDER_JSON = {  # OrderOut's fields, see db/written.py
    **{c: w.quoted(c, nullable=False) for c in ("id", "account_id", "connection_id")},
    "symbol": w.text("symbol", nullable=False),
    **{c: w.quoted(c, nullable=False) for c in ("side", "type", "time_in_force")},
    **{c: w.quoted(c) for c in ("quantity", "notional", "limit_price", "stop_price")},
    "currency": w.text("currency", nullable=False),
    "status": w.quoted("status", nullable=False),
    "filled_quantity": w.quoted("filled_quantity", nullable=False),
    "average_price": w.quoted("average_price"),
    # Most orders have no fill: those skip the subquery (a function scan per order).
    "fills": f"CASE WHEN fills = '[]' THEN '[]' ELSE concat('[', (SELECT string_agg({_FILL}, ',' "  # noqa: S608
    "ORDER BY at) FROM jsonb_array_elements(fills) WITH ORDINALITY AS each(f, at)), ']') END",
    **{c: w.text(c) for c in ("reason", "broker_order_id", "client_order_id")},
    "created_by": w.text("created_by", nullable=False),
    "created_at": w.utc("created_at"),
    "updated_at": w.utc("updated_at"),
}
events = OrderEventRow.__table__  # type: ignore[attr-defined]
tokens = ApiTokenRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]
OPEN = [s.value for s in OrderStatus if not s.final]
accounts_t = AccountRow.__table__  # type: ignore[attr-defined]
connections_t = ConnectionRow.__table__  # type: ignore[attr-defined]
_CONNECTION_COLUMNS = [c.label(f"c_{c.name}") for c in connections_t.c]
# Built once: building an UPDATE of every column was a tenth of an order's CPU.
_SAVE_ORDER = update(orders).where(orders.c.id == bindparam("saved_id"))
# The same, only while the stored status and fill are those the change was computed from.
_SAVE_CHANGE = _SAVE_ORDER.where(
    orders.c.status == bindparam("before_status"),
    orders.c.filled_quantity.is_not_distinct_from(
        bindparam("before_filled", type_=orders.c.filled_quantity.type)
    ),
)


def _change(row: Any) -> OrderStatusChange:
    data = row["data"] or {}
    filled = data.get("filled_quantity")
    return OrderStatusChange(
        event_id=UUID(str(row["id"])),
        order_id=UUID(str(row["order_id"])),
        account_id=UUID(str(row["account_id"])),
        connection_id=UUID(str(row["connection_id"])),
        symbol=row["symbol"],
        client_order_id=row["client_order_id"],
        status=str(data.get("to")),
        previous_status=None if data.get("from") is None else str(data["from"]),
        # Recorded with the change since this stream exists; older changes show the order's.
        filled_quantity=Decimal(str(filled)) if filled is not None else Decimal(row["filled_quantity"]),
        at=row["at"],
    )


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


class SqlTradingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        self.notes: list[StatusNote] = []  # SQLite: status changes to announce after the commit

    async def settings(self, connection_id: UUID, *, lock: bool = False) -> TradingSettings | None:
        stmt: Any = select(settings_t).where(settings_t.c.connection_id == connection_id)
        if lock:
            if self._s.get_bind().dialect.name == "sqlite":  # the write lock and the row in one go
                stmt = (
                    update(settings_t)
                    .where(settings_t.c.connection_id == connection_id)
                    .values(connection_id=settings_t.c.connection_id)
                    .returning(*settings_t.c)
                )
            else:
                stmt = stmt.with_for_update()
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(TradingSettings, row)

    async def save_settings(self, value: TradingSettings) -> None:
        row = to_row(value)
        stmt = _insert(self._s)(settings_t).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["connection_id"], set_={k: v for k, v in row.items() if k != "connection_id"}
        )
        await self._s.execute(stmt)

    async def add_order(self, order: Order) -> bool:
        stmt = _insert(self._s)(orders).values(to_row(order))
        stmt = stmt.on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def order(self, order_id: UUID, user_id: UUID | None = None) -> Order | None:
        stmt = select(orders).where(orders.c.id == order_id)
        if user_id is not None:
            stmt = stmt.where(orders.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Order, row)

    async def account_to_trade(self, account_id: UUID, user_id: UUID) -> tuple[Account, Connection] | None:
        stmt = (
            select(accounts_t, *_CONNECTION_COLUMNS)
            .join(connections_t, connections_t.c.id == accounts_t.c.connection_id)
            .where(accounts_t.c.id == account_id, accounts_t.c.user_id == user_id)
        )
        row = (await self._s.execute(stmt)).mappings().first()
        if row is None:
            return None
        connection = to_entity(Connection, {c.name: row[f"c_{c.name}"] for c in connections_t.c})
        return to_entity(Account, row), connection

    async def order_by_key(self, user_id: UUID, key: str) -> Order | None:
        stmt = select(orders).where(orders.c.user_id == user_id, orders.c.idempotency_key == key)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Order, row)

    async def save_order(self, order: Order, expect: Expected | None = None) -> bool:
        values = to_row(order)
        values["saved_id"] = values.pop("id")  # the SET clause is the other keys
        if expect is None:
            await self._s.execute(_SAVE_ORDER, values)
            return True
        values["before_status"] = expect.status.value
        values["before_filled"] = expect.filled_quantity
        result = await self._s.execute(_SAVE_CHANGE, values)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def claim_resend(self, order_id: UUID, now: datetime, lost_before: datetime) -> bool:
        # One statement decides on the stored row, not on what the caller read before it
        # asked the broker: an order found and recorded meanwhile (a broker id, another
        # status), or one whose first send is still on the wire, is never claimed.
        stmt = (
            update(orders)
            .where(
                orders.c.id == order_id,
                orders.c.submit_attempts == 1,
                orders.c.broker_order_id.is_(None),
                or_(
                    orders.c.status == OrderStatus.UNKNOWN.value,
                    and_(
                        orders.c.status == OrderStatus.PENDING_SUBMIT.value,
                        orders.c.submitted_at < lost_before,
                    ),
                ),
            )
            .values(
                submit_attempts=2,
                status=OrderStatus.PENDING_SUBMIT.value,
                submitted_at=now,
                updated_at=now,
            )
        )
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def orders(
        self, user_id: UUID, page: PageRequest, account_id: UUID | None = None, open_only: bool = False
    ) -> Page[Order]:
        stmt = select(orders).where(orders.c.user_id == user_id)
        if account_id is not None:
            stmt = stmt.where(orders.c.account_id == account_id)
        if open_only:
            stmt = stmt.where(orders.c.status.in_(OPEN))
        stmt = keyset(stmt, [(orders.c.id, UUID)], page, descending=True)
        items = [to_entity(Order, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda o: (o.id,), of=orders)

    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``orders``' page (every account, open or not) as ``OrderOut`` JSON, see
        ``db/written.py``."""
        return await w.written(self._s, orders, _ORDER_JSON, {"user_id": user_id}, page, descending=True)

    async def open_orders(self, connection_id: UUID) -> list[Order]:
        stmt = select(orders).where(orders.c.connection_id == connection_id, orders.c.status.in_(OPEN))
        return [to_entity(Order, r) for r in (await self._s.execute(stmt.order_by(orders.c.id))).mappings()]

    async def taken_broker_ids(self, connection_id: UUID) -> set[str]:
        stmt = select(orders.c.broker_order_id).where(
            orders.c.connection_id == connection_id, orders.c.broker_order_id.is_not(None)
        )
        return {str(v) for v in (await self._s.execute(stmt)).scalars()}

    async def placed_since(self, connection_id: UUID, since: datetime) -> tuple[int, Decimal]:
        """Counted and summed by the database (SQLite: ``dsum_rate`` over its text decimals)."""
        total = (
            func.coalesce(func.sum(orders.c.estimated_notional), 0)
            if self._s.get_bind().dialect.name == "postgresql"
            else func.dsum_rate(orders.c.estimated_notional, literal("1"))
        )
        stmt = select(func.count(), total).where(
            orders.c.connection_id == connection_id,
            orders.c.created_at >= since,
            orders.c.status != OrderStatus.REJECTED.value,
        )
        count, spent = (await self._s.execute(stmt)).one()
        return int(count), Decimal(spent if spent is not None else 0)

    async def add_events(self, *items: OrderEvent) -> None:
        """One multi-row insert: an order's answer and its status change cost one round trip.
        A status change is announced in the same statement on PostgreSQL (``pg_notify`` in a
        data-modifying CTE: delivered at commit, dropped by a rollback, no extra round trip);
        on SQLite the unit of work hands ``notes`` to the in-process feed after its commit."""
        if not items:
            return
        stmt = insert(events).values([to_row(e) for e in items])
        notes = [
            StatusNote(e.id, e.order_id, e.user_id, str(e.data.get("to")))
            for e in items
            if e.kind == "status"
        ]
        if notes and self._s.get_bind().dialect.name == "postgresql":
            payloads = func.unnest(bindparam("notes", [n.payload() for n in notes], type_=ARRAY(Text)))
            each = payloads.column_valued("note")
            announce = select(func.pg_notify(ORDER_STATUS_CHANNEL, each))
            await self._s.execute(announce.add_cte(stmt.cte("recorded")))
            return
        await self._s.execute(stmt)
        self.notes += notes

    async def unsettled_orders(self, limit: int) -> list[Order]:
        stmt = select(orders).where(text(UNSETTLED)).order_by(orders.c.id).limit(limit)  # its index
        return [to_entity(Order, r) for r in (await self._s.execute(stmt)).mappings()]

    async def last_status_event(self, user_id: UUID) -> UUID | None:
        stmt = (
            select(events.c.id)
            .where(events.c.user_id == user_id, events.c.kind == "status")
            .order_by(events.c.id.desc())
            .limit(1)
        )
        found = (await self._s.execute(stmt)).scalar()
        return None if found is None else UUID(str(found))

    async def status_changes(
        self,
        user_id: UUID,
        after: UUID | None,
        also: Collection[UUID] = (),
        connections: Collection[UUID] | None = None,
        limit: int = 500,
    ) -> list[OrderStatusChange]:
        stmt = (
            select(
                *(events.c[n] for n in ("id", "order_id", "data", "at")),
                *(orders.c[n] for n in ("account_id", "connection_id", "symbol", "client_order_id")),
                orders.c.filled_quantity,
            )
            .join(orders, orders.c.id == events.c.order_id)
            .where(events.c.user_id == user_id, events.c.kind == "status")
        )
        if after is not None:
            wanted = events.c.id > after
            stmt = stmt.where(or_(wanted, events.c.id.in_(list(also))) if also else wanted)
        if connections is not None:
            stmt = stmt.where(orders.c.connection_id.in_(list(connections)))
        rows = (await self._s.execute(stmt.order_by(events.c.id).limit(limit))).mappings()
        return [_change(r) for r in rows]

    async def events(self, order_id: UUID) -> list[OrderEvent]:
        stmt = select(events).where(events.c.order_id == order_id).order_by(events.c.id)
        return [to_entity(OrderEvent, r) for r in (await self._s.execute(stmt)).mappings()]


class SqlApiTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, token: ApiToken) -> None:
        await self._s.execute(insert(tokens).values(to_row(token)))

    async def by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        user_cols = [c.label(f"u_{c.name}") for c in users.c]
        stmt = (
            select(tokens, *user_cols)
            .join(users, users.c.id == tokens.c.user_id)
            .where(
                tokens.c.token_hash == token_hash, tokens.c.revoked_at.is_(None), users.c.is_active.is_(True)
            )
        )
        row = (await self._s.execute(stmt)).mappings().first()
        if row is None:
            return None
        user = to_entity(User, {c.name: row[f"u_{c.name}"] for c in users.c})
        return to_entity(ApiToken, row), user

    async def list(self, user_id: UUID) -> list[ApiToken]:
        stmt = select(tokens).where(tokens.c.user_id == user_id).order_by(tokens.c.id)
        return [to_entity(ApiToken, r) for r in (await self._s.execute(stmt)).mappings()]

    async def revoke(self, token_id: UUID, user_id: UUID, when: datetime) -> bool:
        stmt = (
            update(tokens)
            .where(tokens.c.id == token_id, tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]
