"""A connection's schedule through the API: shown, edited within the provider's bounds, paused."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import httpx
import pytest

from finsync.bootstrap import Container
from finsync.domain.entities import utcnow
from finsync.domain.errors import RateLimited
from tests.api.helpers import register_and_login
from tests.fakes.memory import MemoryProviders

pytestmark = pytest.mark.e2e


async def _connect(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    body = {"provider": "memory", "credentials": {"token": "fake-token-for-tests"}}
    r = await client.post("/api/v1/connections", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_schedule_is_shown_edited_and_paused(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers = await register_and_login(client)
    created = await _connect(client, headers)
    await container.jobs.drain()
    conn = (await client.get(f"/api/v1/connections/{created['id']}", headers=headers)).json()
    assert conn["sync_interval_minutes"] == 60  # the provider's default
    assert conn["sync_enabled"] is True
    synced = datetime.fromisoformat(conn["last_synced_at"])
    assert synced + timedelta(minutes=60) <= datetime.fromisoformat(conn["next_sync_at"])

    path = f"/api/v1/connections/{created['id']}"
    r = await client.patch(path, headers=headers, json={"sync_interval_minutes": 240})
    assert r.status_code == 200, r.text
    assert r.json()["sync_interval_minutes"] == 240
    next_at = datetime.fromisoformat(r.json()["next_sync_at"])
    assert synced + timedelta(minutes=240) <= next_at <= synced + timedelta(minutes=245)

    for bad in (5, 7 * 24 * 60 + 1):
        r = await client.patch(path, headers=headers, json={"sync_interval_minutes": bad})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "between 15 and 10080" in r.json()["detail"]
    r = await client.patch(path, headers=headers, json={"sync_enabled": False, "name": "Paused"})
    assert r.status_code == 200, r.text
    assert (r.json()["sync_enabled"], r.json()["sync_interval_minutes"], r.json()["name"]) == (
        False,
        240,
        "Paused",
    )
    r = await client.patch(path, headers=headers, json={"sync_interval_minutes": None})
    assert r.json()["sync_interval_minutes"] == 60  # null: back to the provider's default
    assert r.json()["sync_enabled"] is False


async def test_a_new_interval_does_not_bring_a_rate_limited_retry_forward(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    """The last sync met a rate limit resetting in 3 hours: changing the interval counts from
    the last successful sync, but must not make the connection due before that reset."""
    headers = await register_and_login(client)
    created = await _connect(client, headers)
    await container.jobs.drain()
    path = f"/api/v1/connections/{created['id']}"
    reset = utcnow() + timedelta(hours=3)
    limited = RateLimited("allowance used", retry_after=10800, retry_at=reset)
    memory_providers.fail_on["fetch_accounts"] = limited
    assert (await client.post(f"{path}/sync", headers=headers)).status_code in (200, 201, 202)
    await container.jobs.drain()
    r = await client.patch(path, headers=headers, json={"sync_interval_minutes": 15})
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["next_sync_at"]) >= reset


async def test_a_paused_connection_is_not_scheduled(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers = await register_and_login(client)
    created = await _connect(client, headers)
    await container.jobs.drain()
    path = f"/api/v1/connections/{created['id']}"
    assert (await client.patch(path, headers=headers, json={"sync_enabled": False})).status_code == 200
    async with container.uow() as uow:
        conn = await uow.connections.get(UUID(str(created["id"])))
        assert conn is not None
        conn.next_sync_at = utcnow() - timedelta(minutes=1)
        await uow.connections.save(conn)
        await uow.commit()
    assert await container.scheduler.enqueue_due() == 0
    assert (await client.patch(path, headers=headers, json={"sync_enabled": True})).status_code == 200
    assert await container.scheduler.enqueue_due() == 1
    await container.jobs.drain()
    runs = (await client.get(f"{path}/sync-runs", headers=headers)).json()["items"]
    assert [(r["trigger"], r["status"]) for r in runs] == [
        ("scheduled", "succeeded"),
        ("initial", "succeeded"),
    ]


async def test_statement_files_have_no_schedule(client: httpx.AsyncClient, container: Container) -> None:
    headers = await register_and_login(client)
    ofx = b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>GBP"
    ofx += b"<BANKACCTFROM><BANKID>1<ACCTID>42<ACCTTYPE>CHECKING</BANKACCTFROM>"
    ofx += b"<LEDGERBAL><BALAMT>10.00<DTASOF>20260101</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>"
    r = await client.post("/api/v1/imports", headers=headers, files={"file": ("s.ofx", ofx)})
    assert r.status_code in (200, 201), r.text
    (conn,) = (await client.get("/api/v1/connections", headers=headers)).json()["items"]
    assert (conn["sync_interval_minutes"], conn["next_sync_at"]) == (None, None)
    r = await client.patch(
        f"/api/v1/connections/{conn['id']}", headers=headers, json={"sync_interval_minutes": 60}
    )
    assert r.status_code == 422
    assert "uploading files" in r.json()["detail"]


async def test_openapi_shows_the_schedule_with_examples(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()["components"]["schemas"]
    update = schema["ConnectionUpdate"]
    assert {"sync_interval_minutes", "sync_enabled"} <= set(update["properties"])
    assert {"sync_interval_minutes": 240} in update["examples"]
    public = schema["ConnectionPublic"]
    assert {"sync_interval_minutes", "sync_enabled", "next_sync_at", "last_synced_at"} <= set(
        public["properties"]
    )
    assert public["examples"][0]["next_sync_at"]
