"""Webhooks end to end: signed deliveries (verified with the `standardwebhooks` package) to a
receiver the test runs on 127.0.0.1, retries, SSRF refusals, expiry notices, attention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import standardwebhooks

from finsync.bootstrap import Container
from finsync.domain.entities import Connection, SyncRun
from finsync.domain.enums import ConnectionStatus, SyncTrigger
from finsync.domain.errors import ProviderAuthError, RateLimited
from finsync.domain.webhooks import DeliveryStatus, WebhookDelivery
from finsync.providers.registry import ProviderRegistry
from tests.api.helpers import register_and_login
from tests.conftest import SHARED, api_client, built, make_settings
from tests.factories import account, seed_connection
from tests.fakes.memory import MemoryProviders
from tests.fakes.receiver import Receiver
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e
FAST = {
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_cap_seconds": 0.2,
    "webhook_max_attempts": 3,
    "access_token_minutes": 90 * 24 * 60,  # the tests move the clock by days (up to 31)
    "refresh_token_days": 90,
}
OFX = SHARED / "fixtures" / "ofx" / "bank_medium.ofx"


class Clock:
    """The container's clock, moved by the test (days pass in no time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    fake = Receiver()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def resolver_answers() -> list[str]:
    """What the fake DNS answers, one per look-up (the last one repeats); empty: the system's."""
    return []


