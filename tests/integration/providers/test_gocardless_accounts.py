"""GoCardless accounts through the HTTP API and a real database: stable keys across re-consent,
and a bank link that is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from finsync.bootstrap import Container
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.consent import submit_consent
from tests.fakes.gocardless import SANDBOX, SECRET_ID, SECRET_KEY, FakeBankAccount, FakeGoCardless
from tests.fakes.gocardless import with_sample_data as sample
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e
Api = tuple[httpx.AsyncClient, Container, dict[str, str]]


@pytest.fixture
def fake(clock: VirtualClock) -> FakeGoCardless:
    bank = sample(FakeGoCardless(clock))
    card = FakeBankAccount(SANDBOX, iban="", name="Credit card", cash_account_type="CARD")
    today = bank.today()
    card.balances = [{"balanceAmount": {"amount": "-310.20", "currency": "GBP"}, "balanceType": "expected"}]
    card.booked = [
        _tx(today - timedelta(days=d), f"-{d}.99", f"SHOP {d}", transactionId=f"card-{d}") for d in (2, 5, 9)
    ]
    bank.bank_accounts.append(card)  # no IBAN: only the bank's resourceId names it
    return bank


def _tx(day: Any, amount: str, text: str, **ids: str) -> dict[str, Any]:
    return {"bookingDate": day.isoformat(), "valueDate": day.isoformat(), "creditorName": text,
            "transactionAmount": {"amount": amount, "currency": "GBP"},
            "remittanceInformationUnstructured": text, **ids}  # fmt: skip


@pytest.fixture
async def api(
    database_url: str, tmp_path: Path, clock: VirtualClock, fake: FakeGoCardless
) -> AsyncIterator[Api]:
    with serve(fake.app) as base:
        settings = make_settings(
            database_url,
            tmp_path,
            public_url="http://testserver",
            gocardless_url=f"{base}/api/v2",
            gocardless_secret_id=SECRET_ID,
            gocardless_secret_key=SECRET_KEY,
            provider_timeout_seconds=5.0,
        )
        options = {
            "clock": lambda: datetime.fromtimestamp(clock.now(), UTC),
            "adapter_options": {"clock": clock},
        }
        async with built(settings, **options) as container, api_client(container) as client:
            yield client, container, await register_and_login(client)


async def _consent(api: Api, url: str) -> None:
    client, container, _ = api
    location = urlsplit(await submit_consent(url))
    r = await client.get(f"{location.path}?{location.query}")
    assert r.status_code == 200, r.text
    await container.jobs.drain()


async def _items(api: Api, path: str) -> list[dict[str, Any]]:
    client, _, headers = api
    r = await client.get(path, headers=headers, params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _link(api: Api) -> str:
    client, _, headers = api
    body = {"provider": "gocardless", "options": {"institution_id": SANDBOX}}
    r = await client.post("/api/v1/connections", headers=headers, json=body)
    assert r.status_code == 201, r.text
    await _consent(api, r.json()["authorization_url"])
    return str(r.json()["id"])


async def _last_run(api: Api, connection_id: str) -> dict[str, Any]:
    runs = await _items(api, f"/api/v1/connections/{connection_id}/sync-runs")
    return max(runs, key=lambda run: str(run["started_at"]))


async def test_reconsent_with_every_id_new_keeps_accounts_and_continues_history(
    api: Api, fake: FakeGoCardless, clock: VirtualClock
) -> None:
    client, _, headers = api
    connection_id = await _link(api)
    before = {a["provider_account_id"]: a for a in await _items(api, "/api/v1/accounts")}
    assert len(before) == 3
    card_key = next(k for k, a in before.items() if a["type"] == "credit_card")
    assert card_key.startswith("resource:")
    transactions_before = await _items(api, "/api/v1/transactions")

    # The bank issues new GoCardless ids, and new resourceIds for the IBAN accounts too (the
    # IBAN names those); the card keeps only its resourceId. Meanwhile the card is used again.
    old_ids = {a.id for a in fake.bank_accounts}
    fake.renew_ids()
    for account in fake.bank_accounts:
        if account.iban:
            account.resource_id = f"res-renewed-{account.iban[-4:]}"
    clock.advance(60)
    card = fake.bank_accounts[-1]
    card.booked.append(_tx(fake.today(), "-7.25", "CAFE", transactionId="card-new"))
    r = await client.post(f"/api/v1/connections/{connection_id}/reauthorize", headers=headers)
    assert r.status_code == 200, r.text
    await _consent(api, r.json()["authorization_url"])

    assert (await _last_run(api, connection_id))["status"] == "succeeded"
    assert not old_ids & {a.id for a in fake.bank_accounts}
    after = {a["provider_account_id"]: a for a in await _items(api, "/api/v1/accounts")}
    assert {k: a["id"] for k, a in after.items()} == {k: a["id"] for k, a in before.items()}
    transactions = await _items(api, "/api/v1/transactions")
    keys = [(t["account_id"], t["provider_transaction_id"]) for t in transactions]
    assert len(keys) == len(set(keys))  # nothing duplicated
    assert len(transactions) == len(transactions_before) + 1
    new = next(t for t in transactions if t["provider_transaction_id"] == "card-new")
    assert new["account_id"] == after[card_key]["id"]  # the card's history continues
    conn = (await client.get(f"/api/v1/connections/{connection_id}", headers=headers)).json()
    assert conn["status"] == "active"


async def test_a_bank_link_gone_at_gocardless_needs_reauth_and_keeps_data(
    api: Api, fake: FakeGoCardless, clock: VirtualClock
) -> None:
    client, container, headers = api
    connection_id = await _link(api)
    accounts, transactions = await _items(api, "/api/v1/accounts"), await _items(api, "/api/v1/transactions")
    fake.unlink(fake.bank_accounts[0].id)  # 404 "Account not found"
    clock.advance(60)
    r = await client.post(f"/api/v1/connections/{connection_id}/sync", headers=headers)
    assert r.status_code == 202, r.text
    await container.jobs.drain()
    run = (await client.get(f"/api/v1/sync-runs/{r.json()['id']}", headers=headers)).json()
    assert (run["status"], run["error_type"]) == ("failed", "provider-auth")
    conn = (await client.get(f"/api/v1/connections/{connection_id}", headers=headers)).json()
    assert conn["status"] == "needs_reauth"
    assert "reconnect this bank" in conn["last_error"]
    assert await _items(api, "/api/v1/accounts") == accounts
    assert await _items(api, "/api/v1/transactions") == transactions
