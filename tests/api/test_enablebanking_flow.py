"""Enable Banking through the HTTP API on both databases: bank picker, bank login and callback,
first sync, pending → booked, the daily allowance, and a re-consent keeping the accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from finsync.bootstrap import Container
from finsync.domain.enums import SyncTrigger
from tests.api.conftest import clock_of
from tests.api.helpers import register_and_login
from tests.api.test_redirect_flows import authorize, connection, items, reauthorize, start
from tests.conftest import api_client, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.enablebanking import (
    APPLICATION_ID,
    INSTITUTION,
    FakeEnableBanking,
    new_key,
    with_sample_data,
)
from tests.fakes.gocardless import SANDBOX, SECRET_ID, SECRET_KEY, FakeGoCardless
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e
KEY = new_key()
BANK: dict[str, Any] = {
    "provider": "enablebanking",
    "name": "Sandbox",
    "options": {"institution_id": INSTITUTION},
}
Flows = tuple[httpx.AsyncClient, Container]


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def bank(vclock: VirtualClock) -> Iterator[tuple[FakeEnableBanking, str]]:
    fake = with_sample_data(FakeEnableBanking(vclock, KEY[1]))
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
async def flows(
    database_url: str,
    tmp_path: Path,
    vclock: VirtualClock,
    bank: tuple[FakeEnableBanking, str],
    gocardless: tuple[FakeGoCardless, str],
) -> AsyncIterator[Flows]:
    key_path = tmp_path / f"{APPLICATION_ID}.pem"
    key_path.write_bytes(KEY[0])
    settings = make_settings(
        database_url,
        tmp_path,
        public_url="http://testserver",
        enablebanking_url=bank[1],
        enablebanking_application_id=APPLICATION_ID,
        enablebanking_key_path=str(key_path),
        gocardless_url=f"{gocardless[1]}/api/v2",
        gocardless_secret_id=SECRET_ID,
        gocardless_secret_key=SECRET_KEY,
        provider_timeout_seconds=5.0,
    )
    options = {"clock": clock_of(vclock), "adapter_options": {"clock": vclock}}
    async with built(settings, **options) as container, api_client(container) as client:
        yield client, container


async def _sync(
    client: httpx.AsyncClient, container: Container, headers: dict[str, str], cid: str
) -> httpx.Response:
    r = await client.post(f"/api/v1/connections/{cid}/sync", headers=headers)
    await container.jobs.drain()
    return r


async def test_connect_sync_book_and_reconsent(
    flows: Flows, bank: tuple[FakeEnableBanking, str], vclock: VirtualClock
) -> None:
    client, container = flows
    fake, _ = bank
    headers = await register_and_login(client)
    r = await client.get("/api/v1/providers/enablebanking/institutions?country=FI", headers=headers)
    assert r.status_code == 200, r.text
    assert [b["id"] for b in r.json()] == [INSTITUTION]
    assert r.json()[0]["max_access_valid_for_days"] == 180
    providers = {p["slug"]: p for p in (await client.get("/api/v1/providers", headers=headers)).json()}
    assert providers["enablebanking"]["configured"] is True

    created = await start(client, headers, BANK)
    assert (await authorize(client, created["authorization_url"])).status_code == 200
    await container.jobs.drain()
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "active", conn
    assert conn["expires_at"] is not None
    assert conn["expires_at"] > "2026"
    accounts = await items(client, headers, "/api/v1/accounts")
    assert sorted(a["provider_account_id"] for a in accounts) == ["hash:hash-card-2", "hash:hash-current-1"]
    current = next(a for a in accounts if a["provider_account_id"] == "hash:hash-current-1")
    assert (current["balance"], current["available_balance"]) == ("1000.00", "950.10")
    txns = await items(client, headers, "/api/v1/transactions", limit=500)
    assert len(txns) == 8  # 7 of the current account (the cancelled one left out) + the card's
    assert sum(1 for t in txns if t["status"] == "pending") == 2
    rent = next(t for t in txns if t["description"] == "RENT")
    assert rent["amount"] == "-100.00"

    fake.book_pending(fake.bank_accounts[0], 1)  # booked with a new entry_reference
    vclock.advance(600)
    assert (await _sync(client, container, headers, created["id"])).status_code == 202
    txns = await items(client, headers, "/api/v1/transactions", limit=500)
    assert len(txns) == 8  # the pending row became the booked one: never both
    assert [t["description"] for t in txns if t["status"] == "pending"] == ["COFFEE"]

    url = await reauthorize(client, headers, created["id"])
    assert (await authorize(client, url)).status_code == 200
    await container.jobs.drain()
    after = await items(client, headers, "/api/v1/accounts")
    assert sorted(a["id"] for a in after) == sorted(a["id"] for a in accounts)  # new uids, same accounts
    assert len(await items(client, headers, "/api/v1/transactions", limit=500)) == 8


async def test_refusal_and_the_daily_allowance(flows: Flows, bank: tuple[FakeEnableBanking, str]) -> None:
    client, container = flows
    fake, _ = bank
    headers = await register_and_login(client)
    refused = await start(client, headers, BANK)
    r = await authorize(client, refused["authorization_url"], "deny")
    assert r.status_code == 400
    assert "access_denied" in r.text
    assert (await connection(client, headers, refused["id"]))["status"] == "pending"

    # A bank wanting a PSU header finsync cannot fill: none is sent, every call is unattended.
    fake.aspsps[0]["required_psu_headers"] = ["Psu-Ip-Address", "Psu-Geo-Location"]
    created = await start(client, headers, BANK)
    await authorize(client, created["authorization_url"])
    await container.jobs.drain()
    for _ in range(3):  # the first sync spent one of four
        assert (await _sync(client, container, headers, created["id"])).status_code == 202
    calls = fake.calls.total()
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    assert r.status_code == 429, r.text
    assert r.json()["type"].endswith("/provider-rate-limited")
    assert int(r.headers["retry-after"]) > 0
    assert fake.calls.total() == calls  # refused before any call to the bank
    assert fake.psu_seen
    assert all(psu == {} for _, psu in fake.psu_seen)
    bad = await client.post(
        "/api/v1/connections", headers=headers, json={**BANK, "options": {"institution_id": "Sandbox"}}
    )
    assert bad.status_code == 422, bad.text

    session_id = next(iter(fake.sessions))
    r = await client.delete(f"/api/v1/connections/{created['id']}", headers=headers)
    assert r.status_code == 204, r.text
    assert fake.sessions[session_id]["status"] == "CLOSED"  # the bank consent ended with it
    r = await client.delete(f"/api/v1/connections/{refused['id']}", headers=headers)
    assert r.status_code == 204, r.text  # nothing to revoke: no session was opened


async def test_the_same_iban_through_gocardless_is_flagged(
    flows: Flows, bank: tuple[FakeEnableBanking, str], gocardless: tuple[FakeGoCardless, str]
) -> None:
    """Moving from GoCardless to Enable Banking: the account both reach is named in a warning."""
    client, container = flows
    fake, _ = bank
    headers = await register_and_login(client)
    old = await start(client, headers, {"provider": "gocardless", "options": {"institution_id": SANDBOX}})
    await authorize(client, old["authorization_url"])
    await container.jobs.drain()
    fake.bank_accounts[0].iban = gocardless[0].bank_accounts[0].iban  # the same current account
    fake.bank_accounts[0].currency = gocardless[0].bank_accounts[0].currency
    created = await start(client, headers, BANK)
    await authorize(client, created["authorization_url"])
    await container.jobs.drain()
    runs = await items(client, headers, f"/api/v1/connections/{created['id']}/sync-runs")
    assert runs[0]["status"] == "succeeded"
    assert len(runs[0]["warnings"]) == 1
    assert "'Everyday' is also connected through connection " + old["id"] in runs[0]["warnings"][0]
    old_runs = await items(client, headers, f"/api/v1/connections/{old['id']}/sync-runs")
    assert old_runs[0]["warnings"] == []


async def test_the_person_present_is_told_to_the_bank(
    flows: Flows, bank: tuple[FakeEnableBanking, str], vclock: VirtualClock
) -> None:
    """Syncs the person asks for (the first one after the bank's callback, a manual one) carry
    the PSU headers, so the bank does not count them against its four unattended calls a day;
    a scheduled sync carries none and spends the allowance."""
    client, container = flows
    fake, _ = bank
    headers = {**await register_and_login(client), "User-Agent": "Mozilla/5.0 (finsync test)"}
    created = await start(client, headers, BANK)
    assert (await authorize(client, created["authorization_url"])).status_code == 200
    await container.jobs.drain()
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "active", conn
    # The callback is the browser's request, which the test client sends as httpx.
    assert fake.psu_seen
    assert all(psu.get("psu-ip-address") == "127.0.0.1" for _, psu in fake.psu_seen)
    assert all(set(psu) == {"psu-ip-address", "psu-user-agent"} for _, psu in fake.psu_seen)

    fake.psu_seen.clear()
    for _ in range(6):  # more than the four unattended calls a day: none of these counts
        r = await _sync(client, container, headers, created["id"])
        assert r.status_code == 202, r.text
        vclock.advance(60)
    runs = await items(client, headers, f"/api/v1/connections/{created['id']}/sync-runs")
    assert [r["status"] for r in runs[:6]] == ["succeeded"] * 6
    assert {psu["psu-user-agent"] for _, psu in fake.psu_seen} == {"Mozilla/5.0 (finsync test)"}
    assert all(psu["psu-ip-address"] == "127.0.0.1" for _, psu in fake.psu_seen)

    fake.psu_seen.clear()
    owner = UUID((await client.get("/api/v1/users/me", headers=headers)).json()["id"])
    await container.sync.request(UUID(created["id"]), owner, SyncTrigger.SCHEDULED)
    await container.jobs.drain()
    assert fake.psu_seen
    assert all(psu == {} for _, psu in fake.psu_seen)  # unattended: no PSU header
    assert sum(1 for kind, _ in fake.psu_seen if kind == "balances") == len(fake.bank_accounts)