@pytest.fixture
async def hooked(
    database_url: str,
    tmp_path: Path,
    registry: ProviderRegistry,
    clock: Clock,
    resolver_answers: list[str],
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    allowed = getattr(request, "param", ["127.0.0.1"])
    settings = make_settings(database_url, tmp_path, webhook_allowed_hosts=allowed, **FAST)
    options: dict[str, Any] = {}
    if resolver_answers:
        answers = list(resolver_answers)  # the parameter's list is shared by both databases' runs

        async def resolve(host: str, port: int) -> list[str]:
            return [answers.pop(0) if len(answers) > 1 else answers[0]]

        options["webhook_options"] = {"resolver": resolve}
    async with built(settings, registry=registry, clock=clock, **options) as c, api_client(c) as client:
        yield client, c


async def settle(container: Container, done: Callable[[], Any]) -> None:
    """Run queued jobs (retries included, which wait a little) until ``done()`` holds."""
    async with asyncio.timeout(15):
        while True:
            await container.jobs.drain()
            if await done():
                return
            await asyncio.sleep(0.05)


async def deliveries(
    client: httpx.AsyncClient, headers: dict[str, str], hook_id: str
) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def finished(
    client: httpx.AsyncClient, headers: dict[str, str], hook_id: str, count: int
) -> Callable[[], Any]:
    async def check() -> bool:
        items = await deliveries(client, headers, hook_id)
        return len(items) >= count and all(d["status"] != "pending" for d in items)

    return check


async def owner(client: httpx.AsyncClient, container: Container) -> tuple[dict[str, str], Any]:
    headers = await register_and_login(client, "hooks@example.com")
    async with container.uow() as uow:
        user = await uow.users.get_by_email("hooks@example.com")
    return headers, user


async def create_hook(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, events: list[str]
) -> dict[str, Any]:
    r = await client.post("/api/v1/webhooks", headers=headers, json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_sync_events_are_signed_per_standard_webhooks(
    hooked: tuple[httpx.AsyncClient, Container],
    receiver: tuple[Receiver, str],
    memory_providers: MemoryProviders,
) -> None:
    client, container = hooked
    fake, base = receiver
    headers, user = await owner(client, container)
    hook = await create_hook(client, headers, f"{base}/hook", ["sync.succeeded", "sync.failed"])
    assert hook["secret"].startswith("whsec_")
    listed = (await client.get("/api/v1/webhooks", headers=headers)).json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=headers)).json()

    memory_providers.accounts = [account("a")]
    connection = await seed_connection(container, user)
    run = (await client.post(f"/api/v1/connections/{connection.id}/sync", headers=headers)).json()
    await settle(container, finished(client, headers, hook["id"], 1))

    (got,) = await fake.wait_for(1)
    verified = standardwebhooks.Webhook(hook["secret"]).verify(got.body, got.headers)
    assert verified["type"] == "sync.succeeded"
    assert verified["data"]["connection_id"] == str(connection.id)
    assert verified["data"]["sync_run_id"] == run["id"]
    assert got.host == base.removeprefix("http://")  # sent to the checked address, named as given
    with pytest.raises(standardwebhooks.WebhookVerificationError):  # another secret does not verify
        standardwebhooks.Webhook("whsec_" + "A" * 43 + "=").verify(got.body, got.headers)
    (delivery,) = await deliveries(client, headers, hook["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["id"] == str(UUID(got.headers["webhook-id"].removeprefix("msg_")))
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [(204, None)]

    # A failed sync is its own event; the secret, once rotated, signs from then on.
    rotated = (await client.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", headers=headers)).json()
    assert rotated["secret"] != hook["secret"]
    memory_providers.fail_on["fetch_accounts"] = RateLimited("slow down", retry_after=60)
    await client.post(f"/api/v1/connections/{connection.id}/sync", headers=headers)
    await settle(container, finished(client, headers, hook["id"], 2))
    second = (await fake.wait_for(2))[1]
    event = standardwebhooks.Webhook(rotated["secret"]).verify(second.body, second.headers)
    assert (event["type"], event["data"]["error_type"]) == ("sync.failed", "provider-rate-limited")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(hook["secret"]).verify(second.body, second.headers)
    got_connection = (await client.get(f"/api/v1/connections/{connection.id}", headers=headers)).json()
    assert got_connection["attention"] == "rate_limited"


async def test_retries_after_500_then_records_every_attempt(
    hooked: tuple[httpx.AsyncClient, Container],
    receiver: tuple[Receiver, str],
    memory_providers: MemoryProviders,
) -> None:
    client, container = hooked
    fake, base = receiver
    fake.statuses = [500, 503]
    headers, user = await owner(client, container)
    hook = await create_hook(client, headers, f"{base}/hook", ["sync.succeeded"])
    memory_providers.accounts = [account("a")]
    connection = await seed_connection(container, user)
    await client.post(f"/api/v1/connections/{connection.id}/sync", headers=headers)
    await settle(container, finished(client, headers, hook["id"], 1))

    (delivery,) = await deliveries(client, headers, hook["id"])
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 204]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500", "HTTP 503", None]
    received = await fake.wait_for(3)
    assert len({r.headers["webhook-id"] for r in received}) == 1  # one message, three attempts
    for r in received:
        standardwebhooks.Webhook(hook["secret"]).verify(r.body, r.headers)

    # Out of attempts (3 here): failed, and the sync's own outcome never depended on it.
    fake.statuses = [500, 500, 500]
    await client.post(f"/api/v1/connections/{connection.id}/sync", headers=headers)
    await settle(container, finished(client, headers, hook["id"], 2))
    latest = (await deliveries(client, headers, hook["id"]))[0]
    assert latest["status"] == "failed"
    assert [a["status_code"] for a in latest["attempts"]] == [500, 500, 500]
    runs = (await client.get(f"/api/v1/connections/{connection.id}/sync-runs", headers=headers)).json()
    assert [r["status"] for r in runs["items"]] == ["succeeded", "succeeded"]


@pytest.mark.parametrize("hooked", [[]], indirect=True)  # no allow-list: the defaults
async def test_private_targets_are_refused_without_the_allow_list(
    hooked: tuple[httpx.AsyncClient, Container],
) -> None:
    client, container = hooked
    headers, _ = await owner(client, container)
    for url in (
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://[::127.0.0.1]/hook",  # IPv4-compatible: reserved
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of the metadata address
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",
        "http://hooks.example.com/hook",  # https only
        "ftp://hooks.example.com/hook",
        "https://user:pw@hooks.example.com/hook",
    ):
        r = await client.post(
            "/api/v1/webhooks", headers=headers, json={"url": url, "events": ["sync.failed"]}
        )
        assert r.status_code == 422, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/webhooks", headers=headers)).json()["items"] == []


@pytest.mark.parametrize("hooked", [[]], indirect=True)
@pytest.mark.parametrize("resolver_answers", [["93.184.216.34", "127.0.0.1"]])
async def test_a_name_that_resolves_privately_at_delivery_is_refused(
    hooked: tuple[httpx.AsyncClient, Container],
    receiver: tuple[Receiver, str],
    memory_providers: MemoryProviders,
) -> None:
    """DNS rebinding: public when the webhook is created, loopback when it is delivered."""
    client, container = hooked
    fake, base = receiver
    port = base.rsplit(":", 1)[1]
    headers, user = await owner(client, container)
    hook = await create_hook(client, headers, f"https://hooks.example.com:{port}/hook", ["sync.succeeded"])
    memory_providers.accounts = [account("a")]
    connection = await seed_connection(container, user)
    await client.post(f"/api/v1/connections/{connection.id}/sync", headers=headers)
    await settle(container, finished(client, headers, hook["id"], 1))
    (delivery,) = await deliveries(client, headers, hook["id"])
    assert delivery["status"] == "failed"  # refused: not retried
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("refused: hooks.example.com resolves to a loopback")
    assert fake.received == []


async def test_needs_reauth_expiring_and_import_events(
    hooked: tuple[httpx.AsyncClient, Container],
    receiver: tuple[Receiver, str],
    memory_providers: MemoryProviders,
    clock: Clock,
) -> None:
    client, container = hooked
    fake, base = receiver
    headers, user = await owner(client, container)
    events = ["connection.needs_reauth", "connection.expiring", "import.completed"]
    hook = await create_hook(client, headers, f"{base}/hook", events)
    secret = standardwebhooks.Webhook(hook["secret"])

    def types() -> list[tuple[str, Any]]:
        out = []
        for r in fake.received:
            event = secret.verify(r.body, r.headers)
            out.append((event["type"], event["data"].get("notice_days")))
        return out

    # A 90-day consent granted 80 days ago: told 7 days ahead and 1 day ahead, once each.
    now = clock.now
    bank = await _connection(container, user, "bank", now + timedelta(days=10), now - timedelta(days=80))
    # A 7-day token (Schwab-like): a 7-day notice would come the day it was granted; 1 day only.
    weekly = await _connection(container, user, "weekly", now + timedelta(days=6), now - timedelta(days=1))
    assert await container.deliverer.notify_expiring() == 0  # bank: 10 days away; weekly: no 7-day
    clock.now = now + timedelta(days=4)  # bank: 6 days left
    assert await container.deliverer.notify_expiring() == 1
    assert await container.deliverer.notify_expiring() == 0  # once per threshold
    clock.now = now + timedelta(days=5, hours=12)  # weekly: 12 hours left
    assert await container.deliverer.notify_expiring() == 1
    clock.now = now + timedelta(days=9, hours=12)  # bank: 12 hours left
    assert await container.deliverer.notify_expiring() == 1
    assert await container.deliverer.notify_expiring() == 0
    await settle(container, finished(client, headers, hook["id"], 3))
    assert sorted(types()) == [
        ("connection.expiring", 1),
        ("connection.expiring", 1),
        ("connection.expiring", 7),
    ]
    listed = (await client.get("/api/v1/connections?attention=true", headers=headers)).json()["items"]
    assert {(c["name"], c["attention"]) for c in listed} == {("weekly", "needs_reauth"), ("bank", "expiring")}

    # Lapsed: the periodic expiry marks it and tells the client.
    assert await container.scheduler.expire_lapsed() == 1  # weekly
    # A provider refusing the credentials: needs_reauth once, not again on the next failure.
    memory_providers.fail_on["fetch_accounts"] = ProviderAuthError("token revoked")
    plain = await seed_connection(container, user)
    await client.post(f"/api/v1/connections/{plain.id}/sync", headers=headers)
    await settle(container, finished(client, headers, hook["id"], 5))
    # A statement file: import.completed.
    data = await asyncio.to_thread(OFX.read_bytes)
    files = {"file": ("s.ofx", data, "application/x-ofx")}
    r = await client.post("/api/v1/imports", headers=headers, files=files)
    assert r.status_code == 201, r.text
    await settle(container, finished(client, headers, hook["id"], 6))
    kinds = [t for t, _ in types()]
    assert kinds.count("connection.needs_reauth") == 2
    assert kinds.count("import.completed") == 1
    reauth = [secret.verify(r.body, r.headers) for r in fake.received if b"needs_reauth" in r.body]
    assert {e["data"]["connection_id"] for e in reauth} == {str(weekly.id), str(plain.id)}
    assert bank.id != weekly.id


async def _connection(
    container: Container, user: Any, name: str, expires_at: datetime, granted: datetime
) -> Connection:
    connection = Connection(
        user_id=user.id,
        provider="memory",
        name=name,
        identity=name,
        status=ConnectionStatus.ACTIVE,
        expires_at=expires_at,
        authorized_at=granted,
        created_at=granted,
        updated_at=granted,
    )
    async with container.uow() as uow:
        await uow.connections.add(connection)
        await uow.commit()
    return connection


async def test_attention_rules_and_a_user_set_expiry(
    hooked: tuple[httpx.AsyncClient, Container], clock: Clock
) -> None:
    client, container = hooked
    headers, user = await owner(client, container)
    now = clock.now
    states: dict[str, dict[str, Any]] = {
        "ok": {},
        "reauth": {"status": ConnectionStatus.NEEDS_REAUTH},
        "lapsed": {"expires_at": now - timedelta(minutes=1)},
        "soon": {"expires_at": now + timedelta(days=6)},
        "later": {"expires_at": now + timedelta(days=8)},
        "one_failure": {"status": ConnectionStatus.ERROR, "failure_count": 1},
        "failing": {
            "status": ConnectionStatus.ERROR,
            "failure_count": 2,
            "expires_at": now + timedelta(days=1),
        },
        "limited": {"last_error_code": "provider-rate-limited"},
    }
    ids = {}
    for name, fields in states.items():
        connection = Connection(
            user_id=user.id, provider="memory", name=name, identity=name, status=ConnectionStatus.ACTIVE
        )
        for key, value in fields.items():
            setattr(connection, key, value)
        async with container.uow() as uow:
            await uow.connections.add(connection)
            await uow.commit()
        ids[name] = str(connection.id)
    every = (await client.get("/api/v1/connections", headers=headers)).json()["items"]
    expected = {
        "ok": None,
        "reauth": "needs_reauth",
        "lapsed": "needs_reauth",
        "soon": "expiring",
        "later": None,
        "one_failure": None,
        "failing": "failing",
        "limited": "rate_limited",
    }
    assert {c["name"]: c["attention"] for c in every} == expected
    needing = (await client.get("/api/v1/connections?attention=true", headers=headers)).json()["items"]
    assert sorted(c["name"] for c in needing) == sorted(k for k, v in expected.items() if v)
    pages, cursor = [], None  # the filter pages like the plain list
    while True:
        query = "attention=true&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(f"/api/v1/connections?{query}", headers=headers)).json()
        pages += [c["name"] for c in body["items"]]
        if not (cursor := body["next_cursor"]):
            break
    assert sorted(pages) == sorted(k for k, v in expected.items() if v)

    # An API key whose lifetime finsync cannot read: the user says when it expires.
    url = f"/api/v1/connections/{ids['ok']}"
    when = (now + timedelta(days=3)).replace(microsecond=0)
    r = await client.patch(url, headers=headers, json={"expires_at": when.isoformat()})
    assert r.status_code == 200, r.text
    assert (r.json()["expires_at"], r.json()["attention"]) == (
        when.isoformat().replace("+00:00", "Z"),
        "expiring",
    )
    for bad in ((now - timedelta(days=1)).isoformat(), "3000-01-01T00:00:00Z", 1700000000):
        r = await client.patch(url, headers=headers, json={"expires_at": bad})
        assert r.status_code == 422, (bad, r.text)
    assert (await client.get(url, headers=headers)).json()["attention"] == "expiring"  # unchanged
    r = await client.patch(url, headers=headers, json={"expires_at": None})
    assert (r.json()["expires_at"], r.json()["attention"]) == (None, None)
    # A provider that reports its own expiry (OAuth, bank consent) keeps it.
    oauth = Connection(user_id=user.id, provider="schwab", name="s", status=ConnectionStatus.ACTIVE)
    async with container.uow() as uow:
        await uow.connections.add(oauth)
        await uow.commit()
    r = await client.patch(
        f"/api/v1/connections/{oauth.id}", headers=headers, json={"expires_at": when.isoformat()}
    )
    assert r.status_code == 422, r.text
    assert "only for API-key connections" in r.json()["detail"]


async def test_a_delivery_whose_job_was_lost_is_queued_again(
    hooked: tuple[httpx.AsyncClient, Container], receiver: tuple[Receiver, str], clock: Clock
) -> None:
    """A crash between the commit and the hand-over leaves a pending delivery with no job."""
    client, container = hooked
    fake, base = receiver
    headers, user = await owner(client, container)
    hook = await create_hook(client, headers, f"{base}/hook", ["sync.failed"])
    lost = WebhookDelivery(
        user_id=user.id,
        webhook_id=UUID(hook["id"]),
        event="sync.failed",
        payload={"type": "sync.failed", "timestamp": "2026-11-29T12:00:00Z", "data": {}},
        created_at=clock.now,
    )
    async with container.uow() as uow:  # written, its job never handed over
        assert await uow.webhooks.add_deliveries([lost]) == [lost.id]
        await uow.commit()
    assert await container.deliverer.requeue_lost() == 0  # young: its job may still be on its way
    clock.now += timedelta(minutes=11)
    assert await container.deliverer.requeue_lost() == 1
    await settle(container, finished(client, headers, hook["id"], 1))
    (got,) = await fake.wait_for(1)
    assert standardwebhooks.Webhook(hook["secret"]).verify(got.body, got.headers)["type"] == "sync.failed"
    assert await container.deliverer.requeue_lost() == 0
    (delivery,) = await deliveries(client, headers, hook["id"])
    assert delivery["status"] == DeliveryStatus.SUCCEEDED.value

    # Finished deliveries are kept 30 days (FINSYNC_WEBHOOK_RETENTION_DAYS), then pruned.
    pending = WebhookDelivery(
        user_id=user.id, webhook_id=UUID(hook["id"]), event="sync.failed", payload={}, created_at=clock.now
    )
    async with container.uow() as uow:
        await uow.webhooks.add_deliveries([pending])
        await uow.commit()
    clock.now += timedelta(days=29)
    assert await container.deliverer.prune() == 0
    clock.now += timedelta(days=2)
    assert await container.deliverer.prune() == 1  # the one that finished; never a pending one
    assert [d["id"] for d in await deliveries(client, headers, hook["id"])] == [str(pending.id)]


async def test_concurrent_expiry_checks_notify_once(
    hooked: tuple[httpx.AsyncClient, Container], receiver: tuple[Receiver, str], clock: Clock
) -> None:
    """Once per threshold is a unique constraint (webhook, dedupe key), not a read-then-write:
    checks racing each other (two deployments' ticks, a slow one overlapping) add one delivery."""
    client, container = hooked
    _, base = receiver
    headers, user = await owner(client, container)
    hook = await create_hook(client, headers, f"{base}/hook", ["connection.expiring"])
    now = clock.now
    await _connection(container, user, "bank", now + timedelta(days=3), now - timedelta(days=87))
    added = await asyncio.gather(*(container.deliverer.notify_expiring() for _ in range(4)))
    assert sum(added) == 1
    await settle(container, finished(client, headers, hook["id"], 1))
    assert len(await deliveries(client, headers, hook["id"])) == 1


async def test_the_webhook_limit_holds_when_creations_race(
    hooked: tuple[httpx.AsyncClient, Container], receiver: tuple[Receiver, str]
) -> None:
    """At most 20 webhooks per user is a lock, not a count-then-insert: 30 creations at once
    leave exactly 20, and the other 10 get the documented problem (nothing of them stored)."""
    client, container = hooked
    _, base = receiver
    headers, _ = await owner(client, container)
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/v1/webhooks",
                headers=headers,
                json={"url": f"{base}/hook{i}", "events": ["sync.failed"]},
            )
            for i in range(30)
        )
    )
    assert sorted(r.status_code for r in answers) == [201] * 20 + [422] * 10
    for refused in (r for r in answers if r.status_code == 422):
        assert refused.headers["content-type"] == "application/problem+json"
        assert "at most 20 webhooks per user" in refused.json()["detail"]
    r = await client.get("/api/v1/webhooks", headers=headers, params={"limit": 100})
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 20


