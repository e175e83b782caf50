"""The same provider login is never connected twice: net worth would count its accounts twice."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api import test_apikey_brokers as brokers
from tests.api import test_redirect_flows as redirect
from tests.api.helpers import register_and_login
from tests.api.test_apikey_brokers import T212_BODY
from tests.api.test_redirect_flows import Flows, Headers, authorize, connect, items, start

pytestmark = pytest.mark.e2e
# The fixtures of the broker and redirect-flow tests, shared rather than copied.
api, clock, t212, alpaca, headers = brokers.api, brokers.clock, brokers.t212, brokers.alpaca, redirect.headers


async def test_an_api_key_login_connected_again_answers_409_with_the_existing_connection(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    client, container = api
    headers = await register_and_login(client)
    first = await client.post("/api/v1/connections", headers=headers, json=T212_BODY)
    assert first.status_code == 201, first.text
    await container.jobs.drain()
    again = await client.post("/api/v1/connections", headers=headers, json=T212_BODY | {"name": "Again"})
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("/already-connected")
    assert again.json()["connection_id"] == first.json()["id"]
    r = await client.get("/api/v1/connections", headers=headers)
    assert [c["id"] for c in r.json()["items"]] == [first.json()["id"]]
    # Another user connecting the same key is a different finsync user: allowed.
    other = await register_and_login(client, "bob@example.com")
    assert (await client.post("/api/v1/connections", headers=other, json=T212_BODY)).status_code == 201


async def test_concurrent_connects_of_one_login_make_one_connection(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    client, container = api
    headers = await register_and_login(client)
    # Alpaca: its budget (200 a minute) lets all three validations through at once, so the
    # race is decided by the database alone.
    body = {
        "provider": "alpaca",
        "environment": "paper",
        "credentials": {"key_id": brokers.ALPACA_ID, "secret_key": brokers.ALPACA_SECRET},
    }
    results = await asyncio.gather(
        *(client.post("/api/v1/connections", headers=headers, json=body) for _ in range(3))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409], [r.text for r in results]
    winner = next(r.json()["id"] for r in results if r.status_code == 201)
    assert all(r.json()["connection_id"] == winner for r in results if r.status_code == 409)
    assert len((await client.get("/api/v1/connections", headers=headers)).json()["items"]) == 1
    await container.jobs.drain()
    accounts = (await client.get("/api/v1/accounts", headers=headers)).json()["items"]
    assert len(accounts) == 1


async def test_redirect_login_authorised_twice_reauthorises_the_existing_connection(
    flows: Flows, headers: Headers
) -> None:
    client, container = flows
    first = await connect(client, container, headers, {"provider": "schwab"})
    accounts = await items(client, headers, "/api/v1/accounts")
    second = await start(client, headers, {"provider": "schwab", "name": "Schwab again"})
    page = await authorize(client, second["authorization_url"])
    assert page.status_code == 200
    assert "already connected" in page.text
    assert first["id"] in page.text
    await container.jobs.drain()
    connections = await items(client, headers, "/api/v1/connections")
    assert [c["id"] for c in connections] == [first["id"]]
    assert connections[0]["status"] == "active"
    assert [a["id"] for a in await items(client, headers, "/api/v1/accounts")] == [a["id"] for a in accounts]
    runs = await items(client, headers, f"/api/v1/connections/{first['id']}/sync-runs")
    assert [r["trigger"] for r in runs] == ["manual", "initial"]


async def test_idempotency_key_on_connect_replays_the_first_answer_and_writes_nothing(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    """A client retrying a connect after a timeout gets the connection it made, not a 409."""
    client, container = api
    headers = await register_and_login(client) | {"Idempotency-Key": "connect-t212"}
    first = await client.post("/api/v1/connections", headers=headers, json=T212_BODY)
    assert first.status_code == 201, first.text
    await container.jobs.drain()
    retry = await client.post("/api/v1/connections", headers=headers, json=T212_BODY)
    assert retry.status_code == 201, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    other_body = await client.post("/api/v1/connections", headers=headers, json=T212_BODY | {"name": "Other"})
    assert other_body.status_code == 422, other_body.text
    r = await client.get("/api/v1/connections", headers=headers)
    assert [c["id"] for c in r.json()["items"]] == [first.json()["id"]]
    # Keys are per user: another user's same key is a new request of theirs.
    bob = await register_and_login(client, "bob@example.com") | {"Idempotency-Key": "connect-t212"}
    theirs = await client.post("/api/v1/connections", headers=bob, json=T212_BODY)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != first.json()["id"]
    await container.jobs.drain()


async def test_a_connect_key_whose_connection_was_deleted_connects_again(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    """A retry after the connection was deleted must not answer 201 with a connection that is gone."""
    client, container = api
    headers = await register_and_login(client) | {"Idempotency-Key": "connect-t212"}
    first = await client.post("/api/v1/connections", headers=headers, json=T212_BODY)
    assert first.status_code == 201, first.text
    await container.jobs.drain()
    r = await client.delete(f"/api/v1/connections/{first.json()['id']}", headers=headers)
    assert r.status_code == 204, r.text
    again = await client.post("/api/v1/connections", headers=headers, json=T212_BODY)
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    await container.jobs.drain()
    r = await client.get("/api/v1/connections", headers=headers)
    assert [c["id"] for c in r.json()["items"]] == [again.json()["id"]]
