"""GET /orders/events end to end on both databases: status changes arrive in order, a
reconnect with Last-Event-ID replays what was missed, nobody sees another user's orders, and
on PostgreSQL a change made by another process reaches the stream through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from finsync.application.order_stream import DROPPED, READY, OrderStream
from finsync.application.orders import Caller
from finsync.bootstrap import Container, build
from finsync.domain.enums import ConnectionStatus
from finsync.domain.trading import StatusNote
from finsync.infrastructure.order_feed import LocalOrderFeed, PgOrderFeed
from tests.api.conftest import clock_of
from tests.api.helpers import PASSWORD, register_and_login
from tests.api.sse import Events, streaming_client
from tests.api.trading_world import World, trading_world
from tests.conftest import app_for
from tests.fakes.hashing import CHEAP_HASHER

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with trading_world(database_url, tmp_path, order_events_heartbeat_seconds=0.05) as w:
        yield w


async def _ready(world: World, provider: str) -> tuple[str, str]:
    conn, account = await world.connect(provider, "demo" if provider == "trading212" else "paper")
    assert (await world.enable(conn)).status_code == 200
    return conn, account


@asynccontextmanager
async def stream(world: World, headers: dict[str, str], last: str | None = None) -> AsyncIterator[Events]:
    """An open event stream, past its first frame (subscribed: later changes cannot be missed)."""
    with app_for(world.container) as app:
        async with streaming_client(app) as http:
            sent = headers | ({"Last-Event-ID": last} if last else {})
            async with http.stream("GET", "/api/v1/orders/events", headers=sent) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                events = Events(r)
                assert "ready" in (await events.frame()).comments
                yield events


async def _status_ids(world: World, order_id: str) -> list[str]:
    r = await world.client.get(f"/api/v1/orders/{order_id}/events", headers=world.headers)
    return [e["id"] for e in r.json() if e["kind"] == "status"]


async def test_status_changes_arrive_in_order_and_a_reconnect_replays_the_missed(world: World) -> None:
    _, account = await _ready(world, "trading212")
    world.t212.fill_mode = "open"
    async with stream(world, world.headers) as events:
        resting = (await world.order(account, "rest")).json()
        new = await events.event()
        r = await world.client.delete(f"/api/v1/orders/{resting['id']}", headers=world.headers)
        assert r.json()["status"] == "cancelled"
        cancelled = await events.event()
        world.t212.fill_mode = "fill"
        filled_order = (await world.order(account, "fill", quantity="3")).json()
        filled = await events.event()
    got = [new, cancelled, filled]
    assert [f.event for f in got] == ["order.status"] * 3
    assert [(f.json["status"], f.json["previous_status"]) for f in got] == [
        ("new", "pending_submit"),
        ("cancelled", "new"),
        ("filled", "pending_submit"),
    ]
    assert [f.json["order_id"] for f in got] == [resting["id"], resting["id"], filled_order["id"]]
    assert {f.json["account_id"] for f in got} == {account}
    assert Decimal(filled.json["filled_quantity"]) == 3
    # Each event's id is its audit event's id.
    assert [new.id, cancelled.id] == await _status_ids(world, resting["id"])
    assert [filled.id] == await _status_ids(world, filled_order["id"])

    async with stream(world, world.headers, last=new.id) as events:
        replayed = [await events.event(), await events.event()]
        assert [f.id for f in replayed] == [cancelled.id, filled.id]
        later = (await world.order(account, "later")).json()
        live = await events.event()
        assert (live.json["order_id"], live.json["status"]) == (later["id"], "filled")


async def test_nobody_sees_another_users_orders_and_tokens_see_their_scope(world: World) -> None:
    _, t212_account = await _ready(world, "trading212")
    alpaca_conn, alpaca_account = await _ready(world, "alpaca")
    bob = await register_and_login(world.client, "bob@example.com")
    r = await world.client.post(
        "/api/v1/api-tokens", headers=world.headers, json={"name": "bot", "scopes": [f"trade:{alpaca_conn}"]}
    )
    assert r.status_code == 201, r.text
    bot = {"Authorization": f"Bearer {r.json()['token']}"}
    async with stream(world, bob) as bobs, stream(world, bot) as bots, stream(world, world.headers) as adas:
        t212 = (await world.order(t212_account, "t212")).json()
        alpaca = (await world.order(alpaca_account, "alpaca", symbol="AAPL")).json()
        assert [(await adas.event()).json["order_id"] for _ in range(2)] == [t212["id"], alpaca["id"]]
        # The bot's token reaches only its connection: the Trading 212 order never comes.
        assert (await bots.event()).json["order_id"] == alpaca["id"]
        assert (await bots.frame()).comments == ["heartbeat"]  # quiet after Ada's orders
        # Bob's first event is his own order's: nothing of Ada's came before it.
        bobs_world = dataclasses.replace(world, headers=bob)
        _, bobs_account = await _ready(bobs_world, "trading212")
        his = (await bobs_world.order(bobs_account, "bob")).json()
        assert (await bobs.event()).json["order_id"] == his["id"]


async def test_a_bad_last_event_id_is_refused_as_a_problem(world: World) -> None:
    with app_for(world.container) as app:
        async with streaming_client(app) as http:
            r = await http.get("/api/v1/orders/events", headers=world.headers | {"Last-Event-ID": "nope"})
            assert (await http.get("/api/v1/orders/events")).status_code == 401
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert "Last-Event-ID" in r.json()["detail"]


async def test_the_poller_follows_open_orders_and_quiet_streams_hear_heartbeats(world: World) -> None:
    _, account = await _ready(world, "trading212")
    world.t212.fill_mode = "open"
    order = (await world.order(account, "resting", quantity="2")).json()
    assert order["status"] == "new"
    async with stream(world, world.headers) as events:
        assert (await events.frame()).comments == ["heartbeat"]
        world.t212.fill(world.t212.orders[-1], Decimal(2), world.clock.now())
        world.clock.advance(5)  # Trading 212's open-orders budget: 1 per 5 s
        assert await world.container.orders.follow_open() == 1
        frame = await events.event()
        assert (frame.json["order_id"], frame.json["status"]) == (order["id"], "filled")
        assert Decimal(frame.json["filled_quantity"]) == 2
        assert await world.container.orders.follow_open() == 0  # nothing open any more
    r = await world.client.get(f"/api/v1/orders/{order['id']}/events", headers=world.headers)
    assert [e["actor"] for e in r.json() if e["kind"] == "status"][-1] == "poller"


async def _set_status(world: World, connection_id: str, status: ConnectionStatus) -> None:
    async with world.container.uow() as uow:
        connection = await uow.connections.get(UUID(connection_id))
        assert connection is not None
        connection.status = status
        await uow.connections.save(connection)
        await uow.commit()


@pytest.mark.parametrize("waiting", [ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.DISABLED])
async def test_the_poller_leaves_a_connection_waiting_for_its_user_alone(
    world: World, waiting: ConnectionStatus
) -> None:
    """No broker call every poll with credentials it refuses; followed again once back."""
    conn, account = await _ready(world, "trading212")
    world.t212.fill_mode = "open"
    order = (await world.order(account, "waits", quantity="2")).json()
    world.t212.fill(world.t212.orders[-1], Decimal(2), world.clock.now())
    sent: list[httpx.Request] = []
    world.wire.choose = sent.append  # sees every request, injects nothing (returns None)
    await _set_status(world, conn, waiting)
    world.clock.advance(5)
    assert await world.container.orders.follow_open() == 0
    assert sent == []
    await _set_status(world, conn, ConnectionStatus.ACTIVE)
    world.clock.advance(5)
    assert await world.container.orders.follow_open() == 1
    assert sent
    r = await world.client.get(f"/api/v1/orders/{order['id']}", headers=world.headers)
    assert r.json()["status"] == "filled"


async def test_a_broker_failing_every_poll_is_warned_of_once_per_change(world: World) -> None:
    """An outage (or a provider removed from the registry) is one warning, not one every poll;
    once a follow-up succeeds, the next failure warns again."""
    _, account = await _ready(world, "trading212")
    world.t212.fill_mode = "open"
    await world.order(account, "outage", quantity="2")
    down = world.wire.choose = lambda request: "refuse_503" if request.method == "GET" else None

    async def poll() -> list[tuple[str, str | None]]:
        with capture_logs() as logs:
            world.clock.advance(5)
            await world.container.orders.follow_open()
        return [(e["event"], e.get("error")) for e in logs if e["event"].startswith("order_follow")]

    warned = await poll()
    assert [event for event, _ in warned] == ["order_follow_failed"]
    assert await poll() == await poll() == []
    world.wire.choose = lambda request: None
    assert await poll() == []  # recovered (logged at info)
    world.wire.choose = down
    assert await poll() == warned


class _Overlapping(httpx.AsyncBaseTransport):
    """The broker holds its answers to reads of one order until ``n`` are in flight: every
    refresh has read the order before any records what the broker said (a read and the
    poller overlapping on a busy server)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner, self.together = inner, asyncio.Barrier(n)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.startswith("/v2/orders/"):
            await asyncio.wait_for(self.together.wait(), 10)
        return await self.inner.handle_async_request(request)