async def test_an_import_into_an_existing_account_is_an_import_completed_event(
    hooked: tuple[httpx.AsyncClient, Container], receiver: tuple[Receiver, str]
) -> None:
    """`import.completed` fires for every imported statement file, including one loaded into an
    existing account (`?account_id=`), not only for a file that gets its own account."""
    client, container = hooked
    fake, base = receiver
    headers, _ = await owner(client, container)
    hook = await create_hook(client, headers, f"{base}/hook", ["import.completed"])
    data = await asyncio.to_thread(OFX.read_bytes)
    files = {"file": ("s.ofx", data, "application/x-ofx")}
    first = await client.post("/api/v1/imports", headers=headers, files=files)
    assert first.status_code == 201, first.text
    account_id = first.json()["accounts"][0]["id"]
    again = await client.post(
        "/api/v1/imports", headers=headers, files=files, params={"account_id": account_id}
    )
    assert again.status_code == 201, again.text
    await settle(container, finished(client, headers, hook["id"], 2))
    received = await fake.wait_for(2)
    events = [standardwebhooks.Webhook(hook["secret"]).verify(r.body, r.headers) for r in received]
    assert [e["type"] for e in events] == ["import.completed", "import.completed"]
    runs = {first.json()["sync_run_id"], again.json()["sync_run_id"]}
    assert {e["data"]["sync_run_id"] for e in events} == runs
    assert events[1]["data"]["format"] == again.json()["format"]


