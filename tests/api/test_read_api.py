"""The read API through HTTP: data written by a sync, paginated and filtered."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest

from finsync.bootstrap import Container
from finsync.domain.entities import User
from tests.api.helpers import register_and_login
from tests.factories import account, holding, seed_connection, txn
from tests.fakes.memory import MemoryProviders

pytestmark = pytest.mark.e2e


async def _user(container: Container) -> User:
    async with container.uow() as uow:
        user = await uow.users.get_by_email("ada@example.com")
    assert user is not None
    return user


async def _seed(client: httpx.AsyncClient, container: Container, bank: MemoryProviders) -> dict[str, str]:
    headers = await register_and_login(client)
    user = await _user(container)
    conn = await seed_connection(container, user)
    bank.accounts = [
        account("cur", balance=Decimal("100.10")),
        account("usd", currency="USD", balance=Decimal("5")),
    ]
    bank.transactions = {
        "cur": [txn(f"t{i}", day=date(2026, 1, 1) + timedelta(days=i)) for i in range(25)],
        "usd": [txn("u1", currency="USD", description="Dividend ACME", symbol="ACME")],
    }
    bank.holdings = {"usd": [holding("ACME", currency="USD")]}
    r = await client.post(f"/api/v1/connections/{conn.id}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    run = await client.get(f"/api/v1/sync-runs/{r.json()['id']}", headers=headers)
    assert run.json()["status"] == "succeeded", run.text
    return headers


async def test_new_user_sees_empty_lists(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    for path in ("/connections", "/accounts", "/transactions", "/holdings"):
        r = await client.get(f"/api/v1{path}", headers=headers)
        assert r.status_code == 200, path
        assert r.json() == {"items": [], "next_cursor": None}
    r = await client.get("/api/v1/net-worth", headers=headers)
    assert r.json()["totals"] == []


async def test_lists_paginate_with_opaque_cursors(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers = await _seed(client, container, memory_providers)
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 10}
    while True:
        r = await client.get("/api/v1/transactions", headers=headers, params=params)
        body = r.json()
        seen += [t["provider_transaction_id"] for t in body["items"]]
        if body["next_cursor"] is None:
            break
        params = {"limit": 10, "cursor": body["next_cursor"]}
    assert len(seen) == 26
    assert len(set(seen)) == 26
    bad = await client.get("/api/v1/transactions", headers=headers, params={"cursor": "!!not-a-cursor"})
    assert bad.status_code == 422


async def test_money_is_a_string_and_filters_work(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers = await _seed(client, container, memory_providers)
    r = await client.get("/api/v1/transactions", headers=headers, params={"q": "dividend"})
    (item,) = r.json()["items"]
    assert item["amount"] == "-12.34"
    assert item["currency"] == "USD"
    r = await client.get(
        "/api/v1/transactions", headers=headers, params={"date_from": "2026-01-05", "date_to": "2026-01-06"}
    )
    assert [t["transaction_date"] for t in r.json()["items"]] == ["2026-01-06", "2026-01-05"]
    r = await client.get(
        "/api/v1/transactions", headers=headers, params={"date_from": "2026-02-01", "date_to": "2026-01-01"}
    )
    assert r.status_code == 422


async def test_accounts_holdings_snapshots_and_net_worth(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers = await _seed(client, container, memory_providers)
    accounts = (await client.get("/api/v1/accounts", headers=headers)).json()["items"]
    assert {a["provider_account_id"] for a in accounts} == {"cur", "usd"}
    usd = next(a for a in accounts if a["currency"] == "USD")
    r = await client.get(f"/api/v1/accounts/{usd['id']}/holdings", headers=headers)
    assert [h["symbol"] for h in r.json()["items"]] == ["ACME"]
    r = await client.get(f"/api/v1/accounts/{usd['id']}/balance-snapshots", headers=headers)
    (snap,) = r.json()["items"]
    assert snap["source"] == "manual"
    assert snap["balance"] == "5"
    r = await client.get(f"/api/v1/accounts/{usd['id']}/transactions", headers=headers)
    assert [t["provider_transaction_id"] for t in r.json()["items"]] == ["u1"]
    worth = (await client.get("/api/v1/net-worth", headers=headers)).json()
    assert worth["totals"] == [
        {"currency": "GBP", "total": "100.10", "accounts": 1},
        {"currency": "USD", "total": "5", "accounts": 1},
    ]
    assert worth["accounts_without_balance"] == []


async def test_net_worth_leaves_out_unknown_balances_and_names_them(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers = await _seed(client, container, memory_providers)
    memory_providers.accounts.append(
        account("nobal", name="Old savings", balance=None, available_balance=None)
    )
    memory_providers.accounts.append(account("zero", currency="USD", balance=Decimal("0.00")))
    (conn,) = (await client.get("/api/v1/connections", headers=headers)).json()["items"]
    r = await client.post(f"/api/v1/connections/{conn['id']}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    accounts = {
        a["provider_account_id"]: a
        for a in (await client.get("/api/v1/accounts", headers=headers)).json()["items"]
    }
    assert accounts["nobal"]["balance"] is None
    worth = (await client.get("/api/v1/net-worth", headers=headers)).json()
    assert worth["totals"] == [
        {"currency": "GBP", "total": "100.10", "accounts": 1},  # not 2 accounts: the unknown is no 0
        {"currency": "USD", "total": "5.00", "accounts": 2},  # a known 0 does count
    ]
    nobal = accounts["nobal"]
    assert worth["accounts_without_balance"] == [
        {
            "id": nobal["id"],
            "name": "Old savings",
            "type": "checking",
            "currency": "GBP",
            "connection_id": conn["id"],
        }
    ]
    assert worth["as_of"].endswith("Z")


async def test_delete_connection_through_api(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers = await _seed(client, container, memory_providers)
    (conn,) = (await client.get("/api/v1/connections", headers=headers)).json()["items"]
    runs = (await client.get(f"/api/v1/connections/{conn['id']}/sync-runs", headers=headers)).json()["items"]
    assert len(runs) == 1
    assert (await client.delete(f"/api/v1/connections/{conn['id']}", headers=headers)).status_code == 204
    assert (await client.get("/api/v1/accounts", headers=headers)).json()["items"] == []
    assert (await client.get("/api/v1/transactions", headers=headers)).json()["items"] == []
    assert (await client.get(f"/api/v1/connections/{conn['id']}", headers=headers)).status_code == 404


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json()["status"] == "ok"
    assert (await client.get("/health/ready")).json()["checks"] == {"database": "ok"}
    spec = (await client.get("/api/v1/openapi.json")).json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), f"{method} {path} lacks a summary"
            assert op.get("description"), f"{method} {path} lacks a description"
    assert "examples" in spec["components"]["schemas"]["UserCreate"]


async def test_openapi_documents_every_error_as_problem_json(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            errors = {code: r for code, r in op["responses"].items() if int(code) >= 400}
            for code, answer in errors.items():
                if "text/html" not in answer.get("content", {}) and code != "503":
                    assert answer["content"] == problem, (where, code)
            if op.get("security"):
                assert "401" in errors, where
            if op.get("requestBody"):
                assert {"400", "413"} <= set(errors), where
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in errors, where
    # Every list documents its page bounds (schemathesis finds an unbounded limit only by luck).
    pages = {
        f"{method.upper()} {path}": {p["name"]: p["schema"] for p in op.get("parameters", [])}
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if any(p["name"] in ("cursor", "limit") for p in op.get("parameters", []))
    }
    assert len(pages) > 10
    for where, params in pages.items():
        assert params["cursor"]["anyOf"][0] == {
            "type": "string",
            "minLength": 1,
            "maxLength": 512,
            "pattern": "^[A-Za-z0-9_-]+$",
        }, where
        assert (params["limit"].get("minimum"), params["limit"].get("maximum")) == (1, 500), where


async def test_unsupported_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    r = await client.request("TRACE", "/api/v1/connections")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, POST"
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.put("/api/v1/connections/01932c4e-8f00-7a3c-9d1e-2b3c4d5e6f70")
    assert r.headers["allow"] == "DELETE, GET, HEAD, PATCH"


async def test_framework_errors_are_problems_too(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    r = await client.post(
        "/api/v1/imports",
        headers=headers | {"Content-Type": "multipart/form-data; boundary=b0b"},
        content=b"--b0b\r\n\xcc\xdd\xf4\x80--b0b--\r\n",
    )
    assert r.status_code == 400, r.text
    assert r.json()["type"].endswith("/malformed-request")
    r = await client.get("/api/v1/transactions", headers=headers, params={"type": "gift"})
    assert r.status_code == 422
    assert r.json()["type"].endswith("/validation-error")
    assert r.json()["errors"][0]["loc"] == ["query", "type"]


async def test_request_id_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
