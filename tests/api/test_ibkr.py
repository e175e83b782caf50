"""Interactive Brokers (Flex) end to end: HTTP API → real database (SQLite and PostgreSQL) →
fake Flex Web Service on loopback. Connect (token, query id, optional token expiry), the
first sync waits out a statement still generating, accounts, cash per currency, holdings and
transactions are visible; a re-sync inserts nothing; errors leave a clear connection status
and store nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.ibkr import BASE, QUERY_ID, TOKEN, FlexStore, create_app, fixture
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e
CREDENTIALS = {"token": TOKEN, "query_id": QUERY_ID}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def flex(clock: VirtualClock) -> Iterator[tuple[FlexStore, str]]:
    store = FlexStore()
    with serve(create_app(clock, store)) as url:
        yield store, url


@pytest.fixture
async def api(
    database_url: str, tmp_path: Path, clock: VirtualClock, flex: tuple[FlexStore, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    settings = make_settings(
        database_url, tmp_path, ibkr_url=f"{flex[1]}{BASE}", provider_timeout_seconds=2.0
    )
    async with (
        built(settings, adapter_options={"clock": clock}) as container,
        api_client(container) as client,
    ):
        client.headers.update(await register_and_login(client))
        yield client, container


async def _run(client: httpx.AsyncClient, container: Container, run_id: object) -> dict[str, Any]:
    await container.jobs.drain()
    return dict((await client.get(f"/api/v1/sync-runs/{run_id}")).json())


async def _sync(client: httpx.AsyncClient, container: Container, connection_id: str) -> dict[str, Any]:
    r = await client.post(f"/api/v1/connections/{connection_id}/sync")
    assert r.status_code in (200, 202), r.text
    return await _run(client, container, r.json()["id"])


async def _listed(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    body = (await client.get(f"/api/v1/{path}", params={"limit": 200})).json()
    return list(body["items"])


async def test_providers_list_ibkr_with_its_credential_fields(
    api: tuple[httpx.AsyncClient, Container],
) -> None:
    client, _ = api
    listed = {p["slug"]: p for p in (await client.get("/api/v1/providers")).json()}
    ibkr = listed["ibkr"]
    assert ibkr["auth_type"] == "api_key"
    assert ibkr["configured"] is True
    fields = {f["name"]: f for f in ibkr["credential_fields"]}
    assert list(fields) == ["token", "query_id", "token_expires_on"]
    assert (fields["token"]["secret"], fields["token"]["required"]) == (True, True)
    assert (fields["query_id"]["secret"], fields["query_id"]["required"]) == (False, True)
    assert fields["token_expires_on"] | {"help": ""} == {
        "name": "token_expires_on", "label": "Token expires on", "secret": False, "required": False,
        "expiry": True, "help": "",
    }  # fmt: skip


async def test_connect_sync_read_and_resync_without_duplicates(
    api: tuple[httpx.AsyncClient, Container], flex: tuple[FlexStore, str]
) -> None:
    client, container = api
    store, _ = flex
    store.generation_seconds = 8  # the first sync polls while IBKR generates
    expires = (datetime.now(UTC) + timedelta(days=60)).date()
    created = await client.post(
        "/api/v1/connections",
        json={"provider": "ibkr", "credentials": CREDENTIALS | {"token_expires_on": expires.isoformat()}},
    )
    assert created.status_code == 201, created.text
    assert TOKEN not in created.text
    body = created.json()
    assert body["expires_at"] == f"{expires.isoformat()}T00:00:00Z"
    assert body["sync_interval_minutes"] == 1440
    next_at = datetime.fromisoformat(body["next_sync_at"])
    assert (next_at.hour, next_at.minute // 30) == (4, 0)  # after IBKR's close-of-business update
    async with container.uow() as uow:  # the expiry is the connection's, not a stored credential
        stored = await uow.connections.get(UUID(body["id"]))
    assert stored is not None
    assert stored.credentials is not None
    assert container.cipher.decrypt(stored.credentials) == CREDENTIALS

    run = await _run(client, container, body["sync_run_id"])
    assert run["status"] == "succeeded", run
    accounts = {a["provider_account_id"]: a for a in await _listed(client, "accounts")}
    assert sorted(accounts) == ["U1111111", "U2222222"]
    main = accounts["U1111111"]
    assert (main["name"], main["currency"], main["balance"]) == ("IBKR Main", "USD", "36246.74")
    assert accounts["U2222222"]["currency"] == "EUR"
    holdings = await _listed(client, f"accounts/{main['id']}/holdings")
    by_symbol = {h["symbol"]: h for h in holdings}
    assert sorted(by_symbol) == ["AAPL", "AAPL  261218C00250000", "EUR", "NVDA", "USD", "VWCE"]
    assert (by_symbol["VWCE"]["price_currency"], by_symbol["VWCE"]["current_price"]) == ("EUR", "118.40")
    assert (by_symbol["EUR"]["asset_type"], by_symbol["EUR"]["quantity"]) == ("cash", "289.60")
    assert by_symbol["AAPL  261218C00250000"]["asset_type"] == "option"
    txns = {t["provider_transaction_id"]: t for t in await _listed(client, "transactions")}
    assert len(txns) == 15
    fx = txns["trade:2911000001"]
    assert (fx["subtype"], fx["amount"], fx["currency"], fx["fees"]) == ("buy", "-2714.5", "USD", "2")
    assert (txns["cash:2911000103"]["type"], txns["cash:2911000103"]["amount"]) == ("tax", "-1.95")
    assert txns["ca:2911000006"]["subtype"] == "split"
    assert txns["cash:2922000101"]["currency"] == "EUR"

    run = await _sync(client, container, body["id"])
    assert run["status"] == "succeeded", run
    assert run["counts"].get("transactions_inserted", 0) == 0
    assert run["counts"].get("transactions_updated", 0) == 0
    assert len(await _listed(client, "transactions")) == 15
    assert len(await _listed(client, "accounts")) == 2


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "words"),
    [
        ("expired", "needs_reauth", "provider-auth", "Flex token has expired"),
        ("ip_bound", "error", "provider-scope", "IP restriction"),
        ("hostile", "error", "provider-bad-data", "no XML with a DTD"),
        ("generating", "error", "provider-unavailable", "IBKR error 1019"),
    ],
)
async def test_a_failed_first_sync_says_why_and_stores_nothing(
    api: tuple[httpx.AsyncClient, Container],
    flex: tuple[FlexStore, str],
    fault: str,
    status: str,
    error_type: str,
    words: str,
) -> None:
    client, container = api
    store, _ = flex
    created = await client.post("/api/v1/connections", json={"provider": "ibkr", "credentials": CREDENTIALS})
    assert created.status_code == 201, created.text
    if fault == "expired":
        store.expired.add(TOKEN)
    elif fault == "ip_bound":
        store.ip_bound.add(TOKEN)
    elif fault == "hostile":
        store.statement = fixture("billion_laughs.xml")
    else:
        store.generation_seconds = 10 * 3600
    run = await _run(client, container, created.json()["sync_run_id"])
    assert (run["status"], run["error_type"]) == ("failed", error_type), run
    connection = (await client.get(f"/api/v1/connections/{created.json()['id']}")).json()
    assert connection["status"] == status
    assert words in connection["last_error"]
    assert TOKEN not in connection["last_error"]
    assert await _listed(client, "accounts") == []
    assert await _listed(client, "transactions") == []
    assert await _listed(client, "holdings") == []


async def test_rejected_credentials_and_bad_expiry_dates_are_422_and_store_nothing(
    api: tuple[httpx.AsyncClient, Container], flex: tuple[FlexStore, str]
) -> None:
    client, _ = api
    store, _ = flex
    wrong = await client.post(
        "/api/v1/connections",
        json={"provider": "ibkr", "credentials": {"token": "fake-wrong-token-0000", "query_id": QUERY_ID}},
    )
    assert wrong.status_code == 422, wrong.text
    assert "1015" in wrong.json()["detail"]
    for bad in ("next tuesday", "2001-01-01"):
        r = await client.post(
            "/api/v1/connections",
            json={"provider": "ibkr", "credentials": CREDENTIALS | {"token_expires_on": bad}},
        )
        assert r.status_code == 422, r.text
        assert "token_expires_on must be a date" in r.json()["detail"]
    store.ip_bound.add(TOKEN)
    ip = await client.post("/api/v1/connections", json={"provider": "ibkr", "credentials": CREDENTIALS})
    assert ip.status_code == 422, ip.text
    assert "IP restriction" in ip.json()["detail"]
    store.ip_bound.clear()
    store.send_body = b"<html><body>Maintenance</body"
    page = await client.post("/api/v1/connections", json={"provider": "ibkr", "credentials": CREDENTIALS})
    assert page.status_code == 502, page.text
    assert page.headers["content-type"].startswith("application/problem+json")
    assert "not well-formed XML" in page.json()["detail"]
    assert (await client.get("/api/v1/connections")).json()["items"] == []


async def test_new_credentials_carry_their_own_expiry(
    api: tuple[httpx.AsyncClient, Container], flex: tuple[FlexStore, str]
) -> None:
    client, container = api
    store, _ = flex
    first = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    created = await client.post(
        "/api/v1/connections",
        json={"provider": "ibkr", "credentials": CREDENTIALS | {"token_expires_on": first}},
    )
    connection_id = created.json()["id"]
    await _run(client, container, created.json()["sync_run_id"])
    assert (await client.get(f"/api/v1/connections/{connection_id}")).json()["attention"] == "expiring"
    store.tokens["fake-new-flex-token-5555"] = QUERY_ID
    later = (datetime.now(UTC) + timedelta(days=300)).date().isoformat()
    renewed = await client.patch(
        f"/api/v1/connections/{connection_id}",
        json={
            "credentials": {
                "token": "fake-new-flex-token-5555",
                "query_id": QUERY_ID,
                "token_expires_on": later,
            }
        },
    )
    assert renewed.status_code == 200, renewed.text
    assert (renewed.json()["expires_at"], renewed.json()["attention"]) == (f"{later}T00:00:00Z", None)


async def test_two_tokens_for_the_same_ibkr_accounts_never_duplicate_them(
    api: tuple[httpx.AsyncClient, Container], flex: tuple[FlexStore, str]
) -> None:
    """A second token reaching the same accounts (a new token, the old connection kept) is
    accepted at connect (Flex validation cannot name the accounts), but its first sync, run
    beside the first connection's, cannot take the accounts: the database keeps one of each."""
    client, container = api
    store, _ = flex
    store.generation_seconds = 5
    store.tokens["fake-second-flex-token-7777"] = QUERY_ID
    ids = []
    for token in (TOKEN, "fake-second-flex-token-7777"):
        created = await client.post(
            "/api/v1/connections",
            json={"provider": "ibkr", "credentials": {"token": token, "query_id": QUERY_ID}},
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["sync_run_id"])
    runs = [await _run(client, container, run_id) for run_id in ids]
    assert sorted(r["status"] for r in runs) == ["failed", "succeeded"], runs
    (failed,) = [r for r in runs if r["status"] == "failed"]
    # Truly at the same time (PostgreSQL), the loser sees the write conflict; after, its owner.
    assert failed["error_type"] in ("already-connected", "conflict"), failed
    again = await _sync(client, container, failed["connection_id"])
    assert again["error_type"] == "already-connected", again
    assert sorted(a["provider_account_id"] for a in await _listed(client, "accounts")) == [
        "U1111111",
        "U2222222",
    ]
    assert len(await _listed(client, "transactions")) == 15
