"""The fast lane (``api/fastlane.py``) answers its reads byte for byte as FastAPI's routes do,
and leaves every other request to them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from uuid import UUID

import httpx
import pytest

from finsync.api.fastlane import FastLane
from finsync.api.pagination import encode_cursor
from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.factories import account, seed_connection, txn

pytestmark = pytest.mark.e2e


def _lane(client: httpx.AsyncClient) -> FastLane:
    app = client._transport.app  # type: ignore[attr-defined]
    stack = app.middleware_stack or app.build_middleware_stack()
    app.middleware_stack = stack
    while not isinstance(stack, FastLane):
        stack = stack.app
    return stack


@contextmanager
def _fast_reads(container: Container, on: bool) -> Iterator[None]:
    kept = container.settings
    container.settings = kept.model_copy(update={"fast_reads": on})
    try:
        yield
    finally:
        container.settings = kept


async def _both(
    client: httpx.AsyncClient, container: Container, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response, int]:
    """The answer with the lane, the answer through FastAPI alone, and how many the lane gave."""
    lane = _lane(client)
    before = lane.answered
    fast = await client.get(path, headers=headers)
    answered = lane.answered - before
    with _fast_reads(container, on=False):
        slow = await client.get(path, headers=headers)
    assert lane.answered - before == answered  # switched off: nothing more answered by the lane
    return fast, slow, answered


def _same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code
    assert fast.content == slow.content
    drop = {"x-request-id"}
    assert [h for h in fast.headers.multi_items() if h[0] not in drop] == [
        h for h in slow.headers.multi_items() if h[0] not in drop
    ]


async def _seed(client: httpx.AsyncClient, container: Container) -> tuple[dict[str, str], list[str]]:
    headers = await register_and_login(client)
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    async with container.uow() as uow:
        user = await uow.users.get(UUID(me["id"]))
    assert user is not None
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        accounts, _ = await uow.accounts.upsert(
            conn, [account("cur"), account("usd", currency="USD"), account("empty")]
        )
        by = {a.provider_account_id: a for a in accounts}
        start = date(2026, 1, 1)
        await uow.transactions.upsert(
            by["cur"],
            [
                txn(
                    f"t{i}",
                    amount=f"-{i}.{i % 10}0",
                    day=start + timedelta(days=i // 3),
                    symbol="ACME" if i % 4 else None,
                )
                for i in range(30)
            ],
        )
        await uow.transactions.upsert(by["usd"], [txn("u1", amount="1000.000001", currency="USD")])
        await uow.commit()
    first = (await client.get("/api/v1/transactions?limit=4", headers=headers)).json()["items"][0]
    r = await client.patch(
        f"/api/v1/transactions/{first['id']}", headers=headers, json={"notes": "lunch ☕", "tags": ["food"]}
    )
    assert r.status_code == 200, r.text
    return headers, [str(by[n].id) for n in ("cur", "usd", "empty")]


async def test_the_lane_answers_as_fastapi_does_and_leaves_the_rest_to_it(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers, (cur, usd, empty) = await _seed(client, container)
    page = (await client.get("/api/v1/transactions?limit=7", headers=headers)).json()
    own = (await client.get(f"/api/v1/accounts/{cur}/transactions?limit=5", headers=headers)).json()
    answered_here = [
        "/api/v1/users/me",
        "/api/v1/transactions",
        "/api/v1/transactions?limit=1",
        "/api/v1/transactions?limit=500",
        f"/api/v1/transactions?limit=7&cursor={page['next_cursor']}",
        f"/api/v1/transactions?cursor={page['next_cursor']}",
        f"/api/v1/accounts/{cur}/transactions",
        f"/api/v1/accounts/{cur}/transactions?limit=5&cursor={own['next_cursor']}",
        f"/api/v1/accounts/{usd}/transactions?limit=2",
    ]
    for path in answered_here:
        fast, slow, answered = await _both(client, container, path, headers)
        assert fast.status_code == 200, (path, fast.text)
        _same(fast, slow)
        assert answered == 1, path

    other = await register_and_login(client, "eve@example.com")
    api_token = (
        await client.post("/api/v1/api-tokens", headers=headers, json={"name": "r", "scopes": ["read"]})
    ).json()
    not_here: list[tuple[str, dict[str, str]]] = [
        ("/api/v1/transactions?limit=0", headers),
        ("/api/v1/transactions?limit=501", headers),
        ("/api/v1/transactions?limit=07", headers),
        ("/api/v1/transactions?limit=5&limit=6", headers),
        ("/api/v1/transactions?limit=", headers),
        ("/api/v1/transactions?q=payment", headers),
        (f"/api/v1/transactions?account_id={cur}", headers),
        ("/api/v1/transactions?cursor=***", headers),
        (f"/api/v1/transactions?cursor={encode_cursor(('accounts', cur))}", headers),  # another list's
        (f"/api/v1/accounts/{cur.upper()}/transactions", headers),
        (f"/api/v1/accounts/{empty}/transactions", headers),  # empty: FastAPI tells it from not yours
        (f"/api/v1/accounts/{cur}/transactions", other),  # not yours: 404
        ("/api/v1/users/me?x=1", headers),
        ("/api/v1/users/me", {"Authorization": "Bearer not-a-jwt"}),
        ("/api/v1/users/me", {"Authorization": "Basic abc"}),
        ("/api/v1/users/me", {}),
        ("/api/v1/transactions", {"Authorization": f"Bearer {api_token['token']}"}),  # tokens: scopes
        ("/api/v1/transactions/", headers),
        ("/api/v1/accounts", headers),
    ]
    for path, who in not_here:
        fast, slow, answered = await _both(client, container, path, who)
        _same(fast, slow)
        assert answered == 0, (path, fast.status_code)


async def test_an_ended_session_is_refused_by_the_lane_s_own_read(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await register_and_login(client)
    lane = _lane(client)
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    answered = lane.answered
    (current,) = (await client.get("/api/v1/users/me/sessions", headers=headers)).json()
    assert (
        await client.delete(f"/api/v1/users/me/sessions/{current['id']}", headers=headers)
    ).status_code == 204
    r = await client.get("/api/v1/users/me", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert lane.answered == answered
