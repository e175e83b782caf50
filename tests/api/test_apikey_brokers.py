"""Trading 212 and Alpaca end to end: HTTP API → real database → fake provider servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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

T212_KEY, T212_SECRET = "fake-t212-key-for-tests", "fake-t212-secret-for-tests"
ALPACA_ID, ALPACA_SECRET = "fake-alpaca-key-id", "fake-alpaca-secret-key"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def t212(clock: VirtualClock) -> Iterator[tuple[Trading212Store, str]]:
    store = Trading212Store()
    store.seed(clock.now(), orders=70, dividends=8, transactions=5)
    store.add_position("AAPL_US_EQ", "15.5", "170.25", "185.5", fx="0.79", currency="USD", in_pies="3")
    with serve(t212_app(clock, api_key=T212_KEY, api_secret=T212_SECRET, store=store)) as url:
        yield store, url


@pytest.fixture
def alpaca(clock: VirtualClock) -> Iterator[tuple[AlpacaStore, str]]:
    store = AlpacaStore()
    store.seed(clock.now(), fills=12, others=8)
    store.add_position("AAPL", "13", "170.10", "187.43")
    with serve(alpaca_app(clock, key_id=ALPACA_ID, secret_key=ALPACA_SECRET, store=store)) as url:
        yield store, url


@pytest.fixture
async def api(
    database_url: str,
    tmp_path: Path,
    clock: VirtualClock,
    t212: tuple[Trading212Store, str],
    alpaca: tuple[AlpacaStore, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = make_settings(
        database_url,
        tmp_path,
        trading212_live_url=t212[1],
        alpaca_paper_url=alpaca[1],
        provider_timeout_seconds=1.0,
    )
    async with (
        built(settings, adapter_options={"clock": clock}) as container,
        api_client(container) as client,
    ):
        yield client, container


async def _connect(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object]
) -> dict[str, object]:
    r = await client.post("/api/v1/connections", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _run(
    client: httpx.AsyncClient, container: Container, headers: dict[str, str], run_id: object
) -> dict:
    await container.jobs.drain()
    r = await client.get(f"/api/v1/sync-runs/{run_id}", headers=headers)
    return dict(r.json())


async def _all(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> list[dict]:
    items, params = [], {"limit": 500}
    while True:
        body = (await client.get(path, headers=headers, params=params)).json()
        items += body["items"]
        if not body["next_cursor"]:
            return items
        params = {"limit": 500, "cursor": body["next_cursor"]}


T212_BODY = {
    "provider": "trading212",
    "name": "ISA",
    "environment": "live",
    "credentials": {"api_key": T212_KEY, "api_secret": T212_SECRET},
}


async def test_trading212_connect_sync_resync_and_new_fill(
    api: tuple[httpx.AsyncClient, Container], t212: tuple[Trading212Store, str], clock: VirtualClock
) -> None:
    client, container = api
    store, _ = t212
    headers = await register_and_login(client)
    created = await _connect(client, headers, T212_BODY)
    assert "credentials" not in created
    assert T212_SECRET not in str(created)
    run = await _run(client, container, headers, created["sync_run_id"])
    assert run["status"] == "succeeded", run
    assert run["trigger"] == "initial"
    (account,) = await _all(client, headers, "/api/v1/accounts")
    assert account["type"] == "brokerage"
    assert account["currency"] == "GBP"
    holdings = await _all(client, headers, f"/api/v1/accounts/{account['id']}/holdings")
    assert [h["symbol"] for h in holdings] == ["AAPL_US_EQ"]
    txns = await _all(client, headers, "/api/v1/transactions")
    filled = sum(1 for o in store.orders if o["order"]["status"] == "FILLED")
    assert len(txns) == filled + len(store.dividends) + len(store.transactions)
    assert all(t["provider_transaction_id"].split(":")[0] in {"order", "dividend", "cash"} for t in txns)
    snaps = (await client.get(f"/api/v1/accounts/{account['id']}/balance-snapshots", headers=headers)).json()
    assert [s["source"] for s in snaps["items"]] == ["initial"]
    assert store.throttled.total() == 0

    # Re-sync with nothing new: nothing changes, one request per history endpoint.
    clock.advance(3600)
    store.reset_counters()
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    run = await _run(client, container, headers, r.json()["id"])
    assert run["status"] == "succeeded", run
    assert run["counts"]["transactions_inserted"] == 0
    assert run["counts"]["transactions_updated"] == 0
    for endpoint in ("history_orders", "history_dividends", "history_transactions"):
        assert store.requests[endpoint] == 1, endpoint

    # A new fill appears after the next sync.
    clock.advance(3600)
    store.add_order(clock.now() - 60, ticker="AAPL_US_EQ", quantity="1", price="190")
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    run = await _run(client, container, headers, r.json()["id"])
    assert run["counts"]["transactions_inserted"] == 1
    assert len(await _all(client, headers, "/api/v1/transactions")) == len(txns) + 1


async def test_bad_key_is_422_and_nothing_is_stored(api: tuple[httpx.AsyncClient, Container]) -> None:
    client, _ = api
    headers = await register_and_login(client)
    body = T212_BODY | {"credentials": {"api_key": "fake-wrong-key", "api_secret": "fake-wrong-secret"}}
    r = await client.post("/api/v1/connections", headers=headers, json=body)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/provider-auth")
    assert "fake-wrong" not in r.text
    assert (await client.get("/api/v1/connections", headers=headers)).json()["items"] == []
    r = await client.post("/api/v1/connections", headers=headers, json=T212_BODY | {"credentials": {}})
    assert r.status_code == 422
    assert "api_key" in r.json()["detail"]


async def test_fault_leaves_data_and_sets_status(
    api: tuple[httpx.AsyncClient, Container], t212: tuple[Trading212Store, str], clock: VirtualClock
) -> None:
    client, container = api
    store, _ = t212
    headers = await register_and_login(client)
    created = await _connect(client, headers, T212_BODY)
    await _run(client, container, headers, created["sync_run_id"])
    before = await _all(client, headers, "/api/v1/transactions")
    accounts_before = await _all(client, headers, "/api/v1/accounts")

    clock.advance(3600)
    store.add_order(clock.now() - 60)
    store.inject("positions", "401")
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    run = await _run(client, container, headers, r.json()["id"])
    assert run["status"] == "failed"
    assert run["error_type"] == "provider-auth"
    conn = (await client.get(f"/api/v1/connections/{created['id']}", headers=headers)).json()
    assert conn["status"] == "needs_reauth"
    assert conn["last_error"]
    assert T212_KEY not in str(conn)
    assert await _all(client, headers, "/api/v1/transactions") == before
    assert await _all(client, headers, "/api/v1/accounts") == accounts_before

    # PATCH with the same (valid) credentials re-activates; rename works.
    r = await client.patch(
        f"/api/v1/connections/{created['id']}",
        headers=headers,
        json={"name": "Renamed", "credentials": T212_BODY["credentials"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert r.json()["name"] == "Renamed"

    clock.advance(3600)
    store.inject("history_dividends", "500", times=10)
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    run = await _run(client, container, headers, r.json()["id"])
    assert run["error_type"] == "provider-unavailable"
    conn = (await client.get(f"/api/v1/connections/{created['id']}", headers=headers)).json()
    assert conn["status"] == "error"
    assert await _all(client, headers, "/api/v1/transactions") == before


async def test_alpaca_connect_and_sync(
    api: tuple[httpx.AsyncClient, Container], alpaca: tuple[AlpacaStore, str]
) -> None:
    client, container = api
    store, _ = alpaca
    headers = await register_and_login(client)
    created = await _connect(
        client,
        headers,
        {
            "provider": "alpaca",
            "environment": "paper",
            "credentials": {"key_id": ALPACA_ID, "secret_key": ALPACA_SECRET},
        },
    )
    run = await _run(client, container, headers, created["sync_run_id"])
    assert run["status"] == "succeeded", run
    (account,) = await _all(client, headers, "/api/v1/accounts")
    assert account["currency"] == "USD"
    txns = await _all(client, headers, "/api/v1/transactions")
    assert len(txns) == len(store.activities)
    kinds = {(t["type"], t["subtype"]) for t in txns}
    assert ("trade", "buy") in kinds
    assert ("income", "dividend") in kinds
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    run = await _run(client, container, headers, r.json()["id"])
    assert run["counts"]["transactions_inserted"] == 0


async def test_providers_lists_the_api_key_brokers(api: tuple[httpx.AsyncClient, Container]) -> None:
    client, _ = api
    headers = await register_and_login(client)
    providers = {p["slug"]: p for p in (await client.get("/api/v1/providers", headers=headers)).json()}
    assert {"trading212", "alpaca"} <= set(providers)
    t212 = providers["trading212"]
    assert t212["auth_type"] == "api_key"
    assert t212["configured"] is True
    assert [f["name"] for f in t212["credential_fields"]] == ["api_key", "api_secret"]
