"""The order desk (the order's own statements on the driver connection), on both databases: its
first read finds what an order needs, its insert happens only under settings still as checked
and once per key, and the daily limits hold when orders race each other (PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from finsync.application.api_tokens import digest
from finsync.application.orders import _request_data, store
from finsync.domain.trading import (
    Order,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    Placement,
    TimeInForce,
)
from finsync.infrastructure.db.order_desk import SqlOrderDesk
from finsync.infrastructure.db.raw import LOST_CONNECTION, pooled
from tests.api.trading_world import World, trading_world
from tests.sql import terminate_backend

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with trading_world(database_url, tmp_path) as w:
        yield w


def _desk(world: World) -> SqlOrderDesk:
    return SqlOrderDesk(world.container.engine, world.container.order_feed)


def _order(user: UUID, connection: UUID, account: UUID, key: str, **fields: Any) -> Order:
    values: dict[str, Any] = {"symbol": "AAPL", "side": OrderSide.BUY, "type": OrderType.MARKET,
                              "time_in_force": TimeInForce.DAY, "quantity": Decimal(1)} | fields  # fmt: skip
    return Order(user_id=user, connection_id=connection, account_id=account, idempotency_key=key,
                 request_digest="d" * 64, currency="USD", created_by="user", **values)  # fmt: skip


def _request(order: Order) -> OrderEvent:
    return OrderEvent(user_id=order.user_id, order_id=order.id, kind="request", actor="user",
                      data=_request_data(order))  # fmt: skip


async def _orders(world: World) -> list[dict[str, Any]]:
    r = await world.client.get("/api/v1/orders", headers=world.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_the_first_read_finds_caller_account_settings_and_the_keys_order(world: World) -> None:
    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn, max_order_notional="1000", symbols=["AAPL"])).status_code == 200
    created = await world.client.post(
        "/api/v1/api-tokens", headers=world.headers, json={"name": "bot", "scopes": [f"trade:{conn}"]}
    )
    token = created.json()["token"]
    desk = _desk(world)
    ctx = await desk.context(UUID(account), "k-1", "AAPL", token_hash=digest(token))
    assert ctx is not None
    assert ctx.token is not None
    assert ctx.account is not None
    assert (str(ctx.token.id), str(ctx.account.id)) == (created.json()["id"], account)
    assert ctx.connection is not None
    assert str(ctx.connection.id) == conn
    assert ctx.settings is not None
    assert ctx.settings.enabled
    assert ctx.settings.symbols == ["AAPL"]
    assert ctx.settings.max_order_notional == Decimal(1000)
    assert ctx.stored is None
    bot = {"Authorization": f"Bearer {token}"}
    placed = await world.order(account, "k-1", headers=bot, symbol="AAPL", quantity=None, notional="100")
    assert placed.status_code == 201, placed.text
    again = await desk.context(UUID(account), "k-1", "AAPL", token_hash=digest(token))
    assert again is not None
    assert again.stored is not None
    assert (str(again.stored.id), again.stored.status.value) == (placed.json()["id"], placed.json()["status"])
    by_user = await desk.context(UUID(account), "k-1", "AAPL", user_id=again.user_id)
    assert by_user is not None
    assert by_user.token is None
    assert by_user.stored == again.stored
    # Someone else's account, an unknown or revoked token.
    other = await desk.context(UUID(int=1), "k-1", "AAPL", user_id=again.user_id)
    assert other is not None
    assert other.account is None
    assert other.connection is None
    assert await desk.context(UUID(account), "k-1", "AAPL", token_hash=digest("fst_unknown")) is None
    await world.client.delete(f"/api/v1/api-tokens/{created.json()['id']}", headers=world.headers)
    assert await desk.context(UUID(account), "k-1", "AAPL", token_hash=digest(token)) is None


async def test_an_order_is_inserted_once_and_only_under_the_settings_it_was_checked_against(
    world: World,
) -> None:
    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn)).status_code == 200
    desk = _desk(world)
    user = (await world.client.get("/api/v1/users/me", headers=world.headers)).json()["id"]
    ctx = await desk.context(UUID(account), "k-1", "AAPL", user_id=UUID(user))
    assert ctx is not None
    assert ctx.settings is not None
    first = _order(UUID(user), UUID(conn), UUID(account), "k-1")
    assert await desk.place(first, _request(first), ctx.settings, None) is Placement.PLACED
    twin = _order(UUID(user), UUID(conn), UUID(account), "k-1")  # the same key, another order
    assert await desk.place(twin, _request(twin), ctx.settings, None) is Placement.TAKEN
    assert [o["id"] for o in await _orders(world)] == [str(first.id)]
    events = await world.client.get(f"/api/v1/orders/{first.id}/events", headers=world.headers)
    assert [e["kind"] for e in events.json()] == ["request"]
    # The kill switch pulled after the order's read (same virtual time: every column counts).
    halt = await world.client.post(f"/api/v1/connections/{conn}/trading/halt", headers=world.headers)
    assert halt.status_code == 200, halt.text
    assert halt.json()["failed"] == [str(first.id)]  # pending, never sent: nothing to cancel yet
    late = _order(UUID(user), UUID(conn), UUID(account), "k-2")
    assert await desk.place(late, _request(late), ctx.settings, None) is Placement.CHANGED
    assert [o["id"] for o in await _orders(world)] == [str(first.id)]
    # ... and through the API the order is refused by the halt, not placed on the stale read.
    r = await world.order(account, "k-2", symbol="AAPL")
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[-1]) == (403, "trading-halted")


@pytest.mark.parametrize("through", ["desk", "unit_of_work"])
async def test_a_status_change_written_at_once_by_two_is_recorded_once(world: World, through: str) -> None:
    """Two writers that read the order as ``new`` both learn it filled and write at once (the
    desk's one statement, or the unit of work's transaction): one records the change and its
    event; the other writes nothing and is handed the stored order."""
    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn)).status_code == 200
    desk = _desk(world)
    user = UUID((await world.client.get("/api/v1/users/me", headers=world.headers)).json()["id"])
    placed = _order(user, UUID(conn), UUID(account), "cas", status=OrderStatus.NEW)
    ctx = await desk.context(UUID(account), "cas", "AAPL", user_id=user)
    assert ctx is not None
    assert ctx.settings is not None
    assert await desk.place(placed, _request(placed), ctx.settings, None) is Placement.PLACED

    def filled(actor: str) -> tuple[Order, OrderEvent]:
        order = dataclasses.replace(placed, status=OrderStatus.FILLED, filled_quantity=Decimal(1))
        event = OrderEvent(user_id=user, order_id=order.id, kind="broker_answer", actor=actor, data={})
        return order, event

    via = desk if through == "desk" else None
    (a, a_event), (b, b_event) = filled("user"), filled("poller")
    saved = await asyncio.gather(
        store(world.container.uow, a, OrderStatus.NEW, a_event, Decimal(0), desk=via),
        store(world.container.uow, b, OrderStatus.NEW, b_event, Decimal(0), desk=via),
    )
    assert sorted(saved) == [False, True]
    assert (a.status, b.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    trail = (await world.client.get(f"/api/v1/orders/{placed.id}/events", headers=world.headers)).json()
    assert [e["kind"] for e in trail] == ["request", "broker_answer", "status"]
    # A later write that changes no status still lands (it is not compared).
    note = dataclasses.replace(a, reason="noted")
    event = OrderEvent(user_id=user, order_id=note.id, kind="cancel", actor="user", data={})
    assert await store(world.container.uow, note, OrderStatus.FILLED, event, Decimal(1), desk=via)
    got = (await world.client.get(f"/api/v1/orders/{placed.id}", headers=world.headers)).json()
    assert got["status"] == "filled"
    trail = (await world.client.get(f"/api/v1/orders/{placed.id}/events", headers=world.headers)).json()
    assert [e["kind"] for e in trail][-1] == "cancel"


async def test_a_daily_limit_counts_under_the_lock_when_orders_race(world: World, database_url: str) -> None:
    """Eight orders with different keys at once against a limit of three a day (and a notional
    limit that only three fit): three placed, five refused naming the limit."""
    if not database_url.startswith("postgresql"):
        pytest.skip("real concurrency: PostgreSQL (SQLite has one writer at a time)")
    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn, max_orders_per_day=3)).status_code == 200
    answers = await asyncio.gather(*(world.order(account, f"race-{i}", symbol="AAPL") for i in range(8)))
    assert sorted(r.status_code for r in answers) == [201] * 3 + [403] * 5, [r.text for r in answers]
    assert all("max_orders_per_day" in r.json()["detail"] for r in answers if r.status_code == 403)
    assert len(world.alpaca.orders) == 3
    assert (await world.enable(conn, max_orders_per_day=None, max_notional_per_day="250")).status_code == 200
    answers = await asyncio.gather(
        *(world.order(account, f"spend-{i}", symbol="AAPL", quantity=None, notional="100") for i in range(8))
    )
    assert sorted(r.status_code for r in answers) == [201] * 2 + [403] * 6, [r.text for r in answers]
    assert all("max_notional_per_day" in r.json()["detail"] for r in answers if r.status_code == 403)
    assert len(world.alpaca.orders) == 5


async def test_the_pollers_query_uses_the_partial_index_of_open_orders(
    world: World, database_url: str
) -> None:
    """Migration 0017: the open-order poller reads orders not final yet through
    ``ix_orders_unsettled``, not by walking every order ever placed."""
    from sqlalchemy import select, text

    from finsync.infrastructure.db.tables import UNSETTLED, OrderRow

    orders = OrderRow.__table__  # type: ignore[attr-defined]
    engine = world.container.engine
    query = select(orders).where(text(UNSETTLED)).order_by(orders.c.id).limit(500)  # as the poller
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        if database_url.startswith("postgresql"):
            await conn.execute(text("SET enable_seqscan = off"))  # an empty table: make it choose
            plan = "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {sql}")))
        else:
            plan = "\n".join(str(r[-1]) for r in await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "ix_orders_unsettled" in plan, plan


async def test_todays_orders_are_counted_and_summed_exactly_by_the_database(world: World) -> None:
    """The general path's count (``placed_since``): rejected orders left out, decimals exact."""
    from datetime import UTC, datetime

    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn)).status_code == 200
    for i, notional in enumerate(["100.10", "50.45", "0.01"]):
        r = await world.order(account, f"n-{i}", symbol="AAPL", quantity=None, notional=notional)
        assert r.status_code == 201, r.text
    world.alpaca.account["buying_power"] = "0"  # the next one is refused by the broker: rejected
    r = await world.order(account, "n-poor", symbol="AAPL", quantity=None, notional="7")
    assert r.json()["status"] == "rejected", r.text
    async with world.container.uow() as uow:
        assert await uow.trading.placed_since(UUID(conn), datetime(2000, 1, 1, tzinfo=UTC)) == (
            3,
            Decimal("150.56"),
        )
        assert await uow.trading.placed_since(UUID(conn), datetime(2100, 1, 1, tzinfo=UTC)) == (0, 0)


async def test_a_connection_lost_under_the_desk_never_goes_back_to_the_pool(
    world: World, database_url: str
) -> None:
    """The desk (and the shared rate budgets) run on the driver connection under a pooled one,
    past SQLAlchemy: one found dead in use is discarded, so the next order does not meet it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a server-side kill: PostgreSQL")
    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn)).status_code == 200
    engine = world.container.engine
    with pytest.raises(LOST_CONNECTION):  # as the pool tells a lost one (raw.py)
        await _lose_one(engine)
    async with AsyncExitStack() as stack:  # every connection left in the pool is alive
        idle = [await stack.enter_async_context(pooled(engine)) for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
        assert not any(driver.is_closed() for driver in idle)
    r = await world.order(account, "after-a-lost-connection", symbol="AAPL")
    assert r.status_code == 201, r.text


async def _lose_one(engine: Any) -> None:
    """A pooled connection whose server process is killed while it is in use."""
    async with pooled(engine) as driver:
        await terminate_backend(await driver.fetchval("SELECT pg_backend_pid()"))
        await driver.fetchval("SELECT 1")
