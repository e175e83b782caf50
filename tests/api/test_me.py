"""Leaving: GET /users/me/export holds every row a user owns and nothing of anyone else;
DELETE /users/me removes all of it, and only with the right password."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, inspect, select, text

from finsync.bootstrap import Container
from finsync.domain.enums import SyncStatus, SyncTrigger
from finsync.infrastructure.db.repositories.userdata import EXPORTED
from finsync.infrastructure.db.tables import metadata
from tests.api.helpers import PASSWORD, register_and_login
from tests.conftest import SHARED
from tests.factories import account, holding, seed_connection, txn
from tests.fakes.memory import MemoryProviders

pytestmark = pytest.mark.e2e
OFX = SHARED / "fixtures" / "ofx"
SECTIONS = {  # export section -> table
    "connections": "connections",
    "accounts": "accounts",
    "holdings": "holdings",
    "transactions": "transactions",
    "balance_snapshots": "balance_snapshots",
    "sync_runs": "sync_runs",
}


async def _user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> UUID:
    return UUID((await client.get("/api/v1/users/me", headers=headers)).json()["id"])


async def _with_data(
    client: httpx.AsyncClient, container: Container, bank: MemoryProviders, email: str
) -> tuple[dict[str, str], UUID]:
    """A user with an investment statement imported and a provider connection synced."""
    headers = await register_and_login(client, email)
    data = (OFX / "fidelity.ofx").read_bytes()
    r = await client.post("/api/v1/imports", headers=headers, files={"file": ("f.ofx", data)})
    assert r.status_code == 201, r.text
    user_id = await _user_id(client, headers)
    async with container.uow() as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    connection = await seed_connection(container, user)
    run = await container.sync.request(connection.id, user.id, SyncTrigger.INITIAL)
    await container.jobs.drain()
    async with container.uow() as uow:
        done = await uow.sync_runs.get(run.id)
    assert done is not None
    assert done.status is SyncStatus.SUCCEEDED
    return headers, user_id


@pytest.fixture
def bank(memory_providers: MemoryProviders) -> MemoryProviders:
    memory_providers.accounts = [account("cur"), account("isa")]
    memory_providers.transactions = {"cur": [txn("t1"), txn("t2", "100.00")], "isa": [txn("i1")]}
    memory_providers.holdings = {"isa": [holding("VWRL"), holding("SGLN")]}
    return memory_providers


async def _ids(container: Container, table: str, user_id: UUID) -> set[str]:
    t = metadata.tables[table]
    async with container.engine.connect() as conn:
        return {str(i) for i in (await conn.execute(select(t.c.id).where(t.c.user_id == user_id))).scalars()}


async def _rows_of(container: Container, user_id: UUID) -> dict[str, int]:
    """Rows per table that belong to the user (every table keyed by user_id, and the user)."""
    counts = {}
    async with container.engine.connect() as conn:
        for table in metadata.sorted_tables:
            key = table.c.id if table.name == "users" else table.c.get("user_id")
            if key is not None:
                stmt = select(func.count()).select_from(table).where(key == user_id)
                counts[table.name] = (await conn.execute(stmt)).scalar_one()
    return counts


async def test_export_holds_every_row_of_the_user_and_nothing_of_another(
    client: httpx.AsyncClient, container: Container, bank: MemoryProviders
) -> None:
    headers, ada = await _with_data(client, container, bank, "ada@example.com")
    _, bob = await _with_data(client, container, bank, "bob@example.com")
    r = await client.get("/api/v1/users/me/export", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"].startswith('attachment; filename="finsync-export-')
    doc = json.loads(r.content)
    assert set(doc) == {"format", "version", "exported_at", *EXPORTED}  # every section, none other
    assert doc["format"] == "finsync-export"
    assert doc["version"] == 1
    assert doc["user"] == {
        "id": str(ada),
        "email": "ada@example.com",
        "is_active": True,
        "created_at": doc["user"]["created_at"],
        "base_currency": None,
    }
    for section, table in SECTIONS.items():
        exported = {row["id"] for row in doc[section]}
        assert exported == await _ids(container, table, ada), section
        assert not exported & await _ids(container, table, bob), section
        assert all(row["user_id"] == str(ada) for row in doc[section])
    assert len(doc["transactions"]) > 3
    assert len(doc["holdings"]) > 2  # the import and the sync
    # Never a secret: no password hash, no credentials, no provider cursor state.
    assert "password_hash" not in doc["user"]
    assert all("credentials" not in c and "state" not in c for c in doc["connections"])
    assert b"fake-token-for-tests" not in r.content
    assert b"argon2" not in r.content
    # Exact money and UTC timestamps; the provider's raw payload travels with each transaction.
    t1 = next(t for t in doc["transactions"] if t["provider_transaction_id"] == "t1")
    assert t1["amount"] == "-12.34"
    assert t1["raw"] == {"id": "t1", "amount": "-12.34"}
    assert t1["created_at"].endswith("Z")
    assert doc["exported_at"].endswith("Z")
    assert all(s["taken_at"].endswith("Z") for s in doc["balance_snapshots"])


async def test_csv_export_is_a_zip_with_one_csv_per_section(
    client: httpx.AsyncClient, container: Container, bank: MemoryProviders
) -> None:
    headers, ada = await _with_data(client, container, bank, "ada@example.com")
    await _with_data(client, container, bank, "bob@example.com")
    r = await client.get("/api/v1/users/me/export", headers=headers, params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.testzip() is None
        tables: dict[str, list[dict[str, Any]]] = {
            name.removesuffix(".csv"): list(csv.DictReader(io.TextIOWrapper(archive.open(name), "utf-8")))
            for name in archive.namelist()
            if name.endswith(".csv")
        }
        header = json.loads(archive.read("export.json"))
    assert set(tables) == set(EXPORTED)
    assert header["format"] == "finsync-export"
    assert [row["email"] for row in tables["user"]] == ["ada@example.com"]
    for section, table in SECTIONS.items():
        assert {row["id"] for row in tables[section]} == await _ids(container, table, ada), section
    t1 = next(t for t in tables["transactions"] if t["provider_transaction_id"] == "t1")
    assert t1["amount"] == "-12.34"
    assert json.loads(t1["raw"]) == {"id": "t1", "amount": "-12.34"}
    assert t1["created_at"].endswith("Z")
    assert t1["settlement_date"] == ""


async def test_delete_me_needs_the_password_then_removes_everything_and_ends_sessions(
    client: httpx.AsyncClient, container: Container, bank: MemoryProviders
) -> None:
    headers, ada = await _with_data(client, container, bank, "ada@example.com")
    _, bob = await _with_data(client, container, bank, "bob@example.com")
    login = await client.post(
        "/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    refresh = login.json()["refresh_token"]
    before, bobs = await _rows_of(container, ada), await _rows_of(container, bob)
    assert all(before[t] > 0 for t in ("connections", "accounts", "transactions", "refresh_tokens"))

    wrong = await client.request("DELETE", "/api/v1/users/me", headers=headers, json={"password": "not it"})
    assert wrong.status_code == 403, wrong.text
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["type"].endswith("/wrong-password")
    assert await _rows_of(container, ada) == before
    missing = await client.request("DELETE", "/api/v1/users/me", headers=headers, json={})
    assert missing.status_code == 422
    assert await _rows_of(container, ada) == before

    r = await client.request("DELETE", "/api/v1/users/me", headers=headers, json={"password": PASSWORD})
    assert r.status_code == 204, r.text
    assert set((await _rows_of(container, ada)).values()) == {0}
    assert await _rows_of(container, bob) == bobs  # nobody else loses anything
    assert (await client.get("/api/v1/accounts", headers=headers)).status_code == 401
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})).status_code == 401
    relogin = {"username": "ada@example.com", "password": PASSWORD}
    assert (await client.post("/api/v1/auth/token", data=relogin)).status_code == 401


async def _rows_mentioning(container: Container, marker: str) -> list[str]:
    """Every table of the database itself (not only the metadata's: the job queue's too) whose
    rows mention ``marker``."""
    async with container.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        return [
            name
            for name in names
            if marker in repr((await conn.execute(text(f'SELECT * FROM "{name}"'))).all())
        ]


async def test_delete_me_leaves_nothing_of_the_user_in_any_table_of_the_database(
    client: httpx.AsyncClient, container: Container, bank: MemoryProviders
) -> None:
    """The address and user agent of a sync the user asked for travel with its job (the job
    queue's own tables on PostgreSQL, kept after the job ends): deletion erases them too."""
    await register_and_login(client, "ada@example.com")
    agent = {"User-Agent": "AdaPhone/1.0 (only-ada)"}
    login = {"username": "ada@example.com", "password": PASSWORD}
    token = (await client.post("/api/v1/auth/token", data=login, headers=agent)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"} | agent
    await _with_data(client, container, bank, "bob@example.com")
    ada = await _user_id(client, headers)
    async with container.uow() as uow:
        user = await uow.users.get(ada)
    assert user is not None
    tablet = headers | {"User-Agent": "AdaTablet/2.0 (only-ada-tablet)"}
    connections = [await seed_connection(container, user) for _ in range(2)]
    for connection, asking in zip(connections, (tablet, headers), strict=True):
        r = await client.post(f"/api/v1/connections/{connection.id}/sync", headers=asking)
        assert r.status_code == 202, r.text
        await container.jobs.drain()
    async with container.engine.connect() as conn:
        jobs = await conn.run_sync(lambda sync: inspect(sync).has_table("procrastinate_jobs"))
    assert await _rows_mentioning(container, "only-ada-tablet") == (["procrastinate_jobs"] if jobs else [])
    r = await client.delete(f"/api/v1/connections/{connections[0].id}", headers=tablet)  # on its own
    assert r.status_code == 204, r.text
    assert await _rows_mentioning(container, "only-ada-tablet") == []
    assert await _rows_mentioning(container, "only-ada")  # the session's user agent, at least

    r = await client.request("DELETE", "/api/v1/users/me", headers=headers, json={"password": PASSWORD})
    assert r.status_code == 204, r.text
    assert await _rows_mentioning(container, "only-ada") == []
    assert await _rows_mentioning(container, "ada@example.com") == []
    assert await _rows_mentioning(container, "bob@example.com") == ["users"]


async def test_a_read_token_is_refused_the_logins_affairs_under_a_root_path(container: Container) -> None:
    """Served under a prefix (``uvicorn --root-path``, a proxy mount), ``request.url.path``
    starts with the prefix: the token's denied paths are compared with the route's own path."""
    from tests.conftest import app_for

    with app_for(container) as app:
        transport = httpx.ASGITransport(app=app, root_path="/finsync")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/finsync") as client:
            headers = await register_and_login(client)
            made = await client.post(
                "/api/v1/api-tokens", headers=headers, json={"name": "reader", "scopes": ["read"]}
            )
            assert made.status_code == 201, made.text
            read = {"Authorization": f"Bearer {made.json()['token']}"}
            accounts = await client.get("/api/v1/accounts", headers=read)
            assert accounts.status_code == 200
            assert accounts.headers["cache-control"] == "no-store"  # the edge sees past the prefix too
            for own in (
                "/api/v1/users/me",
                "/api/v1/users/me/sessions",
                "/api/v1/users/me/export",
                "/api/v1/api-tokens",
            ):
                assert (await client.get(own, headers=read)).status_code == 403, own
