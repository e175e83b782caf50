"""Every documented filter of every list filters: data where it excludes something, and exactly what
comes back. Unknown or malformed values answer 422; another user's ids answer 404."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from finsync.bootstrap import Container
from finsync.domain.entities import Connection
from finsync.domain.enums import (
    AccountType,
    ConnectionStatus,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from tests.api.helpers import register_and_login
from tests.factories import account, holding, seed_connection, txn
from tests.fakes.memory import MemoryProviders

pytestmark = pytest.mark.e2e
Headers = dict[str, str]


@dataclass
class Seeded:
    headers: Headers
    other: Headers  # a second user, with data of their own
    first: Connection  # checking "chk" + savings "sav"
    second: Connection  # brokerage "brk"
    accounts: dict[str, str]  # provider account id -> our id
    other_ids: dict[str, str]  # the second user's connection, account and sync run


async def _sync(client: httpx.AsyncClient, container: Container, headers: Headers, cid: object) -> str:
    r = await client.post(f"/api/v1/connections/{cid}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    return str(r.json()["id"])


async def _user_connection(container: Container, email: str, status: ConnectionStatus) -> Connection:
    async with container.uow() as uow:
        user = await uow.users.get_by_email(email)
    assert user is not None
    connection = await seed_connection(container, user)
    if status is not ConnectionStatus.ACTIVE:
        connection.status = status
        async with container.uow() as uow:
            await uow.connections.save(connection)
            await uow.commit()
    return connection


async def _seed(client: httpx.AsyncClient, container: Container, bank: MemoryProviders) -> Seeded:
    headers = await register_and_login(client)
    other = await register_and_login(client, "bob@example.com")
    first = await _user_connection(container, "ada@example.com", ConnectionStatus.ACTIVE)
    bank.accounts = [account("chk"), account("sav", type=AccountType.SAVINGS, balance=Decimal("50"))]
    bank.transactions = {
        "chk": [
            txn("c1", day=date(2026, 1, 5), description="Coffee shop"),
            txn("c2", day=date(2026, 1, 10), status=TransactionStatus.PENDING, description="Grocer"),
            txn(
                "c3",
                "250.00",
                day=date(2026, 1, 20),
                type=TransactionType.INCOME,
                subtype=TransactionSubtype.INTEREST,
                description="Interest",
            ),
        ],
        "sav": [txn("s1", "1000", day=date(2026, 1, 15), subtype=TransactionSubtype.DEPOSIT)],
    }
    bank.holdings = {}
    await _sync(client, container, headers, first.id)
    second = await _user_connection(container, "ada@example.com", ConnectionStatus.ACTIVE)
    bank.accounts = [account("brk", type=AccountType.BROKERAGE, currency="USD")]
    bank.transactions = {
        "brk": [
            txn(
                "b1",
                "-1855.00",
                day=date(2026, 1, 12),
                currency="USD",
                type=TransactionType.TRADE,
                subtype=TransactionSubtype.BUY,
                symbol="AAPL",
                description="Buy 10 AAPL",
            ),
            txn(
                "b2",
                "2.40",
                day=date(2026, 1, 25),
                currency="USD",
                type=TransactionType.INCOME,
                subtype=TransactionSubtype.DIVIDEND,
                symbol="MSFT",
                description="Dividend",
            ),
        ]
    }
    bank.holdings = {"brk": [holding("AAPL", currency="USD"), holding("MSFT", currency="USD")]}
    await _sync(client, container, headers, second.id)
    # A needs_reauth connection (no accounts) for the connections' status filter.
    await _user_connection(container, "ada@example.com", ConnectionStatus.NEEDS_REAUTH)
    accounts = {a["provider_account_id"]: a["id"] for a in await _items(client, headers, "/api/v1/accounts")}

    theirs = await _user_connection(container, "bob@example.com", ConnectionStatus.ACTIVE)
    bank.accounts = [account("bob-1")]
    bank.transactions = {"bob-1": [txn("x1")]}
    bank.holdings = {"bob-1": [holding("VWRL")]}
    run = await _sync(client, container, other, theirs.id)
    (their_account,) = await _items(client, other, "/api/v1/accounts")
    other_ids = {"connection": str(theirs.id), "account": their_account["id"], "run": run}
    return Seeded(headers, other, first, second, accounts, other_ids)


async def _items(
    client: httpx.AsyncClient, headers: Headers, path: str, **params: Any
) -> list[dict[str, Any]]:
    r = await client.get(path, headers=headers, params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _txn_ids(
    client: httpx.AsyncClient, headers: Headers, path: str = "/api/v1/transactions", **params: Any
) -> list[str]:
    return [t["provider_transaction_id"] for t in await _items(client, headers, path, **params)]


async def test_connection_and_account_filters(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    s = await _seed(client, container, memory_providers)
    h = s.headers
    assert len(await _items(client, h, "/api/v1/connections")) == 3
    active = await _items(client, h, "/api/v1/connections", status="active")
    assert {c["id"] for c in active} == {str(s.first.id), str(s.second.id)}
    assert [c["status"] for c in await _items(client, h, "/api/v1/connections", status="needs_reauth")] == [
        "needs_reauth"
    ]
    assert await _items(client, h, "/api/v1/connections", status="pending") == []
    needing = await _items(client, h, "/api/v1/connections", attention="true")
    assert [(c["status"], c["attention"]) for c in needing] == [("needs_reauth", "needs_reauth")]
    assert len(await _items(client, h, "/api/v1/connections", attention="false")) == 3
    assert await _items(client, h, "/api/v1/connections", attention="true", status="active") == []

    by_first = await _items(client, h, "/api/v1/accounts", connection_id=str(s.first.id))
    assert sorted(a["provider_account_id"] for a in by_first) == ["chk", "sav"]
    by_second = await _items(client, h, "/api/v1/accounts", connection_id=str(s.second.id))
    assert [a["provider_account_id"] for a in by_second] == ["brk"]
    savings = await _items(client, h, "/api/v1/accounts", type="savings")
    assert [a["provider_account_id"] for a in savings] == ["sav"]
    both = await _items(client, h, "/api/v1/accounts", type="checking", connection_id=str(s.second.id))
    assert both == []


async def test_transaction_filters(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    s = await _seed(client, container, memory_providers)
    h = s.headers
    assert await _txn_ids(client, h) == ["b2", "c3", "s1", "b1", "c2", "c1"]  # newest first
    assert await _txn_ids(client, h, account_id=s.accounts["chk"]) == ["c3", "c2", "c1"]
    assert await _txn_ids(client, h, date_from="2026-01-12") == ["b2", "c3", "s1", "b1"]
    assert await _txn_ids(client, h, date_to="2026-01-12") == ["b1", "c2", "c1"]
    assert await _txn_ids(client, h, date_from="2026-01-10", date_to="2026-01-15") == ["s1", "b1", "c2"]
    assert await _txn_ids(client, h, type="income") == ["b2", "c3"]
    assert await _txn_ids(client, h, subtype="deposit") == ["s1"]
    assert await _txn_ids(client, h, status="pending") == ["c2"]
    assert await _txn_ids(client, h, symbol="aapl") == ["b1"]
    assert await _txn_ids(client, h, q="GROCER") == ["c2"]
    assert await _txn_ids(client, h, q="msft") == ["b2"]  # a symbol matches too
    assert await _txn_ids(client, h, type="income", account_id=s.accounts["brk"]) == ["b2"]
    path = f"/api/v1/accounts/{s.accounts['chk']}/transactions"
    assert await _txn_ids(client, h, path) == ["c3", "c2", "c1"]
    assert await _txn_ids(client, h, path, status="settled", date_to="2026-01-19") == ["c1"]


async def test_holdings_snapshot_and_sync_run_filters(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    s = await _seed(client, container, memory_providers)
    h = s.headers
    memory_providers.holdings = {"chk": [holding("VWRL")], "sav": []}
    memory_providers.accounts = [account("chk"), account("sav", type=AccountType.SAVINGS)]
    memory_providers.transactions = {}
    await _sync(client, container, h, s.first.id)
    symbols = sorted(x["symbol"] for x in await _items(client, h, "/api/v1/holdings"))
    assert symbols == ["AAPL", "MSFT", "VWRL"]
    mine = await _items(client, h, "/api/v1/holdings", account_id=s.accounts["brk"])
    assert sorted(x["symbol"] for x in mine) == ["AAPL", "MSFT"]
    assert [
        x["symbol"] for x in await _items(client, h, "/api/v1/holdings", account_id=s.accounts["chk"])
    ] == ["VWRL"]
    assert await _items(client, h, "/api/v1/holdings", account_id=s.accounts["sav"]) == []

    # Two syncs of the first connection: two snapshots of "chk", newest first.
    path = f"/api/v1/accounts/{s.accounts['chk']}/balance-snapshots"
    newer, older = await _items(client, h, path)
    assert (newer["source"], older["source"]) == ("manual", "manual")
    assert older["taken_at"] < newer["taken_at"]
    assert await _items(client, h, path, since=newer["taken_at"]) == [newer]
    assert await _items(client, h, path, until=older["taken_at"]) == [older]
    assert await _items(client, h, path, since=older["taken_at"], until=newer["taken_at"]) == [newer, older]
    assert await _items(client, h, path, since="2100-01-01T00:00:00Z") == []

    runs_first = await _items(client, h, f"/api/v1/connections/{s.first.id}/sync-runs")
    runs_second = await _items(client, h, f"/api/v1/connections/{s.second.id}/sync-runs")
    assert (len(runs_first), len(runs_second)) == (2, 1)
    assert {r["connection_id"] for r in runs_first} == {str(s.first.id)}
    assert not {r["id"] for r in runs_first} & {r["id"] for r in runs_second}


BAD_VALUES = [
    ("/api/v1/connections", {"status": "sleeping"}),
    ("/api/v1/connections", {"attention": "maybe"}),
    ("/api/v1/webhooks", {"cursor": "!!not-a-cursor"}),
    ("/api/v1/accounts", {"type": "piggy_bank"}),
    ("/api/v1/accounts", {"connection_id": "not-a-uuid"}),
    ("/api/v1/transactions", {"type": "gift"}),
    ("/api/v1/transactions", {"subtype": "gift"}),
    ("/api/v1/transactions", {"status": "maybe"}),
    ("/api/v1/transactions", {"account_id": "42"}),
    ("/api/v1/transactions", {"date_from": "2026-13-01"}),
    ("/api/v1/transactions", {"date_to": "0"}),  # a number is not a date (it used to mean 1970)
    ("/api/v1/transactions", {"date_from": "20260101"}),
    ("/api/v1/transactions", {"date_to": "9999-12-31"}),  # query dates: 1900-01-01 to 2200-12-31
    ("/api/v1/transactions", {"date_from": "2026-02-01", "date_to": "2026-01-01"}),
    ("/api/v1/transactions", {"q": "a\x00b"}),
    ("/api/v1/transactions", {"symbol": "X" * 65}),
    ("/api/v1/transactions", {"limit": "0"}),
    ("/api/v1/transactions", {"limit": "501"}),
    ("/api/v1/transactions", {"cursor": "!!not-a-cursor"}),
    ("/api/v1/transactions", {"cursor": "bm90LWEta2V5"}),  # base64 of text that is no key of this list
    ("/api/v1/holdings", {"account_id": "x"}),
    ("/api/v1/holdings", {"cursor": "A"}),
]


async def test_unknown_or_malformed_filter_values_are_422(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    answers = {}
    for path, params in BAD_VALUES:
        r = await client.get(path, headers=headers, params=params)
        answers[f"{path} {params}"] = (r.status_code, r.headers["content-type"], bool(r.json()["detail"]))
    assert answers == {key: (422, "application/problem+json", True) for key in answers}


async def test_snapshot_times_must_be_text_and_in_range(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    s = await _seed(client, container, memory_providers)
    path = f"/api/v1/accounts/{s.accounts['chk']}/balance-snapshots"
    for params in ({"since": "0"}, {"until": "1700000000"}, {"since": "yesterday"}):
        r = await client.get(path, headers=s.headers, params=params)
        assert r.status_code == 422, (params, r.text)


async def test_another_users_ids_are_404_in_filters_and_paths(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    s = await _seed(client, container, memory_providers)
    theirs = s.other_ids
    for path, params in [
        ("/api/v1/accounts", {"connection_id": theirs["connection"]}),
        ("/api/v1/transactions", {"account_id": theirs["account"]}),
        ("/api/v1/holdings", {"account_id": theirs["account"]}),
        (f"/api/v1/connections/{theirs['connection']}", {}),
        (f"/api/v1/connections/{theirs['connection']}/sync-runs", {}),
        (f"/api/v1/sync-runs/{theirs['run']}", {}),
        (f"/api/v1/accounts/{theirs['account']}", {}),
        (f"/api/v1/accounts/{theirs['account']}/transactions", {}),
        (f"/api/v1/accounts/{theirs['account']}/holdings", {}),
        (f"/api/v1/accounts/{theirs['account']}/balance-snapshots", {}),
    ]:
        r = await client.get(path, headers=s.headers, params=params)
        assert r.status_code == 404, (path, params, r.text)
        assert r.json()["type"].endswith("/not-found")
    # ... and the owner sees them.
    assert len(await _items(client, s.other, "/api/v1/holdings", account_id=theirs["account"])) == 1
