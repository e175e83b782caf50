"""Tenant isolation, generated from the route table: another user's id always answers 404."""

from __future__ import annotations

import copy
import functools
import re
from decimal import Decimal
from typing import Any
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


@functools.cache  # a fresh app and its OpenAPI document cost about half a second of CPU
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


async def _owners_world(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The owner's and the intruder's headers, and an id of every kind the owner has."""
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
    return owner, intruder, ids


async def test_other_users_ids_answer_404_on_every_route(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    owner, intruder, ids = await _owners_world(client, container, memory_providers)
    scoped = {"name": "reader", "scopes": ["read"]}
    reader = (await client.post("/api/v1/api-tokens", headers=intruder, json=scoped)).json()["token"]
    intruders_token = {"Authorization": f"Bearer {reader}"}
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
        # The other way in: another user's API token (refused, or told there is no such thing).
        r = await client.request(method, url, headers=intruders_token | KEY, json=body)
        assert r.status_code in {403, 404}, f"{method} {url} answered {r.status_code} to another's token"
        checked += 1
        r = await client.request("GET" if method == "DELETE" else method, url, headers=owner | KEY, json=body)
        assert r.status_code != 404, f"{method} {url} answered 404 to its owner"
    await container.jobs.drain()
    assert checked >= 8
    # Lists show only one's own: the intruder sees no webhook (and cannot delete the owner's).
    assert (await client.get("/api/v1/webhooks", headers=intruder)).json()["items"] == []
    assert len((await client.get("/api/v1/webhooks", headers=owner)).json()["items"]) == 1


# Ids in query strings and request bodies, by field name: the kind of id each takes.
FIELD_KINDS = {
    "account_id": "account_id",
    "connection_id": "connection_id",
    "category_id": "category_id",
    "parent_id": "category_id",
    "mapping_id": "mapping_id",
    "outflow_id": "transaction_id",
    "inflow_id": "transaction_id",
}
# A valid body for each operation whose body takes an id, so only ownership decides the answer.
ID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/import-mappings"): {
        "name": "probe",
        "header": ["Day", "Sum"],
        "columns": {"date": "Day", "amount": "Sum"},
        "default_currency": "EUR",
    },
    ("POST", "/api/v1/categories"): {"name": "probe"},
    ("PATCH", "/api/v1/categories/{category_id}"): {},
    ("POST", "/api/v1/rules"): {"name": "probe", "conditions": {"description_contains": "x"}, "tags": ["t"]},
    ("PATCH", "/api/v1/rules/{rule_id}"): {},
    ("PATCH", "/api/v1/transactions/{transaction_id}"): {},
    ("POST", "/api/v1/transfers"): {},
}
CSV = b"Date,Amount,Description\n2026-01-02,-5.00,coffee\n2026-01-03,10.00,pay\n"


def _uuid(schema: dict[str, Any]) -> bool:
    return schema.get("format") == "uuid" or any(s.get("format") == "uuid" for s in schema.get("anyOf", []))


def _body_id_fields(schema: dict[str, Any], components: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the id fields of a request body (nested objects included)."""
    found = []
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    for name, field in schema.get("properties", {}).items():
        if _uuid(field):
            found.append(prefix + name)
        for inner in [field, *field.get("anyOf", [])]:
            if "$ref" in inner:
                found += _body_id_fields(inner, components, f"{prefix}{name}.")
    return found


@functools.cache
def ids_in_queries_and_bodies() -> list[tuple[str, str, str, str]]:
    """(method, path, "query" or "body", field) for every id an operation takes outside its path."""
    spec = create_app(container=None).openapi()
    components = spec["components"]["schemas"]
    found = []
    for path, operations in spec["paths"].items():
        for method, op in sorted(operations.items()):
            for p in op.get("parameters", []):
                if p["in"] == "query" and _uuid(p["schema"]):
                    found.append((method.upper(), path, "query", p["name"]))
            for body in op.get("requestBody", {}).get("content", {}).values():  # JSON, forms
                fields = _body_id_fields(body["schema"], components)
                found += [(method.upper(), path, "body", f) for f in fields]
    return found


def test_query_and_body_ids_are_found() -> None:
    # Guards the generator: if ids stop being found, the test below would pass vacuously.
    found = ids_in_queries_and_bodies()
    assert len(found) >= 15
    assert ("POST", "/api/v1/rules", "body", "conditions.account_id") in found


async def _own_ids(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    """An id of every kind a query or body takes, of this user's own (from a CSV import)."""
    r = await client.post("/api/v1/imports", headers=headers, files={"file": ("own.csv", CSV)})
    assert r.status_code == 201, r.text
    imported = r.json()
    txns = (await client.get("/api/v1/transactions", headers=headers)).json()["items"]
    category = (await client.get("/api/v1/categories", headers=headers)).json()[0]["id"]
    rule = {"name": "own", "conditions": {"description_contains": "x"}, "category_id": category}
    mapping = {**ID_BODIES[("POST", "/api/v1/import-mappings")], "header": ["Own", "Sum"],
               "columns": {"date": "Own", "amount": "Sum"}}  # fmt: skip
    saved = await client.post("/api/v1/import-mappings", headers=headers, json=mapping)
    return {
        "account_id": imported["accounts"][0]["id"],
        "connection_id": imported["connection_id"],
        "category_id": category,
        "mapping_id": saved.json()["id"],
        "rule_id": (await client.post("/api/v1/rules", headers=headers, json=rule)).json()["id"],
        "transaction_id": next(t["id"] for t in txns if Decimal(t["amount"]) < 0),
    }


def _set(body: dict[str, Any], dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        body = body.setdefault(name, {})
    body[last] = value


async def _ask(
    client: httpx.AsyncClient, method: str, path: str, where: str, field: str,
    headers: dict[str, str], theirs: dict[str, str], probed: str,
) -> httpx.Response:  # fmt: skip
    """``field`` set to ``probed``, every other id (of the path, of the body) to the caller's own."""
    url = path.format(**{n: theirs[n] for n in ID_PARAM.findall(path)})
    if where == "query":
        files = {"file": ("probe.csv", CSV)} if path.startswith("/api/v1/imports") else None
        return await client.request(method, url, headers=headers, params={field: probed}, files=files)
    body = copy.deepcopy(ID_BODIES[(method, path)])
    for m, p, w, other in ids_in_queries_and_bodies():
        if (m, p, w) != (method, path, "body"):
            continue
        _set(body, other, probed if other == field else theirs[FIELD_KINDS[other.rsplit(".", 1)[-1]]])
    return await client.request(method, url, headers=headers, json=body)


async def test_other_users_ids_in_queries_and_bodies_answer_404(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    """An id of another user's in a query string or a request body (a filter, a parent, a rule's
    account, a transfer's leg) is not found, whichever route takes it: never read, never linked to."""
    _, intruder, owners = await _owners_world(client, container, memory_providers)
    intruders = await _own_ids(client, intruder)
    checked = 0
    for method, path, where, field in ids_in_queries_and_bodies():
        kind = FIELD_KINDS.get(field.rsplit(".", 1)[-1])
        if kind is None or (where == "body" and (method, path) not in ID_BODIES):
            pytest.fail(f"no fixture for the id {field} of {method} {path}: extend the isolation test")
        r = await _ask(client, method, path, where, field, intruder, intruders, owners[kind])
        assert r.status_code == 404, f"{method} {path} {where} {field}: {r.status_code} to another user"
        r = await _ask(client, method, path, where, field, intruder, intruders, intruders[kind])
        assert r.status_code != 404, f"{method} {path} {where} {field}: 404 for the caller's own: {r.text}"
        checked += 1
    assert checked >= 15
