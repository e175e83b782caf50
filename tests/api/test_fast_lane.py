"""The fast lane (``api/fastlane.py``) answers its reads byte for byte as FastAPI's routes do,
and leaves every other request to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import event

from finsync.api.fastlane import FastLane
from finsync.api.pagination import encode_cursor
from finsync.bootstrap import Container
from finsync.domain.entities import BalanceSnapshot, Connection, SyncRun, new_id
from finsync.domain.enums import AccountType, ConnectionStatus, SnapshotSource, SyncStatus, SyncTrigger
from finsync.domain.ports import PageRequest
from finsync.domain.records import VALUE_CONVERSION
from finsync.domain.trading import OrderSide, OrderStatus, OrderType
from finsync.domain.webhooks import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from tests import factories
from tests.api.helpers import register_and_login
from tests.factories import account, holding, seed_connection, txn
from tests.sql import statements

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
        ("/api/v1/categories", headers),
    ]
    for path, who in not_here:
        fast, slow, answered = await _both(client, container, path, who)
        _same(fast, slow)
        assert answered == 0, (path, fast.status_code)


async def test_an_ended_session_is_refused_by_the_lane_s_own_read(
    client: httpx.AsyncClient, container: Container
) -> None:
    """Whether the session is live is asked on every answer: by the page's own statement where
    it can carry it (PostgreSQL's written pages), else on its own; an ended one gets FastAPI's
    401, never the page."""
    headers, (cur, _, _) = await _seed(client, container)
    hook = (await client.post("/api/v1/webhooks", headers=headers, json=_HOOK)).json()
    lane = _lane(client)
    paths = ["/api/v1/users/me", "/api/v1/transactions", f"/api/v1/accounts/{cur}/transactions"]
    if container.engine.dialect.name == "postgresql":  # the lists whose pages it writes
        paths += ["/api/v1/accounts", "/api/v1/connections", "/api/v1/webhooks"]
        # a delivery's page: its rows are joined in Python, and ask for the session themselves
        user_id = UUID((await client.get("/api/v1/users/me", headers=headers)).json()["id"])
        async with container.uow() as uow:
            delivery = WebhookDelivery(user_id=user_id, webhook_id=UUID(hook["id"]), event="x", payload={})
            await uow.webhooks.add_deliveries([delivery])
            await uow.commit()
        paths.append(f"/api/v1/webhooks/{hook['id']}/deliveries")
    for path in paths:
        answered = lane.answered
        assert (await client.get(path, headers=headers)).status_code == 200, path
        assert lane.answered == answered + 1, path  # live: the lane answers each
    (current,) = (await client.get("/api/v1/users/me/sessions", headers=headers)).json()
    assert (
        await client.delete(f"/api/v1/users/me/sessions/{current['id']}", headers=headers)
    ).status_code == 204
    answered = lane.answered
    for path in paths:
        r = await client.get(path, headers=headers)
        assert r.status_code == 401, path
        assert r.headers["content-type"] == "application/problem+json"
    assert lane.answered == answered


_HOOK = {"url": "https://93.184.216.34/hook", "events": ["connection.expiring"]}


async def test_lists_the_database_writes_are_answered_as_fastapi_writes_them(
    client: httpx.AsyncClient, container: Container
) -> None:
    """Connections, holdings, orders, transfers, webhooks, balance snapshots and sync runs:
    every value shape their models write (nulls, decimals of every scale, timestamps with and
    without microseconds, escaped text, lists, fills, counts and every attention rule), over
    several pages, byte-equal through the lane (PostgreSQL writes the items) and through
    FastAPI (the response models)."""
    headers, (cur, _usd, empty) = await _seed(client, container)
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    user_id = UUID(me["id"])
    async with container.uow() as uow:
        conn = (await uow.connections.find(user_id, PageRequest(limit=1))).items[0]
        start = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
        await uow.snapshots.add_many(
            [
                BalanceSnapshot(
                    user_id=user_id,
                    account_id=UUID(cur),
                    source=list(SnapshotSource)[i % len(SnapshotSource)],
                    currency="GBP",
                    taken_at=start + timedelta(hours=i, microseconds=(i % 3) * 1234),
                    balance=[Decimal("1234.56"), Decimal("-0.000001"), None, Decimal("430"), Decimal("1E+2")][
                        i % 5
                    ],
                    available_balance=Decimal(i) / 7 if i % 2 else None,
                    cash_value=Decimal("0.00") if i % 3 else None,
                    holdings_value=Decimal("99999999.123456789") if i % 4 == 1 else None,
                    sync_run_id=new_id() if i % 2 else None,
                )
                for i in range(12)
            ]
        )
        for i in range(9):
            await uow.sync_runs.add(
                SyncRun(
                    user_id=user_id,
                    connection_id=conn.id,
                    trigger=list(SyncTrigger)[i % len(SyncTrigger)],
                    status=SyncStatus.FAILED if i % 2 else SyncStatus.SUCCEEDED,
                    queued_at=None if i % 3 else start - timedelta(seconds=i),
                    started_at=start + timedelta(minutes=i, microseconds=i * 7),
                    finished_at=None if i == 4 else start + timedelta(minutes=i + 1),
                    counts={} if i == 0 else {"inserted": i, "updated": 0, "transactions_unchanged": 10**9},
                    warnings=[] if i % 2 else ['a "quoted" note, a \\ back-slash', "päivää ☕\n\t\x01"],
                    error='the bank said "no" \u2028' if i % 2 else None,
                    error_type="ProviderError" if i % 2 else None,
                )
            )
        for i in range(7):
            await uow.webhooks.add(
                Webhook(
                    user_id=user_id,
                    url=f'https://hooks.example.com/p/{i}?q="x"&r=ä',
                    events=["sync.succeeded", "sync.failed"][: i % 3],
                    secret=b"fake-ciphertext",
                    description=None if i % 2 else f'hook "{i}" ✓',
                    created_at=start + timedelta(days=i, microseconds=i % 2),
                    updated_at=start + timedelta(days=i + 1),
                )
            )
        hook = (await uow.webhooks.find(user_id, PageRequest(limit=1))).items[0]
        payloads: list[dict[str, Any]] = [
            {},
            {
                "type": "sync.failed",
                "data": {"error": 'bank said "no"\n\u2028', "counts": {"b": 1, "a": [1, 2]}},
            },
            {
                "z": 1.5,
                "a": 1e-7,
                "m": 12345678901234567,
                "f": [0.1, -0.0, 1e15, 2.5e-300, True, None, "ä☕"],
            },
            {"nested": {"deeper": {"deepest": [[], {}, [{"k": "v"}]]}}},
        ]
        sent = [
            WebhookDelivery(
                user_id=user_id,
                webhook_id=hook.id,
                event="sync.succeeded" if i % 2 else "sync.failed",
                payload=payloads[i % len(payloads)],
                created_at=start + timedelta(minutes=i, microseconds=i % 3),
            )
            for i in range(8)
        ]
        await uow.webhooks.add_deliveries(sent)
        for i, delivery in enumerate(sent[:5]):
            for n in range(i % 3):
                delivery.attempts += 1
                delivery.last_attempt_at = start + timedelta(hours=i, seconds=n, microseconds=n)
                delivery.status = DeliveryStatus.SUCCEEDED if n == 1 else DeliveryStatus.PENDING
                delivery.delivered_at = delivery.last_attempt_at if n == 1 else None
                attempt = WebhookAttempt(
                    user_id=user_id,
                    delivery_id=delivery.id,
                    attempted_at=delivery.last_attempt_at,
                    status_code=None if n == 0 else 200,
                    error='timed out "x"' if n == 0 else None,
                    duration_ms=n * 1500,
                )
                await uow.webhooks.record_attempt(delivery, attempt)
        await uow.holdings.replace(
            (await uow.accounts.get(UUID(cur), user_id)),  # type: ignore[arg-type]
            [
                holding(
                    f"S{i}",
                    quantity=Decimal("0.000000001") if i == 2 else Decimal(f"{i}.50"),
                    name=None if i % 2 else f'Fund "{i}" ☕',
                    isin=None if i % 3 else f"IE00B3RBWM2{i}",
                    price_currency="USD" if i % 2 else "",
                    average_cost=Decimal("12.3400") if i % 2 else None,
                    current_price=Decimal("1E+3") if i == 1 else None,
                    unrealized_pnl=Decimal("-0.01") if i == 4 else None,
                    raw={VALUE_CONVERSION: {"rate": "1E-7", "rate_date": "2026-02-27", "source": 'ECB "ref"'}}
                    if i % 3 == 1
                    else (
                        {VALUE_CONVERSION: {"rate": "0.8547", "rate_date": None, "source": "ECB"}}
                        if i == 2
                        else {}
                    ),
                )
                for i in range(6)
            ],
        )
        now = container.clock()
        for i in range(8):  # every attention rule (and its bounds), and none
            await uow.connections.add(
                Connection(
                    user_id=user_id,
                    provider="memory",
                    name=f'Broker "{i}" ☕',
                    identity=f"id-{i}",
                    status=[ConnectionStatus.ACTIVE, ConnectionStatus.ERROR, ConnectionStatus.NEEDS_REAUTH][
                        i % 3
                    ],
                    environment="live" if i % 2 else None,
                    expires_at=[
                        None,
                        now - timedelta(days=1),
                        now + timedelta(days=3),
                        now + timedelta(days=60),
                    ][i % 4],
                    failure_count=2 if i % 3 == 1 else i,  # FAILING_AFTER
                    last_error=None if i % 2 == 0 else "rate limited: wait\n",
                    last_error_code="provider-rate-limited" if i in (3, 5) else None,
                    last_synced_at=None if i == 0 else now - timedelta(hours=i, microseconds=i),
                    provider_messages=[None, [], ["log in again", 'say "hi"']][i % 3],
                    sync_interval_minutes=None if i == 1 else 60 * i,
                    sync_enabled=i != 2,
                    next_sync_at=None if i % 2 else now + timedelta(minutes=i),
                )
            )
        await uow.accounts.upsert(
            conn,
            [
                account(
                    f"b{i}",
                    name=f'Current "{i}" ☕\t',
                    type=list(AccountType)[i % len(AccountType)],
                    currency=["GBP", "EUR", "USD"][i % 3],
                    institution=None if i % 2 else "Bank of Tests",
                    balance=[Decimal("0.00"), None, Decimal("-1E+3"), Decimal("12345678901234.123456")][
                        i % 4
                    ],
                    available_balance=None if i % 2 else Decimal("0.000001"),
                    iban="GB33BUKB20201555555555" if i == 2 else None,  # an IBAN nobody else reaches
                )
                for i in range(6)
            ],
        )
        out_of, into = (await uow.accounts.upsert(conn, [account("chk"), account("sav")]))[0]
        for i in range(7):
            day, amount = date(2025, 6, 1) + timedelta(days=3 * i), f"{100 + i}.{i}5" if i % 2 else f"{10**i}"
            await uow.transactions.upsert(out_of, [txn(f"x{i}", amount=f"-{amount}", day=day)])
            await uow.transactions.upsert(
                into, [txn(f"y{i}", amount=amount, day=day + timedelta(days=i % 2))]
            )
        await uow.commit()
    for i in range(5):
        order = factories.order(
            user_id,
            conn.id,
            UUID(cur),
            idempotency_key=f"k{i}",
            symbol=["AAPL", 'BRK "B"', "ÄÖ"][i % 3],
            side=list(OrderSide)[i % 2],
            type=list(OrderType)[i % len(OrderType)],
            created_by="user" if i % 2 else "token:01932c4f",
            quantity=None if i == 3 else Decimal("1.50"),
            notional=Decimal("250") if i == 3 else None,
            limit_price=Decimal("190.123456") if i % 2 else None,
            client_order_id=None if i % 2 else f"bot-{i}",
        )
        async with container.uow() as uow:
            assert await uow.trading.add_order(order)
            order.status = OrderStatus.PARTIALLY_FILLED if i % 2 else OrderStatus.REJECTED
            order.broker_order_id, order.reason = (f"b{i}", None) if i % 2 else (None, 'no "funds"\n')
            order.filled_quantity, order.average_price = Decimal("1.0") if i % 2 else Decimal(0), None
            order.fills = [
                {
                    "quantity": Decimal("0.5"),
                    "price": Decimal("1E+2"),
                    "at": start + timedelta(microseconds=j),
                }
                for j in range(i % 3)
            ] + ([{"quantity": Decimal("0.50"), "price": Decimal("189.9"), "at": None}] if i == 1 else [])
            if i == 2:  # a time without an offset: UTC, as wire.utc_text reads it
                order.fills.append(
                    {"quantity": Decimal(1), "price": Decimal("0.01"), "at": datetime(2026, 3, 1)}
                )
            assert await uow.trading.save_order(order)
            await uow.commit()
    assert await container.labels.detect(user_id) == 7
    links = (await client.get("/api/v1/transfers?status=detected", headers=headers)).json()["items"]
    r = await client.post(f"/api/v1/transfers/{links[2]['id']}/reject", headers=headers)
    assert r.status_code == 200, r.text
    postgres = container.engine.dialect.name == "postgresql"
    for base, limit in (
        (f"/api/v1/webhooks/{hook.id}/deliveries", 3),
        ("/api/v1/accounts", 5),
        ("/api/v1/connections", 3),
        ("/api/v1/holdings", 2),
        (f"/api/v1/accounts/{cur}/holdings", 2),
        ("/api/v1/orders", 2),
        ("/api/v1/transfers", 3),
        (f"/api/v1/accounts/{cur}/balance-snapshots", 5),
        (f"/api/v1/connections/{conn.id}/sync-runs", 4),
        ("/api/v1/webhooks", 3),
    ):
        path, pages = f"{base}?limit={limit}", 0
        while path:
            fast, slow, answered = await _both(client, container, path, headers)
            assert fast.status_code == 200, (path, fast.text)
            _same(fast, slow)
            assert answered == (1 if postgres else 0), path  # SQLite: FastAPI answers
            cursor = fast.json()["next_cursor"]
            path, pages = (f"{base}?limit={limit}&cursor={cursor}" if cursor else ""), pages + 1
        assert pages == 3, base

    other = await register_and_login(client, "eve@example.com")
    runs = f"/api/v1/connections/{conn.id}/sync-runs"
    for path, who in [
        (f"/api/v1/accounts/{empty}/balance-snapshots", headers),  # empty: FastAPI tells it from not yours
        (f"/api/v1/accounts/{cur}/balance-snapshots", other),  # not yours: 404
        (f"/api/v1/accounts/{cur}/balance-snapshots?since=2026-03-01", headers),
        (f"{runs}?cursor={encode_cursor(('webhooks', conn.id.hex))}", headers),  # another list's cursor
        (runs.replace(str(conn.id), str(conn.id).upper()), headers),
        ("/api/v1/webhooks", other),  # none: an empty page
        ("/api/v1/webhooks?limit=5&x=1", headers),
        ("/api/v1/transfers?status=rejected", headers),
        ("/api/v1/transfers", other),
        ("/api/v1/orders?open=true", headers),
        ("/api/v1/holdings?currency=EUR", headers),
        ("/api/v1/connections?attention=true", headers),
        ("/api/v1/accounts?currency=EUR", headers),
        (f"/api/v1/accounts?connection_id={conn.id}", headers),
        (f"/api/v1/holdings?account_id={cur}", headers),
        (f"/api/v1/accounts/{empty}/holdings", headers),
        (f"/api/v1/accounts/{cur}/holdings", other),
        ("/api/v1/orders", other),
    ]:
        fast, slow, answered = await _both(client, container, path, who)
        _same(fast, slow)
        assert answered == 0, (path, fast.status_code)

    # A payload holding an integer past 64 bits (jsonb reads 1e20 back as one): written by the
    # response models only, so that page goes to FastAPI, quietly.
    async with container.uow() as uow:
        await uow.webhooks.add_deliveries(
            [WebhookDelivery(user_id=user_id, webhook_id=hook.id, event="sync.failed", payload={"big": 1e20})]
        )
        await uow.commit()
    fast, slow, answered = await _both(client, container, f"/api/v1/webhooks/{hook.id}/deliveries", headers)
    _same(fast, slow)
    assert answered == 0
    assert b'"big":100000000000000000000' in slow.content or not postgres

    # An account another connection reaches too (the same IBAN and currency): the domain tells
    # which counts, so every page holding one goes to FastAPI; a page without one does not.
    async with container.uow() as uow:
        user, eve = await uow.users.get(user_id), await uow.users.get_by_email("eve@example.com")
    assert user is not None
    assert eve is not None
    # Another user's pair of such accounts says nothing of this user's: b2 (an IBAN only this
    # user's b2 has) leaves its page to the lane.
    for n in range(2):
        eve_conn = await seed_connection(container, eve, provider="memory")
        async with container.uow() as uow:
            await uow.accounts.upsert(
                eve_conn, [account(f"e{n}", currency="USD", iban="DE89370400440532013000")]
            )
            await uow.commit()
    first_page = (await client.get("/api/v1/accounts?limit=3", headers=headers)).json()
    b_page = f"/api/v1/accounts?limit=3&cursor={first_page['next_cursor']}"  # b0, b1, b2
    fast, slow, answered = await _both(client, container, b_page, headers)
    _same(fast, slow)
    assert answered == (1 if container.engine.dialect.name == "postgresql" else 0)
    other_conn = await seed_connection(container, user, provider="memory")
    async with container.uow() as uow:
        await uow.accounts.upsert(
            other_conn, [account("twin", currency="USD", iban="GB33BUKB20201555555555")]
        )
        await uow.commit()
    postgres = container.engine.dialect.name == "postgresql"
    for path, lane in (
        ("/api/v1/accounts", 0),
        ("/api/v1/accounts?limit=3", 1 if postgres else 0),  # cur, usd, empty: none reached twice
        (b_page, 0),  # b0, b1, b2: b2 is now
    ):
        fast, slow, answered = await _both(client, container, path, headers)
        _same(fast, slow)
        assert answered == lane, path
    assert any(a["duplicate_of"] or a["also_reached_through"] for a in slow.json()["items"])


async def test_a_decimal_held_as_json_text_keeps_a_negative_zero_s_sign(
    client: httpx.AsyncClient, container: Container
) -> None:
    """A fill's figures and a holding's conversion rate are stored as ``str(Decimal)`` inside
    JSON: ``-0`` there (numeric, which the database parses them into, has no negative zero) is
    written ``-0`` by the response models, and so by the lane."""
    headers = await register_and_login(client)
    user_id = UUID((await client.get("/api/v1/users/me", headers=headers)).json()["id"])
    async with container.uow() as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acc,), _ = await uow.accounts.upsert(conn, [account("cur")])
        conversion = {"rate": "-0E-2", "rate_date": None, "source": "ECB"}
        await uow.holdings.replace(acc, [holding("S", raw={VALUE_CONVERSION: conversion})])
        await uow.commit()
    order = factories.order(user_id, conn.id, acc.id)
    async with container.uow() as uow:
        assert await uow.trading.add_order(order)
        order.fills = [{"quantity": Decimal("-0"), "price": Decimal("-0.00"), "at": None}]
        assert await uow.trading.save_order(order)
        await uow.commit()
    for path in ("/api/v1/orders", "/api/v1/holdings"):
        fast, slow, answered = await _both(client, container, path, headers)
        assert b'"-0' in slow.content, slow.text
        _same(fast, slow)
        assert answered == (1 if container.engine.dialect.name == "postgresql" else 0), path


async def test_where_the_database_writes_no_pages_the_lane_reads_nothing_for_them(
    client: httpx.AsyncClient, container: Container
) -> None:
    """SQLite: the lists whose pages only PostgreSQL writes go straight to FastAPI, without the
    lane's own token check and user read first (the same statements as with the lane off)."""
    if container.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL writes these pages: the lane answers them")
    headers = await register_and_login(client)
    for path in ("/api/v1/webhooks", "/api/v1/accounts", "/api/v1/orders"):
        async with statements(container) as with_lane:
            assert (await client.get(path, headers=headers)).status_code == 200
        with _fast_reads(container, on=False):
            async with statements(container) as without:
                assert (await client.get(path, headers=headers)).status_code == 200
        assert with_lane == without, path


async def test_on_a_sqlite_file_bounded_reads_run_on_the_inline_engine(
    client: httpx.AsyncClient, container: Container
) -> None:
    """The lane's reads, and FastAPI's routes marked ``bounded`` when asked plainly (a user, a
    page sought in an index), run on the event loop's thread on SQLite (``db/inline_sqlite.py``);
    everything else keeps aiosqlite's threads, since it would hold the loop for its whole run."""
    if container.inline_engine is None:
        pytest.skip("PostgreSQL: the lane reads on the driver pool")
    headers, (account_id, _, _) = await _seed(client, container)
    lane = _lane(client)
    inline, threaded = {"inline"}, {"threaded"}
    webhook = await client.post("/api/v1/webhooks", headers=headers, json=_HOOK)
    assert webhook.status_code == 201, webhook.text
    expected = {
        "/api/v1/users/me": (inline, 1),  # the lane
        "/api/v1/transactions?limit=5": (inline, 1),
        f"/api/v1/accounts/{account_id}/transactions": (inline, 1),
        "/api/v1/accounts": (inline, 0),  # FastAPI, bounded
        f"/api/v1/accounts/{account_id}": (inline, 0),
        f"/api/v1/accounts/{account_id}/balance-snapshots?limit=2": (inline, 0),
        "/api/v1/holdings": (inline, 0),
        "/api/v1/connections": (inline, 0),
        "/api/v1/transfers": (inline, 0),
        "/api/v1/orders": (inline, 0),
        "/api/v1/webhooks": (inline, 0),
        f"/api/v1/webhooks/{webhook.json()['id']}/deliveries": (inline, 0),
        "/api/v1/orders?open=true": (threaded, 0),  # filtered row by row: not bounded
        "/api/v1/transactions?q=coffee": (threaded, 0),  # a text search: not bounded
        "/api/v1/accounts?currency=EUR": (threaded, 0),
        "/api/v1/net-worth": (threaded, 0),
        "/api/v1/users/me/sessions": (threaded, 0),
    }
    for path, (engines, by_lane) in expected.items():
        before = lane.answered
        async with _engines_seen(container) as seen:
            assert (await client.get(path, headers=headers)).status_code == 200, path
        assert lane.answered - before == by_lane, path
        assert {name for name, sent in seen.items() if sent} == engines, (path, seen)
    with _fast_reads(container, on=False):  # FastAPI's own /users/me is bounded too
        async with _engines_seen(container) as seen:
            assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
        assert {name for name, sent in seen.items() if sent} == inline


@asynccontextmanager
async def _engines_seen(container: Container) -> AsyncIterator[dict[str, list[str]]]:
    """The statements sent meanwhile through the inline engine and through the threaded one."""
    assert container.inline_engine is not None
    engines = {"threaded": container.engine, "inline": container.inline_engine}
    seen: dict[str, list[str]] = {name: [] for name in engines}
    listeners = {name: partial(_record, seen[name]) for name in engines}
    for name, engine in engines.items():
        event.listen(engine.sync_engine, "before_cursor_execute", listeners[name])
    try:
        yield seen
    finally:
        for name, engine in engines.items():
            event.remove(engine.sync_engine, "before_cursor_execute", listeners[name])


def _record(into: list[str], _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    into.append(statement)
