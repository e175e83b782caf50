"""An order's own way to the database: few statements, each compiled once, run on the driver.

Through a unit of work an order cost about a dozen statements in three transactions, and
SQLAlchemy's per-statement work (building the query, its cache key, the greenlet hop, result
processing; on SQLite three or four hand-offs to aiosqlite's thread) was most of the CPU
finsync added to an order. Here each statement is written once in SQLAlchemy Core, compiled
once per dialect with its parameters' own type processors (the values are encoded exactly as
the repositories encode them), and run on the pooled connection's driver (asyncpg, aiosqlite).

PostgreSQL: the read where an order starts is one statement (caller, account, connection,
settings, the key's order, the last price); the insert is one statement too — the settings
row locked and compared with what was checked, the order inserted unless its key exists, its
request event — committed before the send; with a daily limit, a transaction counts today's
orders after taking the lock. After the send: one statement (the order, its events and the
``pg_notify`` of a status change; a status change only while the stored status and fill are
those it was computed from, the events and the notification only if that UPDATE matched).
SQLite: the same statements, one hand-off each.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, time
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import ARRAY, Dialect, Text, and_, bindparam, exists, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import ClauseElement

from finsync.domain.entities import Account, Connection
from finsync.domain.errors import Conflict
from finsync.domain.ports import OrderFeed
from finsync.domain.trading import (
    ORDER_STATUS_CHANNEL,
    ApiToken,
    Expected,
    Order,
    OrderContext,
    OrderEvent,
    OrderStatus,
    Placement,
    StatusNote,
    TradingSettings,
)
from finsync.infrastructure.db.mapping import to_entity, to_row
from finsync.infrastructure.db.raw import pooled
from finsync.infrastructure.db.tables import (
    AccountRow,
    ApiTokenRow,
    ConnectionRow,
    HoldingRow,
    OrderEventRow,
    OrderRow,
    TradingSettingsRow,
    UserRow,
)
from finsync.infrastructure.db.types import ExactDecimal

tokens = ApiTokenRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]
accounts = AccountRow.__table__  # type: ignore[attr-defined]
connections = ConnectionRow.__table__  # type: ignore[attr-defined]
settings_t = TradingSettingsRow.__table__  # type: ignore[attr-defined]
orders = OrderRow.__table__  # type: ignore[attr-defined]
events = OrderEventRow.__table__  # type: ignore[attr-defined]
holdings = HoldingRow.__table__  # type: ignore[attr-defined]

_CONFLICT = (
    "another change to the same order was being written at the same time; nothing of this one was saved"
)

# A unique key or foreign key that another writer took first, a deadlock, a serialisation
# failure: the unit of work's Conflict, with nothing of this write saved.
_RACES = (asyncpg.IntegrityConstraintViolationError, asyncpg.TransactionRollbackError, sqlite3.IntegrityError)


def _param(prefix: str, column: Any) -> Any:
    return bindparam(f"{prefix}{column.name}", type_=column.type)


def _params(prefix: str, entity: Any) -> dict[str, Any]:
    return {f"{prefix}{name}": value for name, value in to_row(entity).items()}


class Compiled:
    """One statement compiled for one dialect: its text, its parameters in placeholder order
    with their bind processors, and a decoder per result column."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, columns: Sequence[Any] = ()) -> None:
        compiled: Any = statement.compile(dialect=dialect)  # a SQLCompiler: positiontup, binds
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())
        self._defaults = dict(compiled.params)  # literal values written into the statement
        self._encoders = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self._names
        )
        self.labels = tuple(c.key for c in columns)
        self._decoders = tuple(_decoder(c.type, dialect) for c in columns)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, encode in zip(self._names, self._encoders, strict=True):
            value = values[name] if name in values else self._defaults[name]
            out.append(value if encode is None else encode(value))  # JSON: None is 'null'
        return out

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        decoders = self._decoders
        return [
            {
                label: value if decode is None or value is None else decode(value)
                for label, decode, value in zip(self.labels, decoders, row, strict=True)
            }
            for row in raw
        ]


