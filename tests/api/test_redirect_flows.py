"""OAuth (Schwab) and bank-link (GoCardless) flows through the HTTP API, consent pages submitted
like a browser would (the real-browser versions live in test_browser.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.conftest import CLIENT_URL
from tests.api.helpers import PASSWORD, register_and_login
from tests.fakes.clock import VirtualClock
from tests.fakes.consent import submit_consent as consent
from tests.fakes.gocardless import SANDBOX, FakeGoCardless
from tests.fakes.schwab import FakeSchwab

pytestmark = pytest.mark.e2e
Flows = tuple[httpx.AsyncClient, Container]
Headers = dict[str, str]
BANK: dict[str, Any] = {"provider": "gocardless", "options": {"institution_id": SANDBOX}}


@pytest.fixture
async def headers(flows: Flows) -> Headers:
    """A signed-in user of the app under test."""
    return await register_and_login(flows[0])


async def callback(client: httpx.AsyncClient, location: str) -> httpx.Response:
    parts = urlsplit(location)
    assert parts.path.startswith("/api/v1/connections/callback/"), location
    return await client.get(f"{parts.path}?{parts.query}")


async def authorize(client: httpx.AsyncClient, url: str, decision: str = "allow") -> httpx.Response:
    """Press Allow (or Deny) on the consent page at ``url``, then land on finsync's callback."""
    return await callback(client, await consent(url, decision))


