"""Example Bank: the adapter against its fake server, then end to end through finsync's API
on both databases, registered the way a plugin is (its METADATA next to the built-ins)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve

from fake_examplebank import KEY, BankStore, create_app
from finsync.domain.errors import ProviderAuthError
from finsync.domain.ports import ProviderSession
from finsync.providers.registry import ProviderRegistry, builtin_providers
from finsync.providers.spec import check_adapter
from finsync_examplebank import METADATA
from finsync_examplebank.adapter import ExampleBankAdapter, ExampleBankSettings, create_adapter

pytestmark = pytest.mark.integration
DAY = 86_400.0


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def bank(clock: VirtualClock) -> Iterator[tuple[BankStore, str]]:
    store = BankStore()
    store.add_account("acc-1", "EUR", "1520.10")
    store.add_account("acc-2", "EUR", "9000.00", kind="savings")
    for day, amount in enumerate(["2500.00", "-12.30", "-64.99"]):
        store.add_transaction("acc-1", amount, clock.now() - (10 - day) * DAY, f"item {day}")
    store.add_transaction("acc-2", "100.00", clock.now() - DAY, "savings plan")
    with serve(create_app(clock, store)) as url:
        yield store, url


def adapter(url: str, clock: VirtualClock, state: dict[str, Any], key: str = KEY) -> ExampleBankAdapter:
    session = ProviderSession(connection_id=uuid.uuid4(), credentials={"api_key": key}, state=state)
    return create_adapter(session, ExampleBankSettings(_env_file=None, url=url), clock=clock)  # type: ignore[call-arg]


def test_metadata_is_complete_and_reads_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert METADATA.problems() == []
    monkeypatch.setenv("FINSYNC_EXAMPLEBANK_URL", "https://proxy.example.invalid")
    assert ExampleBankSettings(_env_file=None).url == "https://proxy.example.invalid"  # type: ignore[call-arg]


def test_once_installed_its_entry_point_registers_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``pip install`` writes (a dist-info with the entry point) is all finsync needs."""
    dist = tmp_path / "finsync_examplebank-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: finsync-examplebank\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[finsync.providers]\nexamplebank = finsync_examplebank:METADATA\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ProviderRegistry.default().get("examplebank") is METADATA


async def test_sync_reads_every_page_then_resumes_each_account_from_its_cursor(
    bank: tuple[BankStore, str], clock: VirtualClock
) -> None:
    store, url = bank
    state: dict[str, Any] = {}
    sync = adapter(url, clock, state)
    assert check_adapter(METADATA, sync) == []
    accounts = await sync.fetch_accounts()
    assert [(a.provider_account_id, a.balance) for a in accounts] == [
        ("acc-1", Decimal("1520.10")),
        ("acc-2", Decimal("9000.00")),
    ]
    first = [await sync.fetch_transactions(a) for a in accounts]
    assert [len(b.transactions) for b in first] == [3, 1]  # acc-1 took two pages
    assert str(first[0].transactions[1].amount) == "-12.30"
    assert state["cursors"] == {"acc-1": "c3", "acc-2": "c1"}
    await sync.aclose()

    store.add_transaction("acc-1", "-5.00", clock.now(), "new")
    store.seen_after.clear()
    again = adapter(url, clock, state)
    batches = [await again.fetch_transactions(a) for a in accounts]
    await again.aclose()
    assert [[t.description for t in b.transactions] for b in batches] == [["new"], []]
    assert store.seen_after == ["c3", "c1"]  # each account resumed where it stopped


async def test_a_wrong_key_is_refused_at_once_in_words_without_the_key(
    bank: tuple[BankStore, str], clock: VirtualClock
) -> None:
    store, url = bank
    sync = adapter(url, clock, {}, key="fake-wrong-key-9999")
    with pytest.raises(ProviderAuthError, match="Example Bank rejected the API key") as refused:
        await sync.validate()
    await sync.aclose()
    assert "fake-wrong-key-9999" not in str(refused.value)
    assert store.requests["accounts"] == 1  # validation never retries: a person is waiting


@pytest.fixture
async def api(
    database_url: str, tmp_path: Path, clock: VirtualClock, bank: tuple[BankStore, str]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, tmp_path, providers={"examplebank": {"url": bank[1]}})
    registry = ProviderRegistry([*builtin_providers(), METADATA])  # what the entry point does
    async with (
        built(settings, registry=registry, adapter_options={"clock": clock}) as container,
        api_client(container) as client,
    ):
        client.headers.update(await register_and_login(client))
        client.event_hooks["response"].append(lambda _: container.jobs.drain())
        yield client


async def test_connect_sync_and_read_through_the_api(api: httpx.AsyncClient) -> None:
    listed = {p["slug"]: p for p in (await api.get("/api/v1/providers")).json()}
    assert listed["examplebank"]["configured"] is True
    body = {"provider": "examplebank", "name": "Bank", "credentials": {"api_key": KEY}}
    created = await api.post("/api/v1/connections", json=body)
    assert created.status_code == 201, created.text
    run = (await api.get(f"/api/v1/sync-runs/{created.json()['sync_run_id']}")).json()
    assert run["status"] == "succeeded", run
    accounts = (await api.get("/api/v1/accounts")).json()["items"]
    assert sorted(a["type"] for a in accounts) == ["checking", "savings"]
    txns = (await api.get("/api/v1/transactions", params={"limit": 50})).json()["items"]
    assert sorted(t["amount"] for t in txns) == ["-12.30", "-64.99", "100.00", "2500.00"]


async def test_a_wrong_key_is_refused_on_connect_and_nothing_is_stored(api: httpx.AsyncClient) -> None:
    body = {"provider": "examplebank", "name": "Bank", "credentials": {"api_key": "fake-wrong-key-9999"}}
    refused = await api.post("/api/v1/connections", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("/provider-auth")
    assert "fake-wrong-key-9999" not in refused.text
    assert (await api.get("/api/v1/connections")).json()["items"] == []