async def test_a_sync_closed_as_interrupted_is_a_sync_failed_event(
    hooked: tuple[httpx.AsyncClient, Container], receiver: tuple[Receiver, str], clock: Clock
) -> None:
    """A run whose job was lost (its worker stopped) ends `failed` by the reaper: a client told
    by webhooks instead of polling must hear of it like any other failed sync."""
    client, container = hooked
    fake, base = receiver
    headers, user = await owner(client, container)
    hook = await create_hook(client, headers, f"{base}/hook", ["sync.failed"])
    connection = await seed_connection(container, user)
    run = SyncRun(
        user_id=user.id,
        connection_id=connection.id,
        trigger=SyncTrigger.SCHEDULED,
        started_at=clock.now - timedelta(minutes=5),
    )
    async with container.uow() as uow:  # left running by a process that stopped
        await uow.sync_runs.add(run)
        await uow.commit()
    assert (await container.scheduler.reap_stale_runs(grace=timedelta(0))).runs_failed == 1
    await settle(container, finished(client, headers, hook["id"], 1))
    (got,) = await fake.wait_for(1)
    event = standardwebhooks.Webhook(hook["secret"]).verify(got.body, got.headers)
    assert event["type"] == "sync.failed"
    assert event["data"]["sync_run_id"] == str(run.id)
    assert (event["data"]["run_status"], event["data"]["error_type"]) == ("failed", "interrupted")
    assert event["data"]["connection_id"] == str(connection.id)
    assert (await container.scheduler.reap_stale_runs(grace=timedelta(0))).runs_failed == 0
    assert len(await deliveries(client, headers, hook["id"])) == 1  # once


async def test_an_event_that_cannot_be_recorded_is_dropped_not_the_change_it_reports(
    client: httpx.AsyncClient, container: Container
) -> None:
    """A delivery whose webhook was deleted meanwhile (another request, between ``subscribed``
    and the insert): the event is logged and dropped; the transaction it rides in commits."""
    headers = await register_and_login(client)
    user_id = UUID((await client.get("/api/v1/users/me", headers=headers)).json()["id"])
    gone = WebhookDelivery(user_id=user_id, webhook_id=UUID(int=1), event="sync.failed", payload={})
    connection = Connection(user_id=user_id, provider="memory", name="kept", status=ConnectionStatus.ACTIVE)
    async with container.uow() as uow:
        await uow.connections.add(connection)
        assert await uow.webhooks.add_deliveries([gone]) == []
        await uow.commit()
    async with container.uow() as uow:
        assert await uow.connections.get(connection.id, user_id) is not None