async def test_refreshes_at_once_record_a_status_change_once(world: World) -> None:
    """Two reads and the poller learn the same fill at once: one status event, sent once."""
    _, account = await _ready(world, "alpaca")
    world.alpaca.fill_mode = "open"
    order = (await world.order(account, "raced", symbol="AAPL", quantity="2")).json()
    assert order["status"] == "new"
    world.alpaca.fill(world.alpaca.orders[-1], Decimal(2), world.clock.now())
    inner, world.wire.inner = world.wire.inner, _Overlapping(world.wire.inner, 3)
    url = f"/api/v1/orders/{order['id']}"
    try:
        async with stream(world, world.headers) as events:
            first, second, changed = await asyncio.gather(
                world.client.get(url, headers=world.headers),
                world.client.get(url, headers=world.headers),
                world.container.orders.follow_open(),
            )
            frame = await events.event()
            assert (frame.json["status"], frame.json["previous_status"]) == ("filled", "new")
            assert (await events.frame()).comments == ["heartbeat"]  # not the change again
    finally:
        world.wire.inner = inner
    # Each reader reports what was recorded, whoever recorded it.
    assert [r.json()["status"] for r in (first, second)] == ["filled", "filled"]
    assert changed in (0, 1)
    r = await world.client.get(f"{url}/events", headers=world.headers)
    changes = [(e["data"]["from"], e["data"]["to"]) for e in r.json() if e["kind"] == "status"]
    assert changes == [("pending_submit", "new"), ("new", "filled")]
    assert (await world.client.get(url, headers=world.headers)).json()["status"] == "filled"