def _decoder(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    if isinstance(type_, ExactDecimal):  # asyncpg answers Decimal already, SQLite text
        return lambda value: type_.process_result_value(value, dialect)
    processor: Callable[[Any], Any] | None = type_.dialect_impl(dialect).result_processor(dialect, None)
    return processor


def _labelled(prefix: str, table: Any) -> list[Any]:
    return [c.label(f"{prefix}{c.name}") for c in table.c]


def _entity(cls: type, prefix: str, table: Any, row: Mapping[str, Any]) -> Any:
    if row[f"{prefix}{next(iter(table.primary_key)).name}"] is None:
        return None  # the outer join found nothing
    return to_entity(cls, {c.name: row[f"{prefix}{c.name}"] for c in table.c})


def _context(by_token: bool) -> Any:
    """The read where an order starts: one row when the caller is an active user (or an
    unrevoked token of one), with whatever of account, connection, settings, stored order
    and last price exists."""
    user_id = users.c.id
    last_price = (
        select(holdings.c.current_price)
        .where(
            holdings.c.account_id == bindparam("account_id", type_=accounts.c.id.type),
            holdings.c.user_id == user_id,
            holdings.c.symbol == bindparam("symbol", type_=holdings.c.symbol.type),
            holdings.c.current_price.is_not(None),
        )
        .order_by(holdings.c.id)
        .limit(1)
        .scalar_subquery()
        .label("last_price")
    )
    columns = [user_id.label("user_id"), *_labelled("a_", accounts), *_labelled("c_", connections),
               *_labelled("s_", settings_t), *_labelled("o_", orders), last_price]  # fmt: skip
    source: Any = users
    if by_token:
        columns = [*_labelled("t_", tokens), *columns]
        source = tokens.join(users, users.c.id == tokens.c.user_id)
    source = (
        source.outerjoin(
            accounts,
            and_(
                accounts.c.id == bindparam("account_id", type_=accounts.c.id.type),
                accounts.c.user_id == user_id,
            ),
        )
        .outerjoin(connections, connections.c.id == accounts.c.connection_id)
        .outerjoin(settings_t, settings_t.c.connection_id == connections.c.id)
        .outerjoin(
            orders,
            and_(
                orders.c.user_id == user_id,
                orders.c.idempotency_key == bindparam("key", type_=orders.c.idempotency_key.type),
            ),
        )
    )
    who: ColumnElement[bool] = (
        and_(
            tokens.c.token_hash == bindparam("token_hash", type_=tokens.c.token_hash.type),
            tokens.c.revoked_at.is_(None),
        )
        if by_token
        else user_id == bindparam("user_id", type_=user_id.type)
    )
    return select(*columns).select_from(source).where(who, users.c.is_active.is_(True))


class Kept(StrEnum):
    """How the order's context was had: read just now, or kept from an earlier order of the
    same caller and account (then the insert checks it still holds)."""

    READ = "read"
    BY_USER = "by_user"
    BY_TOKEN = "by_token"


def _unchanged(kept: Kept = Kept.READ) -> list[ColumnElement[bool]]:
    """The connection's settings row, if it is still the one the order was checked against
    (every column: two changes can carry the same ``updated_at``); for a kept context, only
    while its user is active, its token unrevoked, and the account and connection are still
    the ones it holds (the adapter was built from those credentials)."""
    row = settings_t.c.connection_id == _param("s_", settings_t.c.connection_id)  # the key's index
    still = [row, *(c.is_not_distinct_from(_param("s_", c)) for c in settings_t.c)]
    if kept is Kept.READ:
        return still
    held = (
        select(accounts.c.id)
        .join(connections, connections.c.id == accounts.c.connection_id)
        .join(users, users.c.id == accounts.c.user_id)
        .where(
            accounts.c.id == _param("a_", accounts.c.id),
            accounts.c.user_id == _param("a_", accounts.c.user_id),
            accounts.c.connection_id == _param("a_", accounts.c.connection_id),
            accounts.c.currency == _param("a_", accounts.c.currency),
            connections.c.provider == _param("c_", connections.c.provider),
            connections.c.environment.is_not_distinct_from(_param("c_", connections.c.environment)),
            connections.c.credentials.is_not_distinct_from(_param("c_", connections.c.credentials)),
            users.c.is_active.is_(True),
        )
    )
    still.append(exists(held))
    if kept is Kept.BY_TOKEN:
        token = select(tokens.c.id).where(
            tokens.c.id == _param("t_", tokens.c.id),
            tokens.c.user_id == _param("a_", accounts.c.user_id),
            tokens.c.revoked_at.is_(None),
        )
        still.append(exists(token))
    return still


def _today(dialect: Dialect) -> Any:
    """Orders placed on the connection since ``since`` (rejected ones do not count) and their
    estimated notional, summed exactly by the database (SQLite: ``dsum_rate`` over its text
    decimals, never through a float)."""
    total = (
        func.coalesce(func.sum(orders.c.estimated_notional), 0)
        if dialect.name == "postgresql"
        else func.dsum_rate(orders.c.estimated_notional, literal("1"))
    )
    return select(func.count(), total).where(
        orders.c.connection_id == bindparam("connection_id", type_=orders.c.connection_id.type),
        orders.c.created_at >= bindparam("since", type_=orders.c.created_at.type),
        orders.c.status != OrderStatus.REJECTED.value,
    )


class _Statements:
    """Every statement of the desk, compiled for one dialect (each on first use)."""

    def __init__(self, dialect: Dialect) -> None:
        pg = dialect.name == "postgresql"
        self.pg = pg
        ctx = _context(by_token=True)
        self.context_by_token = Compiled(ctx, dialect, list(ctx.selected_columns))
        ctx = _context(by_token=False)
        self.context_by_user = Compiled(ctx, dialect, list(ctx.selected_columns))
        self.today = Compiled(_today(dialect), dialect)
        self._dialect = dialect
        self._records: dict[tuple[int, bool], Compiled] = {}
        self._locks: dict[Kept, Compiled] = {}
        self._places: dict[Kept, Compiled] = {}
        self._adds: dict[Kept, Compiled] = {}
        if not pg:
            self.request = Compiled(
                insert(events).values({c.name: _param("e_", c) for c in events.c}), dialect
            )

    def lock(self, kept: Kept) -> Compiled:
        """The settings row, locked, if it still equals what was checked (and, for a kept
        context, if its caller, account and connection are still those it holds)."""
        if kept not in self._locks:
            still = _unchanged(kept)
            lock: Any = (
                select(settings_t.c.connection_id).where(*still).with_for_update()
                if self.pg
                else update(settings_t)  # SQLite: the UPDATE takes the database's write lock
                .where(*still)
                .values(connection_id=settings_t.c.connection_id)
                .returning(settings_t.c.connection_id)
            )
            self._locks[kept] = Compiled(lock, self._dialect, [settings_t.c.connection_id])
        return self._locks[kept]

    def place(self, kept: Kept) -> Compiled:
        """PostgreSQL: the lock, the order unless its key exists, its request event: one statement."""
        if kept not in self._places:
            locked = (
                select(settings_t.c.connection_id).where(*_unchanged(kept)).with_for_update().cte("locked")
            )
            order_values = {c.name: _param("o_", c) for c in orders.c}
            placed = (
                postgresql.insert(orders)
                .from_select(
                    list(order_values),
                    select(*order_values.values()).where(exists(select(locked.c.connection_id))),
                    include_defaults=False,
                )
                .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
                .returning(orders.c.id)
                .cte("placed")
            )
            request_values = {**{c.name: _param("e_", c) for c in events.c}, "order_id": placed.c.id}
            recorded = (
                insert(events)
                .from_select(
                    list(request_values),
                    select(*request_values.values()).select_from(placed),  # only with the order
                    include_defaults=False,
                )
                .cte("recorded")
            )
            outcome = select(
                select(func.count()).select_from(locked).scalar_subquery().label("locked"),
                select(func.count()).select_from(placed).scalar_subquery().label("placed"),
            ).add_cte(recorded)
            self._places[kept] = Compiled(outcome, self._dialect, list(outcome.selected_columns))
        return self._places[kept]

    @cached_property
    def add(self) -> Compiled:
        """SQLite: the order, unless its key exists."""
        add = (
            sqlite.insert(orders)
            .values({c.name: _param("o_", c) for c in orders.c})
            .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
            .returning(orders.c.id)
        )
        return Compiled(add, self._dialect, [orders.c.id])

    def record(self, count: int, guarded: bool) -> Compiled:
        """The order's UPDATE with ``count`` events, ``guarded`` by the status and fill it was
        computed from (PostgreSQL: one statement — the UPDATE, the events and the
        announcement of status changes, the last two only when the UPDATE matched — answering
        whether it did; SQLite: the events' INSERT, run only after a matching UPDATE)."""
        found = self._records.get((count, guarded))
        if found is not None:
            return found
        rows = [{c.name: _param(f"e{i}_", c) for c in events.c} for i in range(count)]
        stmt: Any
        if self.pg:
            saved = _save(guarded).returning(orders.c.id).cte("saved")
            matched = exists(select(saved.c.id))
            recorded = [  # one INSERT … SELECT per event: nothing unless the order was saved
                insert(events)
                .from_select(list(row), select(*row.values()).where(matched), include_defaults=False)
                .cte(f"recorded{i}")
                for i, row in enumerate(rows)
            ]
            notes = func.unnest(bindparam("notes", type_=ARRAY(Text))).column_valued("note")
            notified = select(func.pg_notify(ORDER_STATUS_CHANNEL, notes).label("n")).where(matched)
            notified_cte = notified.cte("notified")  # referenced below, so it runs
            stmt = select(
                select(func.count()).select_from(saved).scalar_subquery().label("saved"),
                select(func.count()).select_from(notified_cte).scalar_subquery().label("notified"),
            )
            for cte in recorded:
                stmt = stmt.add_cte(cte)
            columns: list[Any] = list(stmt.selected_columns)
        else:
            stmt, columns = insert(events).values(rows), []
        self._records[(count, guarded)] = Compiled(stmt, self._dialect, columns)
        return self._records[(count, guarded)]


def _save(guarded: bool = False) -> Any:
    """The order's UPDATE; ``guarded``: only while its stored status and filled quantity are
    still those the write was computed from (``before_status``, ``before_filled``)."""
    values = {c.name: _param("o_", c) for c in orders.c if c.name != "id"}
    stmt = update(orders).where(orders.c.id == bindparam("saved_id", type_=orders.c.id.type))
    if guarded:
        stmt = stmt.where(
            orders.c.status == bindparam("before_status", type_=orders.c.status.type),
            orders.c.filled_quantity.is_not_distinct_from(
                bindparam("before_filled", type_=orders.c.filled_quantity.type)
            ),
        )
    return stmt.values(values)


def _order_args(order: Order, expect: Expected | None) -> dict[str, Any]:
    values = _params("o_", order)
    values["saved_id"] = order.id
    if expect is not None:
        values["before_status"] = expect.status.value
        values["before_filled"] = expect.filled_quantity
    return values


def _event_args(items: Sequence[OrderEvent]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for i, item in enumerate(items):
        values.update(_params(f"e{i}_", item))
    return values


def _notes(items: Sequence[OrderEvent]) -> list[StatusNote]:
    return [
        StatusNote(e.id, e.order_id, e.user_id, str(e.data.get("to"))) for e in items if e.kind == "status"
    ]


class SqlOrderDesk:
    """``OrderDesk`` on the engine's pool: PostgreSQL through asyncpg, SQLite through aiosqlite."""

    def __init__(self, engine: AsyncEngine, feed: OrderFeed | None = None) -> None:
        self._engine = engine
        self._feed = feed  # SQLite: status changes reach this process's streams after the commit
        self._held: ContextVar[Any | None] = ContextVar(f"order_desk_{id(self)}", default=None)

    # Compiled on first use, not when the container is built: compiling every statement costs
    # tens of milliseconds, which every process that never trades (and every test) would pay.
    @cached_property
    def _sql(self) -> _Statements:
        return _Statements(self._engine.dialect)

    @cached_property
    def _save(self) -> Compiled:
        return Compiled(_save(), self._engine.dialect)

    @cached_property
    def _save_change(self) -> Compiled:  # SQLite: RETURNING tells whether the guard held
        return Compiled(_save(guarded=True).returning(orders.c.id), self._engine.dialect, [orders.c.id])

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        async with pooled(self._engine) as driver:
            token = self._held.set(driver)
            try:
                yield
            finally:
                self._held.reset(token)

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """The held driver connection, else one under a pooled connection (returned to the
        pool afterwards; discarded if found dead)."""
        async with AsyncExitStack() as stack:
            driver = self._held.get()
            if driver is None:
                driver = await stack.enter_async_context(pooled(self._engine))
            try:
                yield driver
            except _RACES as exc:
                raise Conflict(_CONFLICT) from exc

    async def _fetch(
        self, driver: Any, statement: Compiled, values: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        if self._sql.pg:
            return statement.rows(await driver.fetch(statement.sql, *statement.args(values)))
        return statement.rows(await driver.execute_fetchall(statement.sql, statement.args(values)))

    async def context(
        self,
        account_id: UUID,
        key: str,
        symbol: str,
        *,
        token_hash: str | None = None,
        user_id: UUID | None = None,
    ) -> OrderContext | None:
        values: dict[str, Any] = {"account_id": account_id, "key": key, "symbol": symbol}
        if token_hash is not None:
            statement, values["token_hash"] = self._sql.context_by_token, token_hash
        else:
            statement, values["user_id"] = self._sql.context_by_user, user_id
        async with self._driver() as driver:
            found = await self._fetch(driver, statement, values)
        if not found:
            return None
        row = found[0]
        settings = _entity(TradingSettings, "s_", settings_t, row)
        return OrderContext(
            user_id=row["user_id"],
            token=_entity(ApiToken, "t_", tokens, row) if token_hash is not None else None,
            account=_entity(Account, "a_", accounts, row),
            connection=_entity(Connection, "c_", connections, row),
            settings=settings,
            stored=_entity(Order, "o_", orders, row),
            last_price=row["last_price"],
        )

    async def place(
        self,
        order: Order,
        request: OrderEvent,
        seen: TradingSettings,
        check: Callable[[tuple[int, Decimal]], None] | None,
        kept: OrderContext | None = None,
    ) -> Placement:
        values = {**_params("o_", order), **_params("e_", request), **_params("s_", seen)}
        how = Kept.READ
        if kept is not None:
            assert kept.account is not None
            assert kept.connection is not None
            values |= {**_params("a_", kept.account), **_params("c_", kept.connection)}
            how = Kept.BY_USER
            if kept.token is not None:
                values |= _params("t_", kept.token)
                how = Kept.BY_TOKEN
        if check is not None:
            midnight = datetime.combine(order.created_at.date(), time(0), tzinfo=order.created_at.tzinfo)
            values |= {"connection_id": order.connection_id, "since": midnight}
        async with self._driver() as driver:
            if self._sql.pg:
                return await self._place_pg(driver, values, check, how)
            return await self._place_sqlite(driver, values, check, how)

    async def _count(self, driver: Any, values: Mapping[str, Any]) -> tuple[int, Decimal]:
        statement = self._sql.today
        args = statement.args(values)
        if self._sql.pg:
            row = await driver.fetchrow(statement.sql, *args)
        else:
            row = (await driver.execute_fetchall(statement.sql, args))[0]
        return int(row[0]), Decimal(row[1] if row[1] is not None else 0)

    async def _place_pg(
        self,
        driver: Any,
        values: Mapping[str, Any],
        check: Callable[[tuple[int, Decimal]], None] | None,
        how: Kept,
    ) -> Placement:
        place = self._sql.place(how)
        if check is None:  # one statement: lock, compare, insert, request event; autocommit
            locked, placed = await driver.fetchrow(place.sql, *place.args(values))
            return Placement.CHANGED if not locked else Placement.PLACED if placed else Placement.TAKEN
        async with driver.transaction():  # the count must follow the lock: a later statement
            lock = self._sql.lock(how)
            if not await driver.fetch(lock.sql, *lock.args(values)):
                return Placement.CHANGED
            check(await self._count(driver, values))
            locked, placed = await driver.fetchrow(place.sql, *place.args(values))
            if not placed:
                return Placement.TAKEN  # nothing was written: the transaction ends empty
        return Placement.PLACED

    async def _place_sqlite(
        self,
        driver: Any,
        values: Mapping[str, Any],
        check: Callable[[tuple[int, Decimal]], None] | None,
        how: Kept,
    ) -> Placement:
        sql, lock = self._sql, self._sql.lock(how)
        try:  # the UPDATE takes the database's write lock: one writer until the commit
            if not await driver.execute_fetchall(lock.sql, lock.args(values)):
                await driver.rollback()
                return Placement.CHANGED
            if check is not None:
                check(await self._count(driver, values))
            if not await driver.execute_fetchall(sql.add.sql, sql.add.args(values)):
                await driver.rollback()
                return Placement.TAKEN
            await driver.execute_fetchall(sql.request.sql, sql.request.args(values))
            await driver.commit()
        except BaseException:
            await driver.rollback()
            raise
        return Placement.PLACED

    async def record(self, order: Order, items: Sequence[OrderEvent], expect: Expected | None = None) -> bool:
        values = {**_order_args(order, expect), **_event_args(items)}
        notes = _notes(items)
        statement = self._sql.record(len(items), expect is not None)
        async with self._driver() as driver:
            if self._sql.pg:
                values["notes"] = [n.payload() for n in notes]
                saved, _ = await driver.fetchrow(statement.sql, *statement.args(values))
                return bool(saved)
            save = self._save if expect is None else self._save_change
            try:
                if save is self._save:
                    await driver.execute_fetchall(save.sql, save.args(values))
                elif not await driver.execute_fetchall(save.sql, save.args(values)):
                    await driver.rollback()  # another writer changed the order first
                    return False
                await driver.execute_fetchall(statement.sql, statement.args(values))
                await driver.commit()
            except BaseException:
                await driver.rollback()
                raise
        if notes and self._feed is not None:
            self._feed.publish(notes)
        return True
