"""A connection that needs reauthorisation is not synced: 409 problem+json naming the way to renew it,
and not one request reaches the provider (the fake servers count every request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.helpers import PASSWORD, register_and_login
from tests.api.world import SCHWAB, T212, World, world

pytestmark = pytest.mark.e2e


@pytest.fixture
async def w(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(database_url, tmp_path) as it:
        yield it


async def _sync(w: World, headers: dict[str, str], cid: str) -> dict[str, object]:
    r = await w.client.post(f"/api/v1/connections/{cid}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await w.container.jobs.drain()
    return dict((await w.client.get(f"/api/v1/sync-runs/{r.json()['id']}", headers=headers)).json())


async def _runs(w: World, headers: dict[str, str], cid: str) -> list[dict[str, object]]:
    return await w.all(headers, f"/api/v1/connections/{cid}/sync-runs")


async def test_api_key_connection_needing_new_credentials_is_409_without_calling(w: World) -> None:
    headers = await register_and_login(w.client)
    created = await w.connect(headers, T212)
    cid = created["id"]
    w.clock.advance(3600)  # past the broker's rate-limit windows (and the access token's life)
    headers = await _login_again(w)
    w.t212.inject("positions", "401")
    assert (await _sync(w, headers, cid))["error_type"] == "provider-auth"
    runs = await _runs(w, headers, cid)

    w.t212.reset_counters()
    r = await w.client.post(f"/api/v1/connections/{cid}/sync", headers=headers)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/needs-reauth")
    assert f"PATCH /api/v1/connections/{cid}" in r.json()["detail"]
    assert sum(w.t212.requests.values()) == 0
    assert await _runs(w, headers, cid) == runs  # no run opened, none queued
    await w.container.jobs.drain()
    assert sum(w.t212.requests.values()) == 0

    # New (here: the same, valid) credentials renew it; the next sync runs.
    r = await w.client.patch(
        f"/api/v1/connections/{cid}", headers=headers, json={"credentials": T212["credentials"]}
    )
    assert r.json()["status"] == "active", r.text
    assert (await _sync(w, headers, cid))["status"] == "succeeded"


async def test_redirect_connection_needing_consent_is_409_without_calling(w: World) -> None:
    headers = await register_and_login(w.client)
    created = await w.connect(headers, SCHWAB)
    cid = created["id"]
    w.schwab.access_tokens.clear()  # revoked at Schwab: the refresh answers invalid_grant
    w.schwab.refresh_tokens.clear()
    assert (await _sync(w, headers, cid))["error_type"] == "provider-auth"
    conn = (await w.client.get(f"/api/v1/connections/{cid}", headers=headers)).json()
    assert conn["status"] == "needs_reauth"

    calls = w.schwab.calls.total()
    r = await w.client.post(f"/api/v1/connections/{cid}/sync", headers=headers)
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/needs-reauth")
    assert f"POST /api/v1/connections/{cid}/reauthorize" in r.json()["detail"]
    await w.container.jobs.drain()
    assert w.schwab.calls.total() == calls


async def test_lapsed_consent_is_409_before_anyone_looked(w: World) -> None:
    """expires_at has passed but nothing has marked the connection yet: still no provider call."""
    headers = await register_and_login(w.client)
    created = await w.connect(headers, SCHWAB)
    w.clock.advance(7 * 86_400 + 60)  # Schwab's refresh token lives 7 days
    headers = await _login_again(w)
    calls = w.schwab.calls.total()
    r = await w.client.post(f"/api/v1/connections/{created['id']}/sync", headers=headers)
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/needs-reauth")
    await w.container.jobs.drain()
    assert w.schwab.calls.total() == calls


async def _login_again(w: World) -> dict[str, str]:
    """The 15-minute access token lapsed with the virtual clock."""
    r = await w.client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
