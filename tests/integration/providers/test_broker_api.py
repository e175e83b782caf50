"""API-key brokers through the HTTP API and a real database: revoked keys, unreachable hosts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes.alpaca import AlpacaStore
from tests.fakes.alpaca import create_app as alpaca_app
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.fakes.trading212 import Trading212Store
from tests.fakes.trading212 import create_app as t212_app

pytestmark = pytest.mark.e2e

KEY_ID, SECRET = "fake-alpaca-key-id-0042", "fake-alpaca-secret-key-0042"
ALPACA: dict[str, Any] = {
    "provider": "alpaca",
    "environment": "paper",
    "credentials": {"key_id": KEY_ID, "secret_key": SECRET},
}
T212: dict[str, Any] = {
    "provider": "trading212",
    "environment": "live",
    "credentials": {"api_key": "fake-t212-key-0042", "api_secret": "fake-t212-secret-0042"},
}


@pytest.fixture
def alpaca(clock: VirtualClock) -> Iterator[tuple[AlpacaStore, str]]:
    store = AlpacaStore()
    store.seed(clock.now(), fills=30, others=10)
    store.add_position("AAPL", "13", "170.10", "187.43")
    with serve(alpaca_app(clock, key_id=KEY_ID, secret_key=SECRET, store=store)) as url:
        yield store, url


@pytest.fixture
def t212(clock: VirtualClock) -> Iterator[tuple[Trading212Store, str]]:
    store = Trading212Store()
    store.seed(clock.now(), orders=20, dividends=3, transactions=3)
    store.add_position("AAPL_US_EQ", "15.5", "170.25", "185.5", fx="0.79", currency="USD")
    store.add_position("VUSAl_EQ", "40", "7512", "8123.5", fx="0.01", currency="GBX", isin="IE00B3XXRP09")
    store.add_position("BARC_EQ", "100", "1.75", "2.05", currency="GBP", isin="GB0031348658")
    creds = T212["credentials"]
    with serve(t212_app(clock, api_key=creds["api_key"], api_secret=creds["api_secret"], store=store)) as url:
        yield store, url


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but never listening: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@asynccontextmanager
async def app(
    database_url: str, tmp_path: Path, clock: VirtualClock, **urls: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Container, dict[str, str]]]:
    settings = make_settings(database_url, tmp_path, provider_timeout_seconds=1.0, **urls)
    async with (
        built(settings, adapter_options={"clock": clock}) as container,
        api_client(container) as client,
    ):
        yield client, container, await register_and_login(client)


async def _get_all(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> list[dict[str, Any]]:
    r = await client.get(path, headers=headers, params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_revoked_alpaca_key_is_refused_on_connect(
    database_url: str, tmp_path: Path, clock: VirtualClock, alpaca: tuple[AlpacaStore, str]
) -> None:
    store, url = alpaca
    store.revoked = True  # 403 {"message": "forbidden."}
    async with app(database_url, tmp_path, clock, alpaca_paper_url=url) as (client, _, headers):
        r = await client.post("/api/v1/connections", headers=headers, json=ALPACA)
        assert r.status_code == 422, r.text
        assert r.json()["type"].endswith("/provider-auth")
        assert "Alpaca rejected the API key" in r.json()["detail"]
        assert SECRET not in r.text
        assert await _get_all(client, headers, "/api/v1/connections") == []


async def test_alpaca_key_revoked_after_connecting_needs_reauth_and_keeps_data(
    database_url: str, tmp_path: Path, clock: VirtualClock, alpaca: tuple[AlpacaStore, str]
) -> None:
    store, url = alpaca
    async with app(database_url, tmp_path, clock, alpaca_paper_url=url) as (client, container, headers):
        r = await client.post("/api/v1/connections", headers=headers, json=ALPACA)
        assert r.status_code == 201, r.text
        connection = r.json()
        await container.jobs.drain()
        before = [
            await _get_all(client, headers, path)
            for path in ("/api/v1/accounts", "/api/v1/transactions", "/api/v1/holdings")
        ]
        assert before[1]

        store.revoked = True
        clock.advance(3600)
        store.add_fill(clock.now(), symbol="MSFT")
        r = await client.post(f"/api/v1/connections/{connection['id']}/sync", headers=headers)
        assert r.status_code == 202, r.text
        await container.jobs.drain()
        run = (await client.get(f"/api/v1/sync-runs/{r.json()['id']}", headers=headers)).json()
        assert (run["status"], run["error_type"]) == ("failed", "provider-auth")
        conn = (await client.get(f"/api/v1/connections/{connection['id']}", headers=headers)).json()
        assert conn["status"] == "needs_reauth"
        assert SECRET not in str(conn)
        after = [
            await _get_all(client, headers, path)
            for path in ("/api/v1/accounts", "/api/v1/transactions", "/api/v1/holdings")
        ]
        assert after == before


@pytest.mark.parametrize(("body", "setting"), [(ALPACA, "alpaca_paper_url"), (T212, "trading212_live_url")])
async def test_connecting_to_a_refusing_host_fails_fast_and_says_why(
    database_url: str,
    tmp_path: Path,
    clock: VirtualClock,
    closed_port: int,
    body: dict[str, Any],
    setting: str,
) -> None:
    host = f"127.0.0.1:{closed_port}"
    async with app(database_url, tmp_path, clock, **{setting: f"http://{host}"}) as (client, _, headers):
        r = await client.post("/api/v1/connections", headers=headers, json=body)
        assert r.status_code == 502, r.text
        problem = r.json()
        assert problem["type"].endswith("/provider-unavailable")
        assert f"could not connect to {host}: connection refused" in problem["detail"]
        assert "after 1 attempt:" in problem["detail"]
        for secret in body["credentials"].values():
            assert secret not in r.text
        assert clock.slept == 0  # no back-off: a person is waiting for this answer
        assert await _get_all(client, headers, "/api/v1/connections") == []


async def test_holdings_say_which_currency_their_prices_are_in(
    database_url: str, tmp_path: Path, clock: VirtualClock, t212: tuple[Trading212Store, str]
) -> None:
    _, url = t212
    async with app(database_url, tmp_path, clock, trading212_live_url=url) as (client, container, headers):
        r = await client.post("/api/v1/connections", headers=headers, json=T212)
        assert r.status_code == 201, r.text
        await container.jobs.drain()
        holdings = {h["symbol"]: h for h in await _get_all(client, headers, "/api/v1/holdings")}
    currencies = {symbol: (h["currency"], h["price_currency"]) for symbol, h in holdings.items()}
    assert currencies == {"AAPL_US_EQ": ("GBP", "USD"), "VUSAl_EQ": ("GBP", "GBX"), "BARC_EQ": ("GBP", "GBP")}
    aapl = holdings["AAPL_US_EQ"]
    assert (aapl["current_price"], aapl["average_cost"]) == ("185.5", "170.25")  # dollars
    assert aapl["market_value"] == "2271.45"  # pounds: 15.5 x 185.5 USD at 0.79
