"""One bank account reached through GoCardless and Enable Banking (a person moving from one to
the other) is flagged on both sides and counted once in net worth, its history and the
portfolio performance, on both databases, whichever connection came first."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import PASSWORD, register_and_login
from tests.api.test_enablebanking_flow import BANK as EB_BANK
from tests.api.test_enablebanking_flow import Flows, bank, flows, vclock  # noqa: F401 - fixtures
from tests.api.test_redirect_flows import authorize, connection, items, start
from tests.api.test_redirect_flows import connect as gc_connect
from tests.fakes.clock import VirtualClock
from tests.fakes.enablebanking import FakeBankAccount, FakeEnableBanking
from tests.fakes.gocardless import FakeGoCardless

pytestmark = pytest.mark.e2e
DAY = 86400.0
SAVER_IBAN = "DE89370400440532013000"  # the GoCardless sample's EUR saver (5000.00 there)
GC_BANK: dict[str, Any] = {"provider": "gocardless", "options": {"institution_id": "SANDBOXFINANCE_SFIN0000"}}


async def _later(client: httpx.AsyncClient, clock: VirtualClock, days: float) -> dict[str, str]:
    """Move the clock on; the access token has expired by then: log in again."""
    clock.advance(days * DAY)
    form = {"username": "ada@example.com", "password": PASSWORD}
    r = await client.post("/api/v1/auth/token", data=form)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _same_saver(fake: FakeEnableBanking) -> None:
    """Enable Banking's bank holds the GoCardless saver (IBAN sent with spaces, lower case), at
    5010.00 so the figures tell which of the two was counted."""
    saver = FakeBankAccount("de89 3704 0044 0532 0130 00", "hash-saver", currency="EUR", name="Saver")
    saver.balances = [
        {"name": "Booked", "balance_amount": {"amount": "5010.00", "currency": "EUR"}, "balance_type": "CLBD"}
    ]
    fake.bank_accounts = [saver]


async def _connect_eb(client: httpx.AsyncClient, container: Container, headers: dict[str, str]) -> str:
    created = await start(client, headers, EB_BANK)
    assert (await authorize(client, created["authorization_url"])).status_code == 200
    await container.jobs.drain()
    assert (await connection(client, headers, created["id"]))["status"] == "active"
    return str(created["id"])


async def _connect_gc(client: httpx.AsyncClient, container: Container, headers: dict[str, str]) -> str:
    created = await gc_connect(client, container, headers, GC_BANK)
    assert (await connection(client, headers, created["id"]))["status"] == "active"
    return str(created["id"])


async def _eur(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/api/v1/net-worth", params={"currency": "EUR"}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _eur_total(worth: dict[str, Any]) -> tuple[str, int]:
    eur = next(t for t in worth["totals"] if t["currency"] == "EUR")
    return eur["total"], eur["accounts"]


async def _history(client: httpx.AsyncClient, headers: dict[str, str], start: date, end: date) -> list[str]:
    params = {"from": start.isoformat(), "to": end.isoformat(), "interval": "day", "currency": "EUR"}
    r = await client.get("/api/v1/net-worth/history", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert "EUR" not in r.json()["missing_rates"]
    return [p["value"] for p in r.json()["points"]]


@pytest.mark.parametrize("first", ["gocardless", "enablebanking"])
async def test_same_iban_through_two_providers_counts_once(
    flows: Flows,  # noqa: F811
    bank: tuple[FakeEnableBanking, str],  # noqa: F811
    gocardless: tuple[FakeGoCardless, str],
    vclock: VirtualClock,  # noqa: F811
    first: str,
) -> None:
    client, container = flows
    _same_saver(bank[0])
    headers = await register_and_login(client)
    day0 = container.clock().date()
    connectors = {"gocardless": _connect_gc, "enablebanking": _connect_eb}
    second = "enablebanking" if first == "gocardless" else "gocardless"
    old = await connectors[first](client, container, headers)
    only_old = _eur_total(await _eur(client, headers))
    headers = await _later(client, vclock, 3)
    new = await connectors[second](client, container, headers)
    day3 = container.clock().date()

    # Both accounts stay listed, each flagged; the newer connection's counts (both are active).
    accounts = await items(client, headers, "/api/v1/accounts")
    savers = {a["connection_id"]: a for a in accounts if a["iban"] == SAVER_IBAN}
    assert set(savers) == {old, new}
    assert savers[old]["duplicate_of"] == savers[new]["id"]
    assert savers[new]["duplicate_of"] is None
    assert [p["account_id"] for p in savers[new]["also_reached_through"]] == [savers[old]["id"]]
    assert [p["connection_id"] for p in savers[old]["also_reached_through"]] == [new]
    assert [p["provider"] for p in savers[old]["also_reached_through"]] == [second]
    one = (await client.get(f"/api/v1/accounts/{savers[old]['id']}", headers=headers)).json()
    assert one["duplicate_of"] == savers[new]["id"]
    unrelated = [a for a in accounts if a["iban"] != SAVER_IBAN]
    assert unrelated
    assert all(a["duplicate_of"] is None and a["also_reached_through"] == [] for a in unrelated)

    counted = "5010.00" if second == "enablebanking" else "5000.00"
    worth = await _eur(client, headers)
    assert _eur_total(worth) == (counted, 1)
    assert [a["id"] for a in worth["accounts_counted_elsewhere"]] == [savers[old]["id"]]
    assert worth["accounts_counted_elsewhere"][0]["duplicate_of"] == savers[new]["id"]
    assert savers[old]["id"] not in {a["account_id"] for a in worth["accounts"]}
    assert worth["total"] == counted  # the GBP account has no rate here: listed without one
    # History: the old connection alone until the new one's first balance, then the new one only.
    points = await _history(client, headers, day0 - timedelta(days=1), day3)
    assert points == ["0.00", only_old[0], only_old[0], only_old[0], counted]
    # The old connection keeps syncing a day later: its moves count no more.
    headers = await _later(client, vclock, 1)
    if first == "gocardless":
        gocardless[0].bank_accounts[1].balances[0]["balanceAmount"]["amount"] = "5200.00"
    else:
        bank[0].bank_accounts[0].balances[0]["balance_amount"]["amount"] = "5200.00"
    r = await client.post(f"/api/v1/connections/{old}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    day4 = container.clock().date()
    assert _eur_total(await _eur(client, headers)) == (counted, 1)
    assert (await _history(client, headers, day3, day4)) == [counted, counted]
    # The sync that found the twin said so.
    runs = (await client.get(f"/api/v1/connections/{new}/sync-runs", headers=headers)).json()["items"]
    assert any("also connected through" in w for run in runs for w in run.get("warnings") or [])

    # The export carries the IBAN.
    export = json.loads((await client.get("/api/v1/users/me/export", headers=headers)).content)
    assert SAVER_IBAN in {a["iban"] for a in export["accounts"]}

    # The connection that counted is deleted: the other one counts again, history included.
    r = await client.delete(f"/api/v1/connections/{new}", headers=headers)
    assert r.status_code == 204, r.text
    worth = await _eur(client, headers)
    assert _eur_total(worth) == ("5200.00", 1)
    assert worth["accounts_counted_elsewhere"] == []
    assert (await _history(client, headers, day3, day4)) == [only_old[0], "5200.00"]
    left = next(a for a in await items(client, headers, "/api/v1/accounts") if a["iban"] == SAVER_IBAN)
    assert (left["duplicate_of"], left["also_reached_through"]) == (None, [])


async def test_a_healthy_connection_counts_over_a_newer_lapsed_one(
    flows: Flows,  # noqa: F811
    bank: tuple[FakeEnableBanking, str],  # noqa: F811
    vclock: VirtualClock,  # noqa: F811
) -> None:
    client, container = flows
    fake, _ = bank
    _same_saver(fake)
    headers = await register_and_login(client)
    gc = await _connect_gc(client, container, headers)
    headers = await _later(client, vclock, 1)
    eb = await _connect_eb(client, container, headers)
    assert _eur_total(await _eur(client, headers)) == ("5010.00", 1)
    for session in fake.sessions.values():  # the person revoked the consent at the bank
        session["status"] = "CLOSED"
    headers = await _later(client, vclock, 1)
    await client.post(f"/api/v1/connections/{eb}/sync", headers=headers)
    await container.jobs.drain()
    assert (await connection(client, headers, eb))["status"] == "needs_reauth"
    worth = await _eur(client, headers)
    assert _eur_total(worth) == ("5000.00", 1)  # GoCardless's, still live
    savers = {a["connection_id"]: a for a in await items(client, headers, "/api/v1/accounts") if a["iban"]}
    eb_saver = next(a for cid, a in savers.items() if cid == eb)
    assert eb_saver["duplicate_of"] == next(a["id"] for cid, a in savers.items() if cid == gc)
