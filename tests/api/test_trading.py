"""Trading switches and limits, the kill switch, and API tokens: end to end on both databases
against the fake brokers. Every refusal happens before any network call: the fake counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import PASSWORD
from tests.api.trading_world import World, trading_world

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with trading_world(database_url, tmp_path) as w:
        yield w


def _type(r: object) -> str:
    return str(r.json()["type"]).rsplit("/", 1)[-1]  # type: ignore[attr-defined]


async def test_trading_is_off_until_the_owner_enables_it_with_the_password(world: World) -> None:
    conn, account = await world.connect("trading212", "demo")
    r = await world.order(account, "k-1")
    assert (r.status_code, _type(r)) == (403, "trading-disabled"), r.text
    assert world.t212.placed == []
    url = f"/api/v1/connections/{conn}"
    r = await world.client.patch(url, headers=world.headers, json={"trading": {"enabled": True}})
    assert r.status_code == 422
    assert "password" in r.json()["detail"]
    bad = {"trading": {"enabled": True}, "password": "not my password at all"}
    assert (await world.client.patch(url, headers=world.headers, json=bad)).status_code == 403
    got = await world.client.get(f"{url}/trading", headers=world.headers)
    assert got.json()["enabled"] is False
    r = await world.enable(conn, max_order_notional="1000.00")
    assert r.status_code == 200, r.text
    got = await world.client.get(f"{url}/trading", headers=world.headers)
    assert got.json() | {"updated_at": None} == {
        "connection_id": conn, "enabled": True, "halted": False, "max_order_notional": "1000.00",
        "max_orders_per_day": None, "max_notional_per_day": None, "symbols": None, "updated_at": None,
    }  # fmt: skip
    r = await world.order(account, "k-1")  # the refused key was never stored: usable now
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "filled"
    assert Decimal(r.json()["filled_quantity"]) == 1
    assert len(world.t212.placed) == 1


async def test_bad_trading_settings_change_nothing(world: World) -> None:
    conn, _ = await world.connect("trading212", "demo")
    body = {"name": "renamed", "trading": {"max_orders_per_day": 0}, "password": PASSWORD}
    r = await world.client.patch(f"/api/v1/connections/{conn}", headers=world.headers, json=body)
    assert r.status_code == 422
    got = await world.client.get(f"/api/v1/connections/{conn}", headers=world.headers)
    assert got.json()["name"] != "renamed"


async def test_live_orders_need_the_deployment_switch_and_what_t212_cannot_do_is_422(world: World) -> None:
    _, account = await world.connect("trading212", "live")
    conn = (await world.client.get("/api/v1/connections", headers=world.headers)).json()["items"][0]["id"]
    assert (await world.enable(conn)).status_code == 200
    r = await world.order(account, "live-1")
    assert r.status_code == 403
    assert _type(r) == "live-trading-disabled"
    assert "FINSYNC_LIVE_TRADING" in r.json()["detail"]
    r = await world.order(account, "live-2", type="limit", limit_price="180")
    assert r.status_code == 422
    assert _type(r) == "unsupported-order"
    assert "market" in r.json()["detail"]
    r = await world.order(account, "live-3", quantity=None, notional="100")
    assert r.status_code == 422
    assert _type(r) == "unsupported-order"
    assert world.t212.placed == []
    assert world.t212.requests["orders_market"] == 0


async def test_live_trading_works_when_the_deployment_enables_it(database_url: str, tmp_path: Path) -> None:
    async with trading_world(database_url, tmp_path, live_trading="enabled") as world:
        conn, account = await world.connect("trading212", "live")
        assert (await world.enable(conn)).status_code == 200
        r = await world.order(account, "live-1")
        assert r.status_code == 201
        assert r.json()["status"] == "filled"


async def test_every_limit_refuses_by_name_before_any_network_call(world: World) -> None:
    conn, account = await world.connect("alpaca", "paper")
    limits = {"max_order_notional": "500", "max_orders_per_day": 2, "max_notional_per_day": "600",
              "symbols": ["AAPL", "SPY"]}  # fmt: skip
    assert (await world.enable(conn, **limits)).status_code == 200
    cases = [
        ({"symbol": "TSLA", "quantity": "1", "limit_price": "10", "type": "limit"}, "symbols"),
        ({"symbol": "AAPL", "notional": "501", "quantity": None}, "max_order_notional"),
        ({"symbol": "AAPL", "quantity": "3"}, "max_order_notional"),  # no holding: price unknown
    ]
    for i, (fields, limit) in enumerate(cases):
        r = await world.order(account, f"refused-{i}", **fields)
        assert (r.status_code, _type(r)) == (403, "order-limit"), r.text
        assert limit in r.json()["detail"]
    assert world.alpaca.orders == []
    ok = {"symbol": "AAPL", "notional": "400", "quantity": None}
    assert (await world.order(account, "ok-1", **ok)).status_code == 201
    r = await world.order(account, "ok-2", **ok)
    assert r.status_code == 403
    assert "max_notional_per_day" in r.json()["detail"]
    assert (await world.order(account, "ok-3", **{**ok, "notional": "100"})).status_code == 201
    r = await world.order(account, "ok-4", **{**ok, "notional": "1"})
    assert r.status_code == 403
    assert "max_orders_per_day" in r.json()["detail"]
    assert len(world.alpaca.orders) == 2


async def test_halt_cancels_open_orders_and_refuses_new_ones_until_resumed(world: World) -> None:
    conn, account = await world.connect("trading212", "demo")
    assert (await world.enable(conn)).status_code == 200
    for i in range(2):  # limit orders: 1 per 2 s at Trading 212, queued on the virtual clock
        r = await world.order(account, f"open-{i}", type="limit", limit_price="150")
        assert (r.status_code, r.json()["status"]) == (201, "new"), r.text
    halted = await world.client.post(f"/api/v1/connections/{conn}/trading/halt", headers=world.headers)
    assert halted.status_code == 200, halted.text
    assert len(halted.json()["cancelled"]) == 2
    assert halted.json()["settings"]["halted"] is True
    assert [i["order"]["status"] for i in world.t212.orders] == ["CANCELLED", "CANCELLED"]
    r = await world.order(account, "after-halt")
    assert r.status_code == 403
    assert _type(r) == "trading-halted"
    resumed = await world.client.post(f"/api/v1/connections/{conn}/trading/resume", headers=world.headers)
    assert resumed.json()["halted"] is False
    assert (await world.order(account, "after-resume")).status_code == 201
    listed = await world.client.get("/api/v1/orders", headers=world.headers)
    assert [o["status"] for o in listed.json()["items"]] == ["filled", "cancelled", "cancelled"]


async def test_api_tokens_are_scoped_shown_once_and_revocable(world: World) -> None:
    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn)).status_code == 200
    body = {"name": "bot", "scopes": [f"trade:{conn}"]}
    created = await world.client.post("/api/v1/api-tokens", headers=world.headers, json=body)
    assert created.status_code == 201, created.text
    secret, token_id = created.json()["token"], created.json()["id"]
    bot = {"Authorization": f"Bearer {secret}"}
    listed = await world.client.get("/api/v1/api-tokens", headers=world.headers)
    assert "token" not in listed.json()[0]
    assert secret not in listed.text
    r = await world.order(account, "bot-1", headers=bot, symbol="AAPL")
    assert (r.status_code, r.json()["created_by"]) == (201, f"token:{token_id}"), r.text
    # Trading scope is not read scope, and a token never manages the user.
    assert (await world.client.get("/api/v1/accounts", headers=bot)).status_code == 403
    assert (await world.client.get("/api/v1/api-tokens", headers=bot)).status_code == 403
    r = await world.client.patch(f"/api/v1/connections/{conn}", headers=bot, json={"name": "x"})
    assert r.status_code == 403
    assert _type(r) == "insufficient-scope"
    reader = await world.client.post(
        "/api/v1/api-tokens", headers=world.headers, json={"name": "reader", "scopes": ["read"]}
    )
    read = {"Authorization": f"Bearer {reader.json()['token']}"}
    assert (await world.client.get("/api/v1/accounts", headers=read)).status_code == 200
    for own in (
        "/api/v1/users/me",
        "/api/v1/users/me/sessions",
        "/api/v1/users/me/export",
        "/api/v1/api-tokens",
    ):
        assert (await world.client.get(own, headers=read)).status_code == 403, own  # the login's affairs
    r = await world.order(account, "reader-1", headers=read, symbol="AAPL")
    assert r.status_code == 403
    assert _type(r) == "insufficient-scope"
    bad = {"name": "x", "scopes": ["trade:not-a-uuid"]}
    assert (await world.client.post("/api/v1/api-tokens", headers=world.headers, json=bad)).status_code == 422
    revoked = await world.client.delete(f"/api/v1/api-tokens/{token_id}", headers=world.headers)
    assert revoked.status_code == 204
    r = await world.order(account, "bot-2", headers=bot, symbol="AAPL")
    assert r.status_code == 401
    assert len(world.alpaca.orders) == 1
    assert Decimal(world.alpaca.orders[0]["filled_qty"]) == 1


async def test_an_order_refused_under_the_lock_gives_back_its_reserved_send(world: World) -> None:
    """The send's slot on the broker's budget is reserved while the order is stored; an order
    refused there (a daily limit is counted under the lock) gives it back, so the next order
    does not wait for a send that never happened (Trading 212: one limit order per 2 s)."""
    conn, account = await world.connect("trading212", "demo")
    assert (await world.enable(conn, max_notional_per_day="100")).status_code == 200
    limit = {"type": "limit", "limit_price": "150"}
    refused = await world.order(account, "refused-1", **limit)
    assert (refused.status_code, _type(refused)) == (403, "order-limit"), refused.text
    assert "max_notional_per_day" in refused.json()["detail"]
    assert (await world.enable(conn, max_notional_per_day=None)).status_code == 200
    before = world.clock.now()
    placed = await world.order(account, "placed-1", **limit)
    assert placed.status_code == 201, placed.text
    assert world.clock.now() - before < 1  # the refused order's slot was free again
    again = await world.order(account, "placed-2", **limit)  # the limit itself still holds
    assert again.status_code == 201, again.text
    assert world.clock.now() - before >= 2
    assert len(world.t212.orders) == 2


async def _sleeping_send(world: World, account: str) -> asyncio.Task[httpx.Response]:
    """A limit order whose send sleeps (virtually) for Trading 212's one-per-2-s budget, holding
    the budget's lock meanwhile; virtual time moves on only after half a real second."""
    world.clock.grace = 0.5
    slept = world.clock.slept
    busy = asyncio.create_task(world.order(account, "busy", type="limit", limit_price="150"))
    while world.clock.slept == slept:  # noqa: ASYNC110 - until it is asleep in the budget (a counter)
        await asyncio.sleep(0.001)
    return busy


async def test_an_order_that_sends_nothing_never_queues_for_the_budget(world: World) -> None:
    """A replay and a refusal under the lock send nothing, so they answer at once even while
    another send waits for the broker's budget (found by review: the reservation queued)."""
    conn, account = await world.connect("trading212", "demo")
    assert (await world.enable(conn, max_orders_per_day=2)).status_code == 200
    limit = {"type": "limit", "limit_price": "150"}
    assert (await world.order(account, "first", **limit)).status_code == 201
    busy = await _sleeping_send(world, account)  # the second and last order of the day
    start = world.clock.now()
    replay = await world.order(account, "first", **limit)
    refused = await world.order(account, "third", **limit)
    waited = world.clock.now() - start
    assert (await busy).status_code == 201
    assert replay.status_code == 200, replay.text
    assert refused.status_code == 403, refused.text
    assert waited < 1, f"orders that send nothing waited {waited} s of the budget"
    assert len(world.t212.orders) == 2
