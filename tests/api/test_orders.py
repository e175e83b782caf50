"""Orders end to end on both databases against the fake brokers: an order is never sent twice,
whatever is lost on the wire, and every step is in its audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from finsync.application.orders import SUBMIT_LEASE
from finsync.domain.enums import TransactionSubtype, TransactionType
from finsync.domain.records import ProviderTransaction
from finsync.domain.trading import OrderStatus
from tests.api.helpers import PASSWORD, register_and_login
from tests.api.trading_world import World, trading_world
from tests.fakes.faults import ACCEPT_FAULTS

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with trading_world(database_url, tmp_path) as w:
        yield w


async def _ready(world: World, provider: str) -> str:
    conn, account = await world.connect(provider, "demo" if provider == "trading212" else "paper")
    assert (await world.enable(conn)).status_code == 200
    return account


async def login(client: object) -> dict[str, str]:
    form = {"username": "ada@example.com", "password": PASSWORD}
    r = await client.post("/api/v1/auth/token", data=form)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _symbol(provider: str) -> str:
    return "AAPL_US_EQ" if provider == "trading212" else "AAPL"


async def _events(world: World, order_id: str) -> list[str]:
    r = await world.client.get(f"/api/v1/orders/{order_id}/events", headers=world.headers)
    assert r.status_code == 200, r.text
    return [e["kind"] for e in r.json()]


def _broker_orders(world: World, provider: str) -> int:
    return len(world.t212.placed) if provider == "trading212" else len(world.alpaca.orders)


@pytest.mark.parametrize("provider", ["trading212", "alpaca"])
async def test_a_key_names_one_order_for_good(world: World, provider: str) -> None:
    account = await _ready(world, provider)
    first = await world.order(account, "key-1", symbol=_symbol(provider))
    assert first.status_code == 201, first.text
    again = await world.order(account, "key-1", symbol=_symbol(provider))
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await world.order(account, "key-1", symbol=_symbol(provider), quantity="2")
    assert other.status_code == 422
    assert "different order" in other.json()["detail"]
    r = await world.client.post(
        f"/api/v1/accounts/{account}/orders",
        headers=world.headers,
        json={"symbol": _symbol(provider), "side": "buy", "type": "market", "quantity": "1"},
    )
    assert r.status_code == 422
    assert "Idempotency-Key" in r.json()["detail"]
    assert _broker_orders(world, provider) == 1
    assert await _events(world, first.json()["id"]) == ["request", "broker_answer", "status"]


@pytest.mark.parametrize("provider", ["trading212", "alpaca"])
@pytest.mark.parametrize("fault", ACCEPT_FAULTS)
async def test_an_answer_lost_after_the_broker_acted_is_reconciled_not_resent(
    world: World, provider: str, fault: str
) -> None:
    account = await _ready(world, provider)
    world.wire.queued.append(fault)
    r = await world.order(account, f"lost-{fault}", symbol=_symbol(provider))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "filled"
    assert r.json()["broker_order_id"] is not None
    assert _broker_orders(world, provider) == 1
    kinds = await _events(world, r.json()["id"])
    assert kinds == ["request", "broker_error", "status", "reconcile", "status"]


@pytest.mark.parametrize("provider", ["trading212", "alpaca"])
async def test_an_order_proven_absent_is_resent_once_and_only_once(world: World, provider: str) -> None:
    account = await _ready(world, provider)
    world.wire.queued.append("refuse_503")
    r = await world.order(account, "absent-once", symbol=_symbol(provider))
    assert (r.status_code, r.json()["status"]) == (201, "filled")
    assert _broker_orders(world, provider) == 1
    assert "resend" in await _events(world, r.json()["id"])
    world.wire.queued += ["refuse_503", "refuse_503"]
    r = await world.order(account, "absent-twice", symbol=_symbol(provider))
    assert (r.status_code, r.json()["status"]) == (201, "rejected")
    assert "two sends" in r.json()["reason"]
    assert _broker_orders(world, provider) == 1  # nothing reached the broker, nothing sent a third time


async def test_broker_refusals_are_rejected_orders_with_the_reason(world: World) -> None:
    account = await _ready(world, "trading212")
    world.t212.cash["availableToTrade"] = 10.0
    r = await world.order(account, "poor")
    assert (r.status_code, r.json()["status"]) == (201, "rejected")
    assert "InsufficientFunds" in r.json()["reason"] or "insufficient" in r.json()["reason"].lower()
    alpaca = await _ready(world, "alpaca")
    world.alpaca.market_open = False
    r = await world.order(alpaca, "closed", symbol="AAPL")
    assert (r.status_code, r.json()["status"]) == (201, "rejected")
    assert "closed" in r.json()["reason"]


@pytest.mark.parametrize("provider", ["trading212", "alpaca"])
async def test_fills_are_followed_and_a_cancel_can_lose_the_race(world: World, provider: str) -> None:
    account = await _ready(world, provider)
    store = world.t212 if provider == "trading212" else world.alpaca
    store.fill_mode = "partial"
    r = await world.order(account, "partial", symbol=_symbol(provider), quantity="4")
    order = r.json()
    assert (order["status"], Decimal(order["filled_quantity"])) == ("partially_filled", 2)
    if provider == "trading212":
        world.t212.fill(world.t212.orders[-1], Decimal(2), world.clock.now())
    else:
        world.alpaca.fill(world.alpaca.orders[-1], Decimal(2), world.clock.now())
    world.clock.advance(5)
    got = await world.client.get(f"/api/v1/orders/{order['id']}", headers=world.headers)
    assert (got.json()["status"], Decimal(got.json()["filled_quantity"])) == ("filled", 4), got.text
    assert got.json()["fills"]
    gone = await world.client.delete(f"/api/v1/orders/{order['id']}", headers=world.headers)
    assert gone.status_code == 409  # final: nothing to cancel
    store.fill_mode = "open"
    r = await world.order(account, "to-cancel", symbol=_symbol(provider))
    cancelled = await world.client.delete(f"/api/v1/orders/{r.json()['id']}", headers=world.headers)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled"), cancelled.text
    r = await world.order(account, "race", symbol=_symbol(provider))
    store.fill_on_cancel = True
    raced = await world.client.delete(f"/api/v1/orders/{r.json()['id']}", headers=world.headers)
    assert (raced.status_code, raced.json()["status"]) == (200, "filled"), raced.text
    assert (await _events(world, r.json()["id"]))[-2:] == ["cancel", "status"]


async def test_order_rate_limits_queue_and_never_meet_a_429(world: World) -> None:
    """60 market orders at Trading 212 (50 a minute) and 3 limit orders (1 per 2 s)."""
    account = await _ready(world, "trading212")
    world.t212.prices["AAPL_US_EQ"] = Decimal("1")
    start = world.clock.now()
    for i in range(60):
        assert (await world.order(account, f"m-{i}")).status_code == 201
    for i in range(3):
        assert (await world.order(account, f"l-{i}", type="limit", limit_price="1")).status_code == 201
    assert world.t212.throttled["orders_market"] == world.t212.throttled["orders_limit"] == 0
    assert world.clock.now() - start >= 60  # the 51st waited for the window
    assert len(world.t212.placed) == 63


async def test_the_same_key_fired_at_once_places_one_order(world: World) -> None:
    """The database decides (the connection's settings row lock, then the unique (user, key)
    constraint), with real concurrency on PostgreSQL: one order sent, every answer names it."""
    account = await _ready(world, "alpaca")
    answers = await asyncio.gather(*(world.order(account, "same-key", symbol="AAPL") for _ in range(8)))
    assert {r.status_code for r in answers} <= {200, 201}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert [r.status_code for r in answers].count(201) == 1
    assert len(world.alpaca.orders) == 1


async def test_positions_live_with_fifo_realised_pnl(world: World) -> None:
    world.t212.positions.clear()
    conn, account = await world.connect("trading212", "demo")
    assert (await world.enable(conn)).status_code == 200
    scopes = {"name": "bot", "scopes": ["read", f"trade:{conn}"]}  # a token outlives the days below
    token = (await world.client.post("/api/v1/api-tokens", headers=world.headers, json=scopes)).json()[
        "token"
    ]
    bot = {"Authorization": f"Bearer {token}"}
    for key, side, quantity, price in (
        ("b1", "buy", "3", "100"),
        ("b2", "buy", "2", "110"),
        ("s1", "sell", "4", "120"),
    ):
        world.t212.prices["AAPL_US_EQ"] = Decimal(price)
        world.clock.advance(86_400)  # a day apart: FIFO goes by trade date
        assert (await world.order(account, key, bot, side=side, quantity=quantity)).status_code == 201
    world.headers = await login(world.client)
    world.t212.add_position("AAPL_US_EQ", "1", "110", "130", currency="GBP")
    assert (
        await world.client.post(f"/api/v1/connections/{conn}/sync", headers=world.headers)
    ).status_code == 202
    await world.container.jobs.drain()
    url = f"/api/v1/accounts/{account}/positions"
    r = await world.client.get(url, headers=world.headers, params={"live": "true"})
    assert r.status_code == 200, r.text
    (position,) = r.json()
    # Bought 3 at 100 and 2 at 110, sold 4 at 120: FIFO cost 3 x 100 + 1 x 110 = 410 of 480.
    assert Decimal(position["realised_pnl"]) == 70
    assert Decimal(position["fifo_cost"]) == 110
    assert Decimal(position["unrealised_pnl"]) == 20  # worth 130 now
    world.t212.positions.clear()  # sold at the broker since: live sees it, the last sync does not
    live = await world.client.get(url, headers=world.headers, params={"live": "true"})
    assert live.json() == []
    assert len((await world.client.get(url, headers=world.headers)).json()) == 1


async def test_positions_book_trades_oldest_first_across_pages(world: World) -> None:
    """More trades than one page (1000): the store lists them newest first, so the newest page
    was booked before the older ones, its sales matched against the wrong lots."""
    world.t212.positions.clear()
    conn, account = await world.connect("trading212", "demo")
    assert (await world.enable(conn)).status_code == 200
    day0 = date(2025, 1, 1)

    def trade(n: int, subtype: TransactionSubtype, amount: int, quantity: int) -> ProviderTransaction:
        return ProviderTransaction(
            provider_transaction_id=f"t{n}",
            type=TransactionType.TRADE,
            subtype=subtype,
            amount=Decimal(amount),
            currency="GBP",
            transaction_date=day0 + timedelta(days=n),
            symbol="X",
            quantity=Decimal(quantity),
        )

    trades = [trade(0, TransactionSubtype.BUY, -100, 2)]  # 50 each
    trades += [trade(n, TransactionSubtype.BUY, -100, 1) for n in range(1, 1000)]
    trades.append(trade(1000, TransactionSubtype.SELL, 260, 2))
    async with world.container.uow() as uow:
        user = await uow.users.get_by_email("ada@example.com")
        assert user is not None
        stored = await uow.accounts.get(UUID(account), user.id)
        assert stored is not None
        await uow.transactions.upsert(stored, trades)
        await uow.commit()
    world.t212.add_position("X", "999", "100", "100", currency="GBP")
    r = await world.client.get(
        f"/api/v1/accounts/{account}/positions", headers=world.headers, params={"live": "true"}
    )
    assert r.status_code == 200, r.text
    (position,) = r.json()
    # 2 bought at 50 first, then 999 at 100; the 2 sold for 260 are the first two (cost 100).
    assert Decimal(position["realised_pnl"]) == 160
    assert Decimal(position["fifo_cost"]) == 99_900


async def test_a_first_send_arriving_after_its_resend_is_adopted_not_doubled(world: World) -> None:
    """The 503'd first send reaches Alpaca after reconciliation found nothing: the resend (same
    client_order_id) is refused as a duplicate, and finsync adopts the first instead."""
    account = await _ready(world, "alpaca")
    world.wire.queued.append("late_503")
    r = await world.order(account, "late", symbol="AAPL")
    assert (r.status_code, r.json()["status"]) == (201, "filled"), r.text
    assert len(world.alpaca.orders) == 1
    assert world.alpaca.orders[0]["client_order_id"] == r.json()["id"]
    assert (await _events(world, r.json()["id"]))[-2:] == ["reconcile", "status"]


async def test_a_cancel_while_the_first_send_is_on_the_wire_sends_nothing(world: World) -> None:
    """Trading 212 has no client order id: a DELETE that reconciled an order still being sent
    found nothing at the broker and sent it a second time. Now it answers 409 and sends nothing;
    once the order is placed, the cancel goes through."""
    account = await _ready(world, "trading212")
    arrived, release = asyncio.Event(), asyncio.Event()

    class SlowFirstPost(httpx.AsyncBaseTransport):
        """The network: the first order POST takes its time to reach the broker."""

        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and not arrived.is_set():
                arrived.set()
                await release.wait()
            return await self.inner.handle_async_request(request)

    world.wire.inner = SlowFirstPost(world.wire.inner)
    placing = asyncio.create_task(world.order(account, "slow"))
    await asyncio.wait_for(arrived.wait(), 10)
    (order,) = (await world.client.get("/api/v1/orders", headers=world.headers)).json()["items"]
    assert order["status"] == "pending_submit"
    refused = await world.client.delete(f"/api/v1/orders/{order['id']}", headers=world.headers)
    assert refused.status_code == 409, refused.text
    assert "being sent" in refused.json()["detail"]
    release.set()
    placed = await placing
    assert placed.status_code == 201, placed.text
    assert len(world.t212.placed) == 1
    assert "resend" not in await _events(world, order["id"])


async def test_an_unsettled_order_is_not_resent_once_trading_is_halted(world: World) -> None:
    """The send was refused (503) and the broker could not be asked since: the order is
    unknown. After the kill switch, proving it absent rejects it instead of sending it."""
    account = await _ready(world, "trading212")
    conn = (await world.client.get(f"/api/v1/accounts/{account}", headers=world.headers)).json()[
        "connection_id"
    ]
    stuttering = {"on": True}
    world.wire.choose = lambda request: "refuse_503" if stuttering["on"] else None
    r = await world.order(account, "unknown-then-halted")
    assert (r.status_code, r.json()["status"]) == (201, "unknown"), r.text
    halted = await world.client.post(f"/api/v1/connections/{conn}/trading/halt", headers=world.headers)
    assert halted.status_code == 200, halted.text
    stuttering["on"] = False
    got = await world.client.get(f"/api/v1/orders/{r.json()['id']}", headers=world.headers)
    assert (got.json()["status"], world.t212.placed) == ("rejected", []), got.text
    assert "halted" in got.json()["reason"]
    assert "resend" not in await _events(world, r.json()["id"])


async def test_a_resend_is_claimed_only_while_the_stored_order_is_unsettled(world: World) -> None:
    """The claim decides on the stored row, not on what its caller read before asking the
    broker: an order recorded as found meanwhile, or one whose first send is still on the wire,
    is never claimed; an unknown one, or one whose sender died, is — once."""
    account = await _ready(world, "trading212")
    world.wire.choose = lambda request: "refuse_503"  # sends refused, the broker never asked
    ids = [UUID((await world.order(account, f"k{i}")).json()["id"]) for i in range(3)]
    now = datetime.fromtimestamp(world.clock.now(), UTC)
    lost_before = now - SUBMIT_LEASE
    async with world.container.uow() as uow:
        found, fresh, dead = [await uow.trading.order(i) for i in ids]
        assert found
        assert fresh
        assert dead
        assert found.status is OrderStatus.UNKNOWN
        found.status, found.broker_order_id = OrderStatus.NEW, "40000000009"  # another process
        fresh.status, fresh.submitted_at = OrderStatus.PENDING_SUBMIT, now  # its send is on the wire
        dead.status, dead.submitted_at = OrderStatus.PENDING_SUBMIT, lost_before - timedelta(seconds=1)
        for order in (found, fresh, dead):
            await uow.trading.save_order(order)
        await uow.commit()
    async with world.container.uow() as uow:
        claims = [await uow.trading.claim_resend(i, now, lost_before) for i in ids]
        again = await uow.trading.claim_resend(ids[2], now, lost_before)
        await uow.commit()
        claimed = await uow.trading.order(ids[2])
    assert (claims, again) == ([False, False, True], False)
    assert claimed is not None
    assert (claimed.status, claimed.submit_attempts, claimed.submitted_at) == (
        OrderStatus.PENDING_SUBMIT,
        2,
        now,
    )


async def test_listing_orders_by_another_users_account_is_not_found(world: World) -> None:
    """The account filter answers as every other list's does: 404 for an account that is not
    the caller's (theirs or nobody's), never an empty page that tells it exists."""
    account = await _ready(world, "alpaca")
    mine = await world.client.get("/api/v1/orders", headers=world.headers, params={"account_id": account})
    assert mine.status_code == 200, mine.text
    other = await register_and_login(world.client, "mallory@example.com")
    for account_id in (account, "00000000-0000-7000-8000-000000000000"):
        r = await world.client.get("/api/v1/orders", headers=other, params={"account_id": account_id})
        assert r.status_code == 404, r.text
        assert r.json()["type"].endswith("/not-found")


async def test_two_reconcilers_claiming_one_resend_at_once_get_it_once(world: World) -> None:
    """The one resend is the database's to give: two processes proving the same order absent
    at the same moment both ask for it, and exactly one is granted it."""
    account = await _ready(world, "trading212")
    world.wire.choose = lambda request: "refuse_503"  # refused, and the broker cannot be asked
    order_id = UUID((await world.order(account, "contested")).json()["id"])
    now = datetime.fromtimestamp(world.clock.now(), UTC)

    async def claim() -> bool:
        async with world.container.uow() as uow:
            granted = await uow.trading.claim_resend(order_id, now, now - SUBMIT_LEASE)
            await asyncio.sleep(0.05)  # hold the row while the other asks
            await uow.commit()
            return granted

    assert sorted(await asyncio.gather(claim(), claim())) == [False, True]
