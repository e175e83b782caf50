"""What an upload promises: never duplicated (races and retries included), never erasing what is known."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from finsync.bootstrap import Container
from finsync.domain.entities import IdempotencyRecord, utcnow
from tests.api.helpers import register_and_login
from tests.api.test_imports import OFX, statement, upload

pytestmark = pytest.mark.e2e
Headers = dict[str, str]


async def _items(client: httpx.AsyncClient, headers: Headers, path: str) -> list[dict]:
    r = await client.get(path, headers=headers, params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _runs(client: httpx.AsyncClient, headers: Headers) -> int:
    total = 0
    for c in await _items(client, headers, "/api/v1/connections"):
        total += len(await _items(client, headers, f"/api/v1/connections/{c['id']}/sync-runs"))
    return total


async def test_concurrent_first_uploads_make_one_connection_and_no_duplicates(
    client: httpx.AsyncClient,
) -> None:
    headers = await register_and_login(client)
    data = statement(range(0, 200), ledger="500.00")
    first, second = await asyncio.gather(upload(client, headers, data), upload(client, headers, data))
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.json()["connection_id"] == second.json()["connection_id"]
    counts = sorted(
        (r.json()["counts"]["transactions_inserted"], r.json()["counts"]["transactions_already_present"])
        for r in (first, second)
    )
    assert counts == [(0, 200), (200, 0)]  # the second one deduplicated, as a sequential upload does
    assert len(await _items(client, headers, "/api/v1/connections")) == 1
    assert len(await _items(client, headers, "/api/v1/accounts")) == 1
    assert len(await _items(client, headers, "/api/v1/transactions")) == 200
    totals = (await client.get("/api/v1/net-worth", headers=headers)).json()["totals"]
    assert [(t["currency"], t["total"]) for t in totals] == [("USD", "500.00")]


async def test_reupload_adds_no_identical_snapshot(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = (OFX / "bank_medium.ofx").read_bytes()
    body = (await upload(client, headers, data)).json()
    again = (await upload(client, headers, data)).json()
    assert again["counts"]["snapshots"] == 0
    account_id = body["accounts"][0]["id"]
    snaps = await _items(client, headers, f"/api/v1/accounts/{account_id}/balance-snapshots")
    assert len(snaps) == 1
    # A statement with a new balance at a new date is a new snapshot.
    await upload(client, headers, statement(range(0, 5), ledger="10.00", as_of="20240131"))
    await upload(client, headers, statement(range(0, 5), ledger="20.00", as_of="20240229"))
    accounts = await _items(client, headers, "/api/v1/accounts")
    other = next(a for a in accounts if a["id"] != account_id)
    snaps = await _items(client, headers, f"/api/v1/accounts/{other['id']}/balance-snapshots")
    assert [s["balance"] for s in snaps] == ["20.00", "10.00"]


def _without_balance(data: bytes) -> bytes:
    start, end = data.index(b"<LEDGERBAL>"), data.index(b"</LEDGERBAL>") + len(b"</LEDGERBAL>")
    return data[:start] + data[end:]


async def test_a_statement_without_balance_keeps_the_known_one(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    await upload(client, headers, statement(range(0, 5), ledger="321.00", as_of="20240131"))
    later = await upload(client, headers, _without_balance(statement(range(5, 10))))
    assert later.status_code == 201, later.text
    (account,) = later.json()["accounts"]
    assert (account["balance"], account["balance_at"][:10]) == ("321.00", "2024-01-31")
    assert later.json()["counts"]["transactions_inserted"] == 5
    snaps = await _items(client, headers, f"/api/v1/accounts/{account['id']}/balance-snapshots")
    assert [s["balance"] for s in snaps] == ["321.00"]


async def test_a_statement_in_another_currency_does_not_change_the_account(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    await upload(client, headers, statement(range(0, 5), ledger="100.00", as_of="20240131"))
    euro = statement(range(5, 9), ledger="999.00", as_of="20240229").replace(b"<CURDEF>USD", b"<CURDEF>EUR")
    r = await upload(client, headers, euro)
    assert r.status_code == 201, r.text
    assert any("USD" in w and "EUR" in w for w in r.json()["warnings"]), r.json()["warnings"]
    assert r.json()["counts"]["transactions_inserted"] == 0
    (account,) = await _items(client, headers, "/api/v1/accounts")
    assert (account["currency"], account["balance"]) == ("USD", "100.00")
    assert len(await _items(client, headers, "/api/v1/transactions")) == 5


async def test_idempotency_key_replays_the_first_answer_and_writes_nothing(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    data = statement(range(0, 10))
    keyed = headers | {"Idempotency-Key": "upload-2024-01"}
    first = await client.post("/api/v1/imports", headers=keyed, files={"file": ("s.ofx", data)})
    assert first.status_code == 201, first.text
    runs = await _runs(client, headers)
    retry = await client.post("/api/v1/imports", headers=keyed, files={"file": ("s.ofx", data)})
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert await _runs(client, headers) == runs  # nothing written: not even a run
    other = await client.post("/api/v1/imports", headers=keyed, files={"file": ("s.ofx", data + b"\n")})
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    # Keys are per user: another user's identical key is theirs alone.
    headers2 = await register_and_login(client, "bob@example.com")
    theirs = await client.post(
        "/api/v1/imports",
        headers=headers2 | {"Idempotency-Key": "upload-2024-01"},
        files={"file": ("s.ofx", data)},
    )
    assert theirs.status_code == 201
    assert theirs.json()["connection_id"] != first.json()["connection_id"]


async def _claim(container: Container, email: str, key: str, age: timedelta, request: str = "x") -> None:
    """A key claimed ``age`` ago by a request that has not answered (still running, or died)."""
    async with container.uow() as uow:
        user = await uow.users.get_by_email(email)
        assert user is not None
        now = utcnow() - age
        record = IdempotencyRecord(user_id=user.id, key=key, request=request, created_at=now, expires_at=now)
        record.expires_at = now + timedelta(hours=24)
        assert await uow.idempotency.claim(record)
        await uow.commit()


async def test_idempotency_key_in_flight_answers_409_and_a_dead_claim_is_taken_over(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await register_and_login(client)
    data = statement(range(0, 3))
    files = {"file": ("s.ofx", data)}
    # The same request as the one in flight: same method, path, file name and bytes.
    from finsync.api.idempotency import digest

    request = digest("POST", "/imports", b"s.ofx", data)
    await _claim(container, "ada@example.com", "busy", timedelta(seconds=5), request)
    r = await client.post("/api/v1/imports", headers=headers | {"Idempotency-Key": "busy"}, files=files)
    assert r.status_code == 409, r.text
    assert await _items(client, headers, "/api/v1/connections") == []
    await _claim(container, "ada@example.com", "dead", timedelta(hours=1), request)
    r = await client.post("/api/v1/imports", headers=headers | {"Idempotency-Key": "dead"}, files=files)
    assert r.status_code == 201, r.text
    await _claim(container, "ada@example.com", "expired", timedelta(hours=25), request)
    r = await client.post("/api/v1/imports", headers=headers | {"Idempotency-Key": "expired"}, files=files)
    assert r.status_code == 201, r.text


async def test_a_rejected_upload_gives_its_key_back(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client) | {"Idempotency-Key": "k1"}
    bad = await client.post(
        "/api/v1/imports", headers=headers, files={"file": ("s.ofx", b"<OFX><BANKMSGSRSV1>")}
    )
    assert bad.status_code in (415, 422)
    good = await client.post(
        "/api/v1/imports", headers=headers, files={"file": ("s.ofx", b"<OFX><BANKMSGSRSV1>")}
    )
    assert good.status_code == bad.status_code  # ran again (not a replay, not a 409)
    assert "idempotent-replayed" not in good.headers


async def test_idempotency_key_must_be_printable(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client)
    for key in ("\u00e9t\u00e9".encode("latin-1"), b"tab\tkey", b"x" * 256):
        r = await client.post(
            "/api/v1/imports",
            headers=headers | {"Idempotency-Key": key},
            files={"file": ("s.ofx", statement(range(1)))},
        )
        assert r.status_code == 422, (key, r.text)


async def test_a_key_whose_connection_was_deleted_runs_again(client: httpx.AsyncClient) -> None:
    """Deleting the connection an upload went into deletes what it wrote: a retry with the same
    key is then a new upload, not a replay of an answer naming rows that no longer exist."""
    headers = await register_and_login(client) | {"Idempotency-Key": "upload-2024-01"}
    files = {"file": ("s.ofx", statement(range(0, 5)))}
    first = await client.post("/api/v1/imports", headers=headers, files=files)
    assert first.status_code == 201, first.text
    r = await client.delete(f"/api/v1/connections/{first.json()['connection_id']}", headers=headers)
    assert r.status_code == 204, r.text
    again = await client.post("/api/v1/imports", headers=headers, files=files)
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["connection_id"] != first.json()["connection_id"]
    assert again.json()["counts"]["transactions_inserted"] == 5
    assert len(await _items(client, headers, "/api/v1/transactions")) == 5
    # Keys naming other connections are kept: the new upload replays.
    replay = await client.post("/api/v1/imports", headers=headers, files=files)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == again.json()


async def test_expired_idempotency_keys_are_deleted_by_the_periodic_prune(
    client: httpx.AsyncClient, container: Container
) -> None:
    """Keys last 24 hours: the hourly periodic task deletes expired rows (answered or not), so
    the table does not grow for ever; a live key, and an order's key (on the order row), stay."""
    await register_and_login(client)
    await _claim(container, "ada@example.com", "old", timedelta(hours=25))
    await _claim(container, "ada@example.com", "stale", timedelta(hours=24, seconds=1))
    await _claim(container, "ada@example.com", "fresh", timedelta(hours=23))
    prune = {p.name: p for p in container.job_types.periodic}["prune_idempotency_keys"]
    await prune.call(utcnow())
    async with container.uow() as uow:
        user = await uow.users.get_by_email("ada@example.com")
        assert user is not None
        assert await uow.idempotency.get(user.id, "old") is None
        assert await uow.idempotency.get(user.id, "stale") is None
        assert await uow.idempotency.get(user.id, "fresh") is not None
