"""A caller's next order on an account skips the read its first one made (the context is
kept); each test changes what that context holds between two orders and checks the second
answers exactly as a fresh read would, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.helpers import PASSWORD
from tests.api.trading_world import ALPACA_ID, ALPACA_SECRET, World, trading_world


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with trading_world(database_url, tmp_path) as w:
        yield w


async def _bot(world: World, conn: str) -> dict[str, str]:
    body = {"name": "bot", "scopes": [f"trade:{conn}"]}
    created = await world.client.post("/api/v1/api-tokens", headers=world.headers, json=body)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['token']}", "X-Token-Id": created.json()["id"]}


async def _ready(world: World) -> tuple[str, str, dict[str, str]]:
    conn, account = await world.connect("alpaca", "paper")
    assert (await world.enable(conn)).status_code == 200
    bot = await _bot(world, conn)
    first = await world.order(account, "first", headers=bot, symbol="AAPL")
    assert first.status_code == 201, first.text
    return conn, account, bot


async def test_a_revoked_token_places_nothing_more(world: World) -> None:
    _, account, bot = await _ready(world)
    r = await world.client.delete(f"/api/v1/api-tokens/{bot['X-Token-Id']}", headers=world.headers)
    assert r.status_code == 204
    second = await world.order(account, "second", headers=bot, symbol="AAPL")
    assert second.status_code == 401, second.text
    assert len(world.alpaca.orders) == 1


async def test_new_credentials_send_the_next_order(world: World) -> None:
    """The broker client the first order used holds the old key; after a rotation (the old
    key retired at the broker) the next order goes out with the new one."""
    conn, account, bot = await _ready(world)
    world.alpaca.keys.add(("fake-alpaca-key-id-2", "fake-alpaca-secret-key-2"))
    body = {
        "credentials": {"key_id": "fake-alpaca-key-id-2", "secret_key": "fake-alpaca-secret-key-2"},
        "password": PASSWORD,
    }
    r = await world.client.patch(f"/api/v1/connections/{conn}", headers=world.headers, json=body)
    assert r.status_code == 200, r.text
    world.alpaca.retired = True  # (ALPACA_ID, ALPACA_SECRET) answer 401 from now on
    second = await world.order(account, "second", headers=bot, symbol="AAPL")
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "filled", second.json()
    assert len(world.alpaca.orders) == 2
    assert (ALPACA_ID, ALPACA_SECRET) not in world.alpaca.keys


async def test_a_retry_past_a_daily_limit_answers_the_first_order(world: World) -> None:
    """The kept context holds no stored order: the retry's answer must still be the first
    order (200, replayed), never a refusal by the limit that order itself used up."""
    conn, account, bot = await _ready(world)
    assert (await world.enable(conn, max_orders_per_day=2)).status_code == 200
    placed = await world.order(account, "second", headers=bot, symbol="AAPL")
    assert placed.status_code == 201, placed.text
    again = await world.order(account, "second", headers=bot, symbol="AAPL")
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (200, "true"), again.text
    assert again.json()["id"] == placed.json()["id"]
    refused = await world.order(account, "third", headers=bot, symbol="AAPL")
    assert refused.status_code == 403
    assert "max_orders_per_day" in refused.json()["detail"]
    other = await world.order(account, "second", headers=bot, symbol="AAPL", quantity="2")
    assert other.status_code == 422, other.text  # the same key, another body
    assert len(world.alpaca.orders) == 2


async def test_a_halt_refuses_the_next_order(world: World) -> None:
    conn, account, bot = await _ready(world)
    halted = await world.client.post(f"/api/v1/connections/{conn}/trading/halt", headers=world.headers)
    assert halted.status_code == 200, halted.text
    second = await world.order(account, "second", headers=bot, symbol="AAPL")
    assert second.status_code == 403, second.text
    assert "halted" in second.json()["detail"]
    replay = await world.order(account, "first", headers=bot, symbol="AAPL")
    assert replay.status_code == 200, replay.text  # a retry still answers its order
    assert len(world.alpaca.orders) == 1


async def test_a_deleted_connection_leaves_its_account_unknown(world: World) -> None:
    conn, account, bot = await _ready(world)
    body = {"password": PASSWORD}
    r = await world.client.request("DELETE", f"/api/v1/connections/{conn}", headers=world.headers, json=body)
    assert r.status_code in (200, 204), r.text
    second = await world.order(account, "second", headers=bot, symbol="AAPL")
    assert second.status_code in (401, 404), second.text  # its token went with it, or the account did
    assert len(world.alpaca.orders) == 1