@asynccontextmanager
async def other_process(world: World) -> AsyncIterator[object]:
    """A second container on the same database: its own engine, pool and feed (a worker)."""
    options = {"clock": world.clock, "transport": world.wire}
    other = build(
        world.container.settings,
        hasher=CHEAP_HASHER,
        adapter_options=options,
        clock=clock_of(world.clock),
    )
    try:
        yield other
    finally:
        await other.aclose()


async def _notify_only(world: World) -> PgOrderFeed:
    feed = world.container.order_feed
    if not isinstance(feed, PgOrderFeed):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    return feed


async def test_a_change_made_by_another_process_arrives_through_notify(world: World) -> None:
    feed = await _notify_only(world)
    _, account = await _ready(world, "trading212")
    world.t212.fill_mode = "open"
    order = (await world.order(account, "worker-fills", quantity="2")).json()
    async with stream(world, world.headers) as events, other_process(world) as worker:
        assert feed.subscribers == 1
        await asyncio.wait_for(feed.connected.wait(), 10)  # listening: what follows is a NOTIFY
        world.t212.fill(world.t212.orders[-1], Decimal(1), world.clock.now())
        world.clock.advance(5)
        assert await worker.orders.follow_open() == 1  # type: ignore[attr-defined]
        frame = await events.event()
        assert (frame.json["order_id"], frame.json["status"]) == (order["id"], "partially_filled")
        assert Decimal(frame.json["filled_quantity"]) == 1
        # The worker's own feed has no listener: the note went through PostgreSQL.
        assert worker.order_feed.subscribers == 0  # type: ignore[attr-defined]