async def start(client: httpx.AsyncClient, headers: Headers, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/api/v1/connections", headers=headers, json=body)
    assert r.status_code == 201, r.text
    created = dict(r.json())
    assert created["status"] == "pending"
    assert created["authorization_url"]
    return created


async def connect(
    client: httpx.AsyncClient, container: Container, headers: Headers, body: dict[str, Any]
) -> dict[str, Any]:
    """Create a connection, allow it, and wait for its first sync."""
    created = await start(client, headers, body)
    await authorize(client, created["authorization_url"])
    await container.jobs.drain()
    return created


async def reauthorize(client: httpx.AsyncClient, headers: Headers, cid: str) -> str:
    """The new consent URL of an existing connection."""
    r = await client.post(f"/api/v1/connections/{cid}/reauthorize", headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["authorization_url"])


async def connection(client: httpx.AsyncClient, headers: Headers, cid: str) -> dict[str, Any]:
    return dict((await client.get(f"/api/v1/connections/{cid}", headers=headers)).json())


async def items(
    client: httpx.AsyncClient, headers: Headers, path: str, **params: Any
) -> list[dict[str, Any]]:
    """One page of a list endpoint's items."""
    return list((await client.get(path, headers=headers, params=params)).json()["items"])


async def test_schwab_full_flow_activates_and_syncs(
    flows: Flows, headers: Headers, schwab: tuple[FakeSchwab, str]
) -> None:
    client, container = flows
    created = await start(client, headers, {"provider": "schwab", "name": "Schwab"})
    assert "code_challenge_method=S256" in created["authorization_url"]
    r = await authorize(client, created["authorization_url"])
    assert r.status_code == 200
    assert "Connected" in r.text
    await container.jobs.drain()
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "active", conn
    assert conn["expires_at"] is not None  # the 7-day refresh-token expiry
    accounts = await items(client, headers, "/api/v1/accounts")
    assert len(accounts) == 2
    holdings = await items(client, headers, "/api/v1/holdings")
    assert {h["symbol"] for h in holdings} == {"AAPL", "SPY", "TSLA"}
    txns = await items(client, headers, "/api/v1/transactions", limit=100)
    assert {t["provider_transaction_id"] for t in txns} >= {"9001", "9003", "9005"}
    snaps = await items(client, headers, f"/api/v1/accounts/{accounts[0]['id']}/balance-snapshots")
    assert [s["source"] for s in snaps] == ["initial"]
    runs = await items(client, headers, f"/api/v1/connections/{created['id']}/sync-runs")
    assert runs[0]["status"] == "succeeded"


async def test_replayed_tampered_and_unknown_state(flows: Flows, headers: Headers) -> None:
    client, _ = flows
    created = await start(client, headers, {"provider": "schwab"})
    location = await consent(created["authorization_url"])
    tampered = location.replace("state=", "state=x")
    r = await callback(client, tampered)
    assert r.status_code == 400
    assert "invalid_state" in r.text
    assert (await callback(client, location)).status_code == 200
    replay = await callback(client, location)
    assert replay.status_code == 400
    assert "state_reused" in replay.text
    r = await client.get("/api/v1/connections/callback/schwab?code=abc")
    assert "missing_state" in r.text


async def test_expired_state_activates_nothing(flows: Flows, headers: Headers, vclock: VirtualClock) -> None:
    client, _ = flows
    created = await start(client, headers, {"provider": "schwab"})
    location = await consent(created["authorization_url"])
    vclock.advance(11 * 60)
    r = await callback(client, location)
    assert "state_expired" in r.text
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "pending"
    assert "10 minutes" in conn["last_error"]


async def test_state_of_another_connection_cannot_activate_it(flows: Flows, headers: Headers) -> None:
    client, _ = flows
    first = await start(client, headers, {"provider": "schwab", "name": "A"})
    second = await start(client, headers, {"provider": "schwab", "name": "B"})
    code = dict(parse_qsl(urlsplit(await consent(second["authorization_url"])).query))["code"]
    state_a = dict(parse_qsl(urlsplit(first["authorization_url"]).query))["state"]
    r = await client.get("/api/v1/connections/callback/schwab", params={"code": code, "state": state_a})
    assert r.status_code == 400
    assert "authorization_failed" in r.text  # B's code with A's PKCE verifier is refused by Schwab
    assert (await connection(client, headers, first["id"]))["status"] == "pending"
    assert (await connection(client, headers, second["id"]))["status"] == "pending"


async def test_denied_consent_marks_pending_connection(flows: Flows, headers: Headers) -> None:
    client, _ = flows
    created = await start(client, headers, {"provider": "schwab"})
    r = await authorize(client, created["authorization_url"], "deny")
    assert "access_denied" in r.text
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "pending"
    assert "not granted" in conn["last_error"]


class TestClientRedirect:
    @pytest.fixture
    def redirect_overrides(self) -> dict[str, Any]:
        return {"client_redirect_url": CLIENT_URL}

    async def test_redirects_only_to_the_configured_client(self, flows: Flows, headers: Headers) -> None:
        client, _ = flows
        created = await start(client, headers, {"provider": "schwab"})
        location = await consent(created["authorization_url"])
        r = await callback(client, location + "&redirect_uri=https://evil.example&next=https://evil.example")
        assert r.status_code == 302
        target = r.headers["location"]
        assert target.startswith(CLIENT_URL + "?")
        assert "evil" not in target
        assert dict(parse_qsl(urlsplit(target).query)) == {
            "connection_id": created["id"],
            "status": "connected",
        }
        r = await client.get("/api/v1/connections/callback/schwab", params={"state": "forged", "code": "x"})
        assert r.headers["location"] == f"{CLIENT_URL}?status=error&error=invalid_state"


async def test_reauthorize_keeps_accounts_and_history(flows: Flows, headers: Headers) -> None:
    client, container = flows
    created = await connect(client, container, headers, {"provider": "schwab"})
    before = await items(client, headers, "/api/v1/accounts")
    url = await reauthorize(client, headers, created["id"])
    assert url != created["authorization_url"]
    assert (await authorize(client, url)).status_code == 200
    await container.jobs.drain()
    after = await items(client, headers, "/api/v1/accounts")
    assert [a["id"] for a in after] == [a["id"] for a in before]
    runs = await items(client, headers, f"/api/v1/connections/{created['id']}/sync-runs")
    assert [r["trigger"] for r in runs] == ["manual", "initial"]
    assert runs[0]["counts"]["transactions_inserted"] == 0


async def test_lapsed_refresh_token_turns_needs_reauth(
    flows: Flows, headers: Headers, vclock: VirtualClock
) -> None:
    client, container = flows
    created = await connect(client, container, headers, {"provider": "schwab"})
    vclock.advance(7 * 86_400 + 60)
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 401  # 15-minute token
    login = await client.post(
        "/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "active"  # reading writes nothing: the periodic use case expires
    assert await container.scheduler.expire_lapsed() == 1
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "needs_reauth"
    assert "reauthorize" in conn["last_error"]


async def test_unconfigured_provider_is_reported_and_refused(flows: Flows, headers: Headers) -> None:
    client, container = flows
    container.settings.providers["schwab"]["app_key"] = None
    providers = {p["slug"]: p for p in (await client.get("/api/v1/providers", headers=headers)).json()}
    assert providers["schwab"]["configured"] is False
    assert "FINSYNC_SCHWAB_APP_KEY" in providers["schwab"]["unavailable_reason"]
    assert providers["gocardless"]["configured"] is True
    r = await client.post("/api/v1/connections", headers=headers, json={"provider": "schwab"})
    assert r.status_code == 422
    assert r.json()["type"].endswith("/provider-not-available")


async def _link_bank(client: httpx.AsyncClient, container: Container, headers: Headers) -> dict[str, Any]:
    banks = (await client.get("/api/v1/providers/gocardless/institutions?country=GB", headers=headers)).json()
    assert SANDBOX in {b["id"] for b in banks}
    created = await start(client, headers, BANK)
    location = await consent(created["authorization_url"])
    assert "ref=" in location
    r = await callback(client, location)
    assert r.status_code == 200, r.text
    await container.jobs.drain()
    return created


async def test_gocardless_refused_at_the_bank_marks_pending_connection(
    flows: Flows, headers: Headers
) -> None:
    client, _ = flows
    created = await start(client, headers, BANK)
    r = await authorize(client, created["authorization_url"], "deny")
    assert r.status_code == 400
    assert "access_denied" in r.text
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "pending"
    assert conn["last_error"] == "Access was not granted (User cancelled the session)."


async def test_gocardless_link_sync_and_pending_to_booked(
    flows: Flows, headers: Headers, gocardless: tuple[FakeGoCardless, str], vclock: VirtualClock
) -> None:
    client, container = flows
    fake, _ = gocardless
    created = await _link_bank(client, container, headers)
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "active", conn
    assert conn["expires_at"] is not None
    accounts = await items(client, headers, "/api/v1/accounts")
    gbp = next(a for a in accounts if a["currency"] == "GBP")
    assert gbp["balance"] == "1000.00"
    assert gbp["available_balance"] == "950.10"
    pending = await items(client, headers, "/api/v1/transactions", status="pending")
    assert len(pending) == 2
    total_before = len(await items(client, headers, "/api/v1/transactions", limit=500))

    fake.book_pending(fake.bank_accounts[0].id, 0)
    vclock.advance(600)
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    txns = await items(client, headers, "/api/v1/transactions", limit=500)
    assert len(txns) == total_before  # the pending row became the booked one: never both
    assert sum(1 for t in txns if t["status"] == "pending") == 1


async def test_gocardless_manual_sync_over_budget_answers_429_without_calling(
    flows: Flows, headers: Headers, gocardless: tuple[FakeGoCardless, str]
) -> None:
    client, container = flows
    fake, _ = gocardless
    created = await _link_bank(client, container, headers)
    for _ in range(3):  # the initial sync spent one call of each: three more are allowed today
        r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
        assert r.status_code == 202, r.text
        await container.jobs.drain()
    calls = fake.calls.total()
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    assert r.status_code == 429
    assert r.json()["type"].endswith("/provider-rate-limited")
    assert r.json()["retry_at"]
    assert int(r.headers["retry-after"]) > 0
    assert fake.calls.total() == calls  # no call burnt


async def test_gocardless_reconsent_with_new_account_ids_keeps_the_same_accounts(
    flows: Flows, headers: Headers, gocardless: tuple[FakeGoCardless, str]
) -> None:
    client, container = flows
    fake, _ = gocardless
    created = await _link_bank(client, container, headers)
    before = await items(client, headers, "/api/v1/accounts")
    for account in fake.bank_accounts:  # some banks issue new account ids on every consent
        account.id = f"{account.id}-renewed"
    url = await reauthorize(client, headers, created["id"])
    assert (await authorize(client, url)).status_code == 200
    await container.jobs.drain()
    after = await items(client, headers, "/api/v1/accounts")
    gbp = next(a for a in after if a["currency"] == "GBP")
    assert gbp["provider_account_id"].startswith("iban:")
    assert sorted(a["id"] for a in after) == sorted(a["id"] for a in before)


async def test_connection_deleted_while_reauthorization_starts_stays_deleted(
    flows: Flows, headers: Headers, gocardless: tuple[FakeGoCardless, str]
) -> None:
    client, container = flows
    fake, _ = gocardless
    created = await _link_bank(client, container, headers)
    test_loop = asyncio.get_running_loop()

    async def delete_meanwhile() -> None:  # in the fake's server thread, while finsync awaits it
        deleting = client.delete(f"/api/v1/connections/{created['id']}", headers=headers)
        r = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(deleting, test_loop))
        assert r.status_code == 204, r.text

    fake.on_requisition = delete_meanwhile
    r = await client.post(f"/api/v1/connections/{created['id']}/reauthorize", headers=headers)
    assert r.status_code == 404, r.text
    assert (await client.get(f"/api/v1/connections/{created['id']}", headers=headers)).status_code == 404


async def _later(client: httpx.AsyncClient, vclock: VirtualClock, seconds: float) -> Headers:
    """``seconds`` on (Schwab's and finsync's own access tokens lapse), logged in again."""
    vclock.advance(seconds)
    login = await client.post(
        "/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _sync_stays_active(
    client: httpx.AsyncClient, container: Container, headers: Headers, connection_id: str
) -> None:
    """A sync now presents the stored refresh token: a spent one would leave needs_reauth."""
    r = await client.post(f"/api/v1/connections/{connection_id}/sync", headers=headers)
    assert r.status_code in (200, 202), r.text
    await container.jobs.drain()
    conn = await connection(client, headers, connection_id)
    assert conn["status"] == "active", conn


async def test_live_positions_keep_a_refresh_token_schwab_rotated(
    flows: Flows, headers: Headers, vclock: VirtualClock, schwab: tuple[FakeSchwab, str]
) -> None:
    """Reading positions live refreshes the 30-minute access token; when Schwab rotates the
    refresh token on that refresh, the old one is spent: the new one must be stored, or the
    next sync presents a spent token and the connection falls to needs_reauth."""
    client, container = flows
    fake = schwab[0]
    created = await connect(client, container, headers, {"provider": "schwab"})
    margin = next(a for a in await items(client, headers, "/api/v1/accounts") if a["name"].endswith("5678"))

    headers = await _later(client, vclock, 31 * 60)  # Schwab's access token has expired
    fake.rotate_every = 1
    live = await client.get(
        f"/api/v1/accounts/{margin['id']}/positions", headers=headers, params={"live": "true"}
    )
    assert live.status_code == 200, live.text
    assert {p["symbol"] for p in live.json()} == {"AAPL", "SPY", "TSLA"}
    assert fake.refreshes == 1

    headers = await _later(client, vclock, 31 * 60)
    await _sync_stays_active(client, container, headers, created["id"])
    assert fake.refreshes == 2


async def test_live_positions_keep_a_rotated_refresh_token_across_a_key_rotation(
    flows: Flows, headers: Headers, vclock: VirtualClock, schwab: tuple[FakeSchwab, str]
) -> None:
    """`finsync keys rotate` re-encrypts the stored tokens while a live read is at Schwab (a
    live read is no sync run, so it is not skipped). The new ciphertext holds the same tokens:
    the refresh token Schwab rotated during the read must still be stored, or the next sync
    presents a spent token and the connection falls to needs_reauth."""
    client, container = flows
    fake = schwab[0]
    created = await connect(client, container, headers, {"provider": "schwab"})
    margin = next(a for a in await items(client, headers, "/api/v1/accounts") if a["name"].endswith("5678"))

    headers = await _later(client, vclock, 31 * 60)
    fake.rotate_every = 1
    reached, resume = threading.Event(), threading.Event()

    def pause() -> None:
        reached.set()
        resume.wait(10)

    fake.on_account = pause
    live = asyncio.create_task(
        client.get(f"/api/v1/accounts/{margin['id']}/positions", headers=headers, params={"live": "true"})
    )
    try:
        assert await asyncio.to_thread(reached.wait, 10)
        report = await container.keys.rotate()  # the operator's command, meanwhile
        assert report.re_encrypted >= 1
        assert not report.busy
        assert not report.unreadable
    finally:
        fake.on_account = None
        resume.set()
    answer = await live
    assert answer.status_code == 200, answer.text
    assert fake.refreshes == 1

    headers = await _later(client, vclock, 31 * 60)
    await _sync_stays_active(client, container, headers, created["id"])
    assert fake.refreshes == 2


async def test_a_sync_with_the_old_consent_does_not_undo_a_reauthorization_that_landed_meanwhile(
    flows: Flows, headers: Headers, schwab: tuple[FakeSchwab, str]
) -> None:
    """A sync still running on the expired consent fails after the new consent was stored: the
    connection stays active on its new credentials (and syncs with them), not needs_reauth."""
    client, container = flows
    fake = schwab[0]
    created = await connect(client, container, headers, {"provider": "schwab"})
    runner = container.runner
    fetching, release = asyncio.Event(), asyncio.Event()
    original = runner._fetch

    async def held(provider: str, session: Any) -> Any:
        fetching.set()
        await release.wait()
        return await original(provider, session)

    runner._fetch = held  # type: ignore[method-assign]
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    assert r.status_code == 202, r.text
    draining = asyncio.create_task(container.jobs.drain())  # PostgreSQL's queue runs jobs on drain
    try:
        await asyncio.wait_for(fetching.wait(), 10)
        runner._fetch = original  # type: ignore[method-assign]
        fake.access_tokens.clear()  # the old consent is gone at Schwab
        fake.refresh_tokens.clear()
        url = await reauthorize(client, headers, created["id"])
        assert (await authorize(client, url)).status_code == 200
    finally:
        runner._fetch = original  # type: ignore[method-assign]
        release.set()
        await draining
    await container.jobs.drain()
    runs = await items(client, headers, f"/api/v1/connections/{created['id']}/sync-runs")
    assert runs[0]["status"] == "failed"  # the old consent's sync
    conn = await connection(client, headers, created["id"])
    assert conn["status"] == "active", conn
    r = await client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    runs = await items(client, headers, f"/api/v1/connections/{created['id']}/sync-runs")
    assert runs[0]["status"] == "succeeded", runs[0]
