"""Walking every page of a list returns each row once, in the order of the unpaginated list,
also when many rows share the leading sort key (same date, same time) across page boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest

from finsync.api.pagination import encode_cursor
from finsync.bootstrap import Container
from finsync.domain.entities import BalanceSnapshot
from finsync.domain.enums import SnapshotSource
from tests.api.helpers import register_and_login
from tests.factories import account, seed_connection, txn
from tests.fakes.memory import MemoryProviders

pytestmark = pytest.mark.e2e
Headers = dict[str, str]


async def _walk(
    client: httpx.AsyncClient, headers: Headers, path: str, limit: int, **params: Any
) -> list[str]:
    seen: list[str] = []
    query: dict[str, Any] = {"limit": limit, **params}
    while True:
        r = await client.get(path, headers=headers, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            return seen
        assert body["items"], "a page with a next_cursor must not be empty"
        query = {"limit": limit, "cursor": body["next_cursor"], **params}


async def _all(client: httpx.AsyncClient, headers: Headers, path: str, **params: Any) -> list[str]:
    r = await client.get(path, headers=headers, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return [item["id"] for item in r.json()["items"]]


async def _seed(
    client: httpx.AsyncClient, container: Container, bank: MemoryProviders
) -> tuple[Headers, str]:
    headers = await register_and_login(client)
    async with container.uow() as uow:
        user = await uow.users.get_by_email("ada@example.com")
    assert user is not None
    conn = await seed_connection(container, user)
    bank.accounts = [account("cur"), account("sav")]
    days = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    bank.transactions = {
        "cur": [txn(f"c{i}", day=days[i % 3]) for i in range(14)],
        "sav": [txn(f"s{i}", day=days[1]) for i in range(5)],
    }
    r = await client.post(f"/api/v1/connections/{conn.id}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    accounts = (await client.get("/api/v1/accounts", headers=headers)).json()["items"]
    cur = next(a["id"] for a in accounts if a["provider_account_id"] == "cur")
    return headers, cur


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7])
async def test_transaction_pages_sharing_a_date_are_complete(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders, limit: int
) -> None:
    headers, cur = await _seed(client, container, memory_providers)
    for path, params in (
        ("/api/v1/transactions", {}),
        ("/api/v1/transactions", {"account_id": cur}),
        (f"/api/v1/accounts/{cur}/transactions", {}),
        ("/api/v1/transactions", {"date_from": "2026-03-02"}),
        ("/api/v1/transactions", {"q": "payment"}),
    ):
        full = await _all(client, headers, path, **params)
        assert len(full) == len(set(full)) > 0
        assert await _walk(client, headers, path, limit, **params) == full, (path, params)


async def test_snapshot_pages_sharing_a_time_are_complete(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    headers, cur = await _seed(client, container, memory_providers)
    async with container.uow() as uow:
        user = await uow.users.get_by_email("ada@example.com")
        assert user is not None
        base = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
        items = [
            BalanceSnapshot(
                user_id=user.id,
                account_id=UUID(cur),
                source=SnapshotSource.MANUAL,
                currency="GBP",
                taken_at=base + timedelta(seconds=i % 3),
                balance=Decimal(i),
            )
            for i in range(11)
        ]
        await uow.snapshots.add_many(items)
        await uow.commit()
    path = f"/api/v1/accounts/{cur}/balance-snapshots"
    full = await _all(client, headers, path)
    assert len(full) >= 11
    for limit in (1, 2, 3, 5):
        assert await _walk(client, headers, path, limit) == full, limit


@pytest.mark.parametrize(
    "path", ["/api/v1/accounts", "/api/v1/holdings", "/api/v1/connections", "/api/v1/webhooks"]
)
async def test_other_lists_walk_completely(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders, path: str
) -> None:
    headers, _ = await _seed(client, container, memory_providers)
    full = await _all(client, headers, path)
    assert await _walk(client, headers, path, 1) == full


async def test_a_cursor_from_another_list_is_422(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders
) -> None:
    """Docs: "a `cursor` from another list answers 422" — never another list's rows, never a 500."""
    headers, cur = await _seed(client, container, memory_providers)
    r = await client.get("/api/v1/transactions", headers=headers, params={"limit": 1})
    tx_cursor = r.json()["next_cursor"]
    r = await client.get("/api/v1/accounts", headers=headers, params={"limit": 1})
    account_cursor = r.json()["next_cursor"]
    assert tx_cursor
    assert account_cursor
    answers = {}
    for path, cursor in (
        (f"/api/v1/accounts/{cur}/balance-snapshots", tx_cursor),
        ("/api/v1/holdings", account_cursor),
        ("/api/v1/connections", account_cursor),
        ("/api/v1/webhooks", account_cursor),
        ("/api/v1/transfers", account_cursor),
        ("/api/v1/accounts", tx_cursor),
    ):
        r = await client.get(path, headers=headers, params={"cursor": cursor})
        answers[path] = r.status_code
    assert answers == dict.fromkeys(answers, 422)


@pytest.mark.parametrize(
    "taken_at",
    [
        "2026-03-01T12:00:00",  # no offset: ours always have one
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    ],
)
async def test_a_forged_snapshot_cursor_is_422_not_500(
    client: httpx.AsyncClient, container: Container, memory_providers: MemoryProviders, taken_at: str
) -> None:
    headers, cur = await _seed(client, container, memory_providers)
    cursor = encode_cursor(("balance_snapshots", taken_at, "0" * 32))
    path = f"/api/v1/accounts/{cur}/balance-snapshots"
    r = await client.get(path, headers=headers, params={"cursor": cursor})
    assert r.status_code == 422, r.text