async def test_the_listener_reconnects_and_catches_up_after_its_connection_dies(world: World) -> None:
    feed = await _notify_only(world)
    _, account = await _ready(world, "trading212")
    world.t212.fill_mode = "open"
    order = (await world.order(account, "dropped", quantity="2")).json()
    async with stream(world, world.headers) as events, other_process(world) as worker:
        await asyncio.wait_for(feed.connected.wait(), 10)
        assert feed.connection is not None
        pid = feed.connection.get_server_pid()
        async with world.container.engine.connect() as conn:
            assert (await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})).scalar()
        # The change is made while the listener is down (or just back): it still arrives.
        world.t212.fill(world.t212.orders[-1], Decimal(2), world.clock.now())
        world.clock.advance(5)
        assert await worker.orders.follow_open() == 1  # type: ignore[attr-defined]
        frame = await events.event()
        assert (frame.json["order_id"], frame.json["status"]) == (order["id"], "filled")
        assert feed.connection is not None
        assert feed.connection.get_server_pid() != pid


async def test_a_stream_that_falls_behind_is_told_and_ended(container: Container) -> None:
    feed = LocalOrderFeed(queue_size=1)
    follow = OrderStream(container.read_uow, feed, heartbeat_seconds=10).follow(Caller(uuid4()), None)
    assert await anext(follow) == READY
    reading = asyncio.ensure_future(anext(follow))  # the stream reads, then waits for notes
    await asyncio.sleep(0)
    user = next(iter(feed._subs))
    feed.publish([StatusNote(uuid4(), uuid4(), user, "new") for _ in range(3)])  # one fits
    assert await asyncio.wait_for(reading, 10) == DROPPED
    with pytest.raises(StopAsyncIteration):
        await anext(follow)
    assert feed.subscribers == 0


async def _after_the_end(events: Events) -> list[str | None]:
    """The events a stream still sends until it ends (a stream that never ends fails the test)."""
    sent: list[str | None] = []
    async with asyncio.timeout(3):  # heartbeats every 0.05 s: an open stream never times out by itself
        with contextlib.suppress(EOFError):
            while True:
                frame = await events.frame()
                sent += [frame.event] if frame.event else []
    return sent


async def test_a_stream_ends_when_its_api_token_is_revoked(world: World) -> None:
    """Revoking a token refuses it at once — also on the stream it already holds open (before:
    the stream went on sending the user's orders to the revoked token for good)."""
    _, account = await _ready(world, "trading212")
    r = await world.client.post(
        "/api/v1/api-tokens", headers=world.headers, json={"name": "bot", "scopes": ["read"]}
    )
    token_id, bot = r.json()["id"], {"Authorization": f"Bearer {r.json()['token']}"}
    async with stream(world, bot) as bots:
        r = await world.client.delete(f"/api/v1/api-tokens/{token_id}", headers=world.headers)
        assert r.status_code == 204
        assert (await world.order(account, "after")).status_code == 201
        assert await _after_the_end(bots) == []


async def test_a_stream_ends_when_its_session_ends(world: World) -> None:
    """A logout ends its access tokens at once — also the stream one of them opened."""
    _, account = await _ready(world, "trading212")
    form = {"username": "ada@example.com", "password": PASSWORD}
    tokens = (await world.client.post("/api/v1/auth/token", data=form)).json()
    async with stream(world, {"Authorization": f"Bearer {tokens['access_token']}"}) as events:
        r = await world.client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 204
        assert (await world.order(account, "after")).status_code == 201
        assert await _after_the_end(events) == []
