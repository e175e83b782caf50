"""Tenant isolation, generated from the route table: another user's id always answers 404."""

from __future__ import annotations

import re
from decimal import Decimal
from uuid import UUID

import httpx
import pytest

from finsync.api.app import create_app
from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.factories import account, holding, seed_connection, seed_order, txn
from tests.fakes.memory import MemoryProviders

pytestmark = pytest.mark.e2e
ID_PARAM = re.compile(r"\{(\w+_id)\}")
# Routes whose body has required fields: a valid one, so only ownership decides the answer.
VALID_BODIES = {
    "/api/v1/accounts/{account_id}/orders": {
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "quantity": "1",
    }
}
KEY = {"Idempotency-Key": "isolation-test"}


def routes_with_ids() -> list[tuple[str, str]]:
    """Every operation with an id in its path, read from the app's own OpenAPI route table."""
    spec = create_app(container=None).openapi()
    return [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if ID_PARAM.search(path)
        for method in sorted(operations)
    ]


def test_route_table_has_id_routes() -> None:
    # Guards the generator itself: if routes stop matching, the isolation test would pass vacuously.
    assert len(routes_with_ids()) >= 8


async def test_other_users_ids_answer_404_on_every_route(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    owner = await register_and_login(client, "owner@example.com")
    intruder = await register_and_login(client, "intruder@example.com")
    async with container.uow() as uow:
        user = await uow.users.get_by_email("owner@example.com")
    assert user is not None
    conn = await seed_connection(container, user)
    memory_providers.accounts = [account("a", balance=Decimal("1")), account("b")]
    # t and u are a transfer between the owner's two accounts: paired on sync.
    memory_providers.transactions = {"a": [txn("t")], "b": [txn("u", "12.34")]}
    memory_providers.holdings = {"a": [holding()]}
    run = (await client.post(f"/api/v1/connections/{conn.id}/sync", headers=owner)).json()
    await container.jobs.drain()
    accounts = {
        a["provider_account_id"]: a["id"]
        for a in (await client.get("/api/v1/accounts", headers=owner)).json()["items"]
    }
    txns = (await client.get("/api/v1/transactions", headers=owner)).json()["items"]
    category = (await client.get("/api/v1/categories", headers=owner)).json()[0]["id"]
    rule = {"name": "r", "conditions": {"description_contains": "x"}, "category_id": category}
    (transfer,) = (await client.get("/api/v1/transfers", headers=owner)).json()["items"]
    (session,) = (await client.get("/api/v1/users/me/sessions", headers=owner)).json()
    hook = {"url": "https://93.184.216.34/hook", "events": ["connection.expiring"]}
    webhook = await client.post("/api/v1/webhooks", headers=owner, json=hook)
    assert webhook.status_code == 201, webhook.text
    mapping = {"name": "m", "header": ["Date", "Amount"], "columns": {"date": "Date", "amount": "Amount"},
               "default_currency": "EUR", "account_id": accounts["a"]}  # fmt: skip
    scoped = {"name": "bot", "scopes": ["read"]}
    token = (await client.post("/api/v1/api-tokens", headers=owner, json=scoped)).json()
    order = await seed_order(container, user.id, conn.id, UUID(accounts["a"]))
    ids = {
        "order_id": str(order),
        "token_id": token["id"],
        "session_id": session["id"],
        "connection_id": str(conn.id),
        "account_id": accounts["a"],
        "run_id": run["id"],
        "category_id": category,
        "rule_id": (await client.post("/api/v1/rules", headers=owner, json=rule)).json()["id"],
        "transaction_id": txns[0]["id"],
        "transfer_id": transfer["id"],
        "webhook_id": webhook.json()["id"],
        "mapping_id": (await client.post("/api/v1/import-mappings", headers=owner, json=mapping)).json()[
            "id"
        ],
    }
    checked = 0
    for method, path in routes_with_ids():
        names = ID_PARAM.findall(path)
        if not all(n in ids for n in names):
            pytest.fail(f"no fixture id for {path}: extend the isolation test")
        url = path.format(**{n: ids[n] for n in names})
        # A valid (empty) body, so only ownership decides the answer.
        body = VALID_BODIES.get(path, {}) if method in {"POST", "PATCH", "PUT"} else None
        r = await client.request(method, url, headers=intruder | KEY, json=body)
        assert r.status_code == 404, f"{method} {url} answered {r.status_code} to another user"
        checked += 1
        r = await client.request("GET" if method == "DELETE" else method, url, headers=owner | KEY, json=body)
        assert r.status_code != 404, f"{method} {url} answered 404 to its owner"
    await container.jobs.drain()
    assert checked >= 8
    # Lists show only one's own: the intruder sees no webhook (and cannot delete the owner's).
    assert (await client.get("/api/v1/webhooks", headers=intruder)).json()["items"] == []
    assert len((await client.get("/api/v1/webhooks", headers=owner)).json()["items"]) == 1
