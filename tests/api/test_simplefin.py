"""SimpleFIN Bridge end to end: HTTP API → real database (SQLite and PostgreSQL) → fake bridge
on loopback. Connect claims the setup token once and stores only the access URL; syncs read
accounts and transactions; a pending item posted under a new id stays one row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.fakes.simplefin import SimpleFinStore, create_app, seed_household

pytestmark = pytest.mark.e2e
DAY = 86_400


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def bridge(clock: VirtualClock) -> Iterator[tuple[SimpleFinStore, str]]:
    store = SimpleFinStore()
    seed_household(store, clock.now())
    with serve(create_app(clock, store)) as url:
        yield store, url


@pytest.fixture
async def api(
    database_url: str, tmp_path: Path, clock: VirtualClock, bridge: tuple[SimpleFinStore, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = make_settings(
        database_url, tmp_path, simplefin_allowed_hosts="127.0.0.1", provider_timeout_seconds=1.0
    )
    async with (
        built(settings, adapter_options={"clock": clock}) as container,
        api_client(container) as client,
    ):
        client.headers.update(await register_and_login(client))
        yield client, container


async def _sync(client: httpx.AsyncClient, container: Container, connection_id: str) -> dict[str, Any]:
    r = await client.post(f"/api/v1/connections/{connection_id}/sync")
    assert r.status_code in (200, 202), r.text
    return await _run(client, container, r.json()["id"])


async def _run(client: httpx.AsyncClient, container: Container, run_id: object) -> dict[str, Any]:
    await container.jobs.drain()
    return dict((await client.get(f"/api/v1/sync-runs/{run_id}")).json())


async def _transactions(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    items = (await client.get("/api/v1/transactions", params={"limit": 100})).json()["items"]
    return {t["provider_transaction_id"]: t for t in items}


async def test_connect_sync_read_and_resync_without_duplicates(
    api: tuple[httpx.AsyncClient, Container], bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    client, container = api
    store, url = bridge
    store.messages.append("Card Co needs you to log in again at the bridge.")
    token = store.setup_token(url)
    listed = {p["slug"]: p for p in (await client.get("/api/v1/providers")).json()}
    assert listed["simplefin"]["configured"] is True
    created = await client.post(
        "/api/v1/connections", json={"provider": "simplefin", "credentials": {"setup_token": token}}
    )
    assert created.status_code == 201, created.text
    assert token not in created.text
    connection_id = created.json()["id"]
    async with container.uow() as uow:  # only the access URL is stored, encrypted
        stored = await uow.connections.get(UUID(connection_id))
    assert stored is not None
    assert stored.credentials is not None
    assert token.encode() not in stored.credentials
    (access,) = container.cipher.decrypt(stored.credentials).values()
    assert access.startswith("http://user1:")

    run = await _run(client, container, created.json()["sync_run_id"])
    assert run["status"] == "succeeded", run
    assert run["warnings"] == ["Card Co needs you to log in again at the bridge."]
    accounts = (await client.get("/api/v1/accounts")).json()["items"]
    assert sorted((a["name"], a["type"], a["balance"]) for a in accounts) == [
        ("Everyday Checking", "checking", "1520.10"),
        ("Rewards Visa Card", "credit_card", "-312.45"),
    ]
    txns = await _transactions(client)
    assert sorted(txns) == ["PEND-1", "TRN-1", "TRN-2", "TRN-4"]
    assert txns["PEND-1"]["status"] == "pending"
    connection = (await client.get(f"/api/v1/connections/{connection_id}")).json()
    assert access not in str(connection)
    # The bridge's message is shown on the connection, where a user looks, until a sync without it.
    assert connection["provider_messages"] == ["Card Co needs you to log in again at the bridge."]

    # Nothing new: nothing changes.
    clock.advance(6 * 3600)
    store.messages.clear()
    run = await _sync(client, container, connection_id)
    assert run["status"] == "succeeded", run
    assert (await client.get(f"/api/v1/connections/{connection_id}")).json()["provider_messages"] is None
    assert run["counts"].get("transactions_inserted", 0) == 0
    assert run["counts"].get("transactions_updated", 0) == 0

    # The grocery purchase posts under a new id: still one row, now settled.
    clock.advance(6 * 3600)
    store.post("ACT-1", "PEND-1", "TRN-9", clock.now() - 3600)
    run = await _sync(client, container, connection_id)
    assert run["status"] == "succeeded", run
    txns = await _transactions(client)
    assert sorted(txns) == ["TRN-1", "TRN-2", "TRN-4", "TRN-9"]
    assert txns["TRN-9"]["status"] == "settled"
    assert txns["TRN-9"]["amount"] == "-64.99"
    assert store.claims == 1


async def test_a_used_or_unreadable_token_is_422_and_stores_nothing(
    api: tuple[httpx.AsyncClient, Container], bridge: tuple[SimpleFinStore, str]
) -> None:
    client, _ = api
    store, url = bridge
    token = store.setup_token(url)
    body = {"provider": "simplefin", "credentials": {"setup_token": token}}
    assert (await client.post("/api/v1/connections", json=body)).status_code == 201
    again = await client.post("/api/v1/connections", json=body)
    assert again.status_code == 422, again.text
    assert "already used" in again.json()["detail"]
    assert "New connection" in again.json()["detail"]
    assert token not in again.text
    garbage = await client.post(
        "/api/v1/connections", json={"provider": "simplefin", "credentials": {"setup_token": "nonsense!"}}
    )
    assert garbage.status_code == 422, garbage.text
    assert len((await client.get("/api/v1/connections")).json()["items"]) == 1


async def test_a_failing_first_sync_keeps_the_claimed_url_and_a_revoked_one_needs_a_new_token(
    api: tuple[httpx.AsyncClient, Container], bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    client, container = api
    store, url = bridge
    store.faults.extend([500] * 4)  # the first sync fails after the claim: nothing is lost
    created = await client.post(
        "/api/v1/connections",
        json={"provider": "simplefin", "credentials": {"setup_token": store.setup_token(url)}},
    )
    assert created.status_code == 201, created.text
    connection_id = created.json()["id"]
    run = await _run(client, container, created.json()["sync_run_id"])
    assert run["status"] == "failed"
    clock.advance(3600)
    assert (await _sync(client, container, connection_id))["status"] == "succeeded"
    assert store.claims == 1  # the stored access URL did the work: no second claim

    store.revoked.add("user1")
    clock.advance(3600)
    run = await _sync(client, container, connection_id)
    assert run["error_type"] == "provider-auth"
    connection = (await client.get(f"/api/v1/connections/{connection_id}")).json()
    assert connection["status"] == "needs_reauth"
    assert "New connection" in connection["last_error"]

    renewed = await client.patch(
        f"/api/v1/connections/{connection_id}",
        json={"credentials": {"setup_token": store.setup_token(url)}},
    )
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["status"] == "active"
    clock.advance(3600)
    assert (await _sync(client, container, connection_id))["status"] == "succeeded"
    assert len((await client.get("/api/v1/accounts")).json()["items"]) == 2  # the same accounts continue


async def test_a_patch_refused_for_its_name_does_not_spend_the_new_setup_token(
    api: tuple[httpx.AsyncClient, Container], bridge: tuple[SimpleFinStore, str]
) -> None:
    client, container = api
    store, url = bridge
    created = await client.post(
        "/api/v1/connections",
        json={"provider": "simplefin", "credentials": {"setup_token": store.setup_token(url)}},
    )
    assert created.status_code == 201, created.text
    await container.jobs.drain()
    path = f"/api/v1/connections/{created.json()['id']}"
    token = store.setup_token(url)
    refused = await client.patch(path, json={"credentials": {"setup_token": token}, "name": "   "})
    assert refused.status_code == 422, refused.text
    assert store.claims == 1  # refused before the one-time token was claimed
    renewed = await client.patch(path, json={"credentials": {"setup_token": token}, "name": "Bridge"})
    assert renewed.status_code == 200, renewed.text
    assert store.claims == 2
