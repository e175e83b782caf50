"""Crypto exchanges end to end: HTTP API → real database (SQLite and PostgreSQL) → fake Binance
and Kraken on loopback, reached by pointing ccxt's API URLs at them. Connect validates with a
signed balance call (and warns about a key that may trade), a sync stores holdings valued in the
quote currency and the history, a re-sync duplicates nothing, a failed sync stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from finsync.bootstrap import Container
from finsync.domain.market import FxFixing
from finsync.providers.ccxt import limits
from finsync.providers.ratelimit import SHARED_BUCKETS
from tests.api.conftest import clock_of
from tests.api.helpers import register_and_login
from tests.conftest import api_client, built, make_settings
from tests.fakes import binance, coinbase, gateio, kraken
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _no_bans() -> Iterator[None]:
    """Each test starts with no exchange ban and fresh budgets (they live as long as the process)."""
    limits.BANS.clear()
    SHARED_BUCKETS.clear()
    yield
    limits.BANS.clear()
    SHARED_BUCKETS.clear()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


Store = TypeVar("Store")


def _serve_fake(fake: Any, store: Store, clock: VirtualClock) -> Iterator[tuple[Store, str]]:
    """A fake exchange module's server over ``store``, seeded at the clock's time."""
    fake.seed(store, clock.now())
    with serve(fake.create_app(clock, store)) as url:
        yield store, url


@pytest.fixture
def fake_binance(clock: VirtualClock) -> Iterator[tuple[binance.BinanceStore, str]]:
    yield from _serve_fake(binance, binance.BinanceStore(), clock)


@pytest.fixture
def fake_kraken(clock: VirtualClock) -> Iterator[tuple[kraken.KrakenStore, str]]:
    yield from _serve_fake(kraken, kraken.KrakenStore(), clock)


@pytest.fixture
def fake_coinbase(clock: VirtualClock) -> Iterator[tuple[coinbase.CoinbaseStore, str]]:
    yield from _serve_fake(coinbase, coinbase.CoinbaseStore(), clock)


@pytest.fixture
def fake_gateio(clock: VirtualClock) -> Iterator[tuple[gateio.GateStore, str]]:
    yield from _serve_fake(gateio, gateio.GateStore(), clock)


@pytest.fixture
async def api(
    database_url: str,
    tmp_path: Path,
    clock: VirtualClock,
    fake_binance: tuple[binance.BinanceStore, str],
    fake_kraken: tuple[kraken.KrakenStore, str],
    fake_coinbase: tuple[coinbase.CoinbaseStore, str],
    fake_gateio: tuple[gateio.GateStore, str],
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url,
        tmp_path,
        binance_api_urls=binance.api_urls(fake_binance[1]),
        kraken_api_urls=kraken.api_urls(fake_kraken[1]),
        coinbase_api_urls=coinbase.api_urls(fake_coinbase[1]),
        gateio_api_urls=gateio.api_urls(fake_gateio[1]),
        provider_timeout_seconds=2.0,
    )
    async with (
        built(settings, adapter_options={"clock": clock}, clock=clock_of(clock)) as container,
        api_client(container) as client,
    ):
        client.headers.update(await register_and_login(client))
        client.container = container  # type: ignore[attr-defined]
        yield client


async def _run(client: httpx.AsyncClient, run_id: object) -> dict[str, Any]:
    container: Container = client.container  # type: ignore[attr-defined]
    await container.jobs.drain()
    return dict((await client.get(f"/api/v1/sync-runs/{run_id}")).json())


async def _items(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    body = (await client.get(path, params={"limit": 200})).json()
    return list(body["items"] if isinstance(body, dict) else body)


async def test_providers_lists_the_six_exchanges_with_their_credential_fields(api: httpx.AsyncClient) -> None:
    listed = {p["slug"]: p for p in (await api.get("/api/v1/providers")).json()}
    for slug in ("binance", "coinbase", "kraken", "okx", "htx", "gateio"):
        assert listed[slug]["auth_type"] == "api_key"
        assert listed[slug]["configured"] is True
    fields = {slug: {f["name"] for f in listed[slug]["credential_fields"]} for slug in ("binance", "okx")}
    assert fields["binance"] == {"apiKey", "secret", "quote_currency"}
    assert fields["okx"] == {"apiKey", "secret", "password", "quote_currency"}


async def test_binance_connect_sync_holdings_history_and_resync(
    api: httpx.AsyncClient, fake_binance: tuple[binance.BinanceStore, str]
) -> None:
    store, _ = fake_binance
    store.restrictions["enableSpotAndMarginTrading"] = True
    creds = {"apiKey": store.key, "secret": store.secret, "quote_currency": "EUR"}
    r = await api.post("/api/v1/connections", json={"provider": "binance", "credentials": creds})
    assert r.status_code == 201, r.text
    created = r.json()
    assert "read-only key is enough" in created["provider_messages"][0]  # accepted, with the warning
    run = await _run(api, created["sync_run_id"])
    assert run["status"] == "succeeded", run
    [account] = await _items(api, f"/api/v1/accounts?connection_id={created['id']}")
    assert account["currency"] == "EUR"
    assert account["type"] == "crypto_wallet"
    holdings = {h["symbol"]: h for h in await _items(api, f"/api/v1/accounts/{account['id']}/holdings")}
    assert set(holdings) == {"BTC", "ETH", "SHIB", "USDT"}
    assert Decimal(holdings["SHIB"]["quantity"]) == Decimal(1000000)
    assert holdings["BTC"]["price_currency"] == "EUR"
    transactions = {t["provider_transaction_id"]: t for t in await _items(api, "/api/v1/transactions")}
    assert transactions["trade:BTC/USDT:1000"]["currency"] == "USDT"  # an asset code, stored as such
    assert transactions["withdrawal:b6ae22b3aa844210a7041aee7589627c"]["fees"] == "1.00000000"
    assert len(transactions) == 6
    # a second sync reads from the cursors and stores no duplicate
    again = await api.post(f"/api/v1/connections/{created['id']}/sync")
    assert (await _run(api, again.json()["id"]))["status"] == "succeeded"
    assert len(await _items(api, "/api/v1/transactions")) == 6


async def test_coinbase_connect_sync_history_per_account_and_resync(
    api: httpx.AsyncClient, fake_coinbase: tuple[coinbase.CoinbaseStore, str]
) -> None:
    """Failed on main: the sync stopped after the balance, as ccxt's Coinbase reads deposits,
    withdrawals and rewards only per account."""
    store, _ = fake_coinbase
    creds = {"apiKey": store.key_name, "secret": store.private_pem}
    r = await api.post("/api/v1/connections", json={"provider": "coinbase", "credentials": creds})
    assert r.status_code == 201, r.text
    created = r.json()
    assert not created["provider_messages"]  # a view-only key: no warning
    run = await _run(api, created["sync_run_id"])
    assert run["status"] == "succeeded", run
    [account] = await _items(api, f"/api/v1/accounts?connection_id={created['id']}")
    holdings = {h["symbol"]: h for h in await _items(api, f"/api/v1/accounts/{account['id']}/holdings")}
    assert set(holdings) == {"BTC", "ETH"}
    transactions = {t["provider_transaction_id"]: t for t in await _items(api, "/api/v1/transactions")}
    assert set(transactions) == {
        "trade:BTC/USD:b1",
        "trade:ETH/USD:e1",
        "deposit:tx-usd-dep",
        "deposit:tx-btc-in",
        "withdrawal:tx-btc-out",
        "ledger:tx-eth-reward",
    }
    assert Decimal(transactions["withdrawal:tx-btc-out"]["fees"]) == Decimal("0.0001")
    again = await api.post(f"/api/v1/connections/{created['id']}/sync")
    assert (await _run(api, again.json()["id"]))["status"] == "succeeded"
    assert len(await _items(api, "/api/v1/transactions")) == 6


async def test_gateio_rewards_from_the_account_book_are_income_stored_once(
    api: httpx.AsyncClient, fake_gateio: tuple[gateio.GateStore, str], clock: VirtualClock
) -> None:
    """Failed before: Gate's account book was not read, so its earn interest and airdrops were
    never income. A reward inside the next sync's overlap is read twice and stored once."""
    store, _ = fake_gateio
    store.add_book(book_id=9200, ts=int(clock.now() * 1000) - 36 * 3_600_000, currency="USDT",
                   change="0.03", balance="200.45", kind="hodl_int")  # fmt: skip
    creds = {"apiKey": store.key, "secret": store.secret}
    created = (
        await api.post("/api/v1/connections", json={"provider": "gateio", "credentials": creds})
    ).json()
    run = await _run(api, created["sync_run_id"])
    assert run["status"] == "succeeded", run
    transactions = {t["provider_transaction_id"]: t for t in await _items(api, "/api/v1/transactions")}
    rewards = {k: t for k, t in transactions.items() if k.startswith("ledger:")}
    assert set(rewards) == {"ledger:9001", "ledger:9002", "ledger:9200"}
    assert {t["type"] for t in rewards.values()} == {"income"}
    assert (Decimal(rewards["ledger:9001"]["amount"]), rewards["ledger:9001"]["currency"]) == (
        Decimal("0.42"),
        "USDT",
    )
    assert len(transactions) == 7
    store.requests.clear()
    again = await api.post(f"/api/v1/connections/{created['id']}/sync")
    assert (await _run(api, again.json()["id"]))["status"] == "succeeded"
    book = [q for p, q in store.requests if p == "/api/v4/spot/account_book"]
    assert int(book[0]["from"]) * 1000 <= int(clock.now() * 1000) - 36 * 3_600_000  # 9200 asked again
    assert len(await _items(api, "/api/v1/transactions")) == 7


async def _usd_binance(
    api: httpx.AsyncClient, store: binance.BinanceStore
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Connect Binance on the default quote currency (USD) and sync: the account and its holdings."""
    creds = {"apiKey": store.key, "secret": store.secret}
    created = (
        await api.post("/api/v1/connections", json={"provider": "binance", "credentials": creds})
    ).json()
    run = await _run(api, created["sync_run_id"])
    assert run["status"] == "succeeded", run
    [account] = await _items(api, f"/api/v1/accounts?connection_id={created['id']}")
    holdings = {h["symbol"]: h for h in await _items(api, f"/api/v1/accounts/{account['id']}/holdings")}
    connection = (await api.get(f"/api/v1/connections/{created['id']}")).json()
    return account | {"provider_messages": connection["provider_messages"], "run": run}, holdings


async def test_binance_on_usd_is_valued_at_its_eur_prices_and_the_stored_ecb_rate(
    api: httpx.AsyncClient, fake_binance: tuple[binance.BinanceStore, str]
) -> None:
    """The sync's day is Thursday 9 October 2025 (the virtual clock): no fixing stored that day,
    so Wednesday's is used, not Friday's; read from the database the sync runs on."""
    container: Container = api.container  # type: ignore[attr-defined]
    async with container.uow() as uow:
        await uow.market.save_fixings(
            [
                FxFixing("USD", date(2025, 10, 8), Decimal("1.1500"), "ecb"),
                FxFixing("USD", date(2025, 10, 10), Decimal("1.2000"), "ecb"),
                FxFixing("GBP", date(2025, 10, 8), Decimal("0.8700"), "ecb"),
            ]
        )
        await uow.commit()
    account, holdings = await _usd_binance(api, fake_binance[0])
    assert account["currency"] == "USD"
    btc = holdings["BTC"]
    assert (btc["currency"], btc["price_currency"]) == ("USD", "EUR")
    assert Decimal(btc["current_price"]) == Decimal("55500.00")
    assert Decimal(btc["market_value"]) == Decimal("0.5") * Decimal("55500.00") * Decimal("1.15")
    assert btc["value_conversion"] == {
        "rate": "1.1500000000",
        "rate_date": "2025-10-08",
        "source": "ECB reference rate",
    }
    assert Decimal(holdings["EUR"]["market_value"]) == Decimal("115")
    assert all(h["market_value"] is not None for h in holdings.values())
    total = sum(Decimal(h["market_value"]) for h in holdings.values())
    assert Decimal(account["balance"]) == total
    said = "converted at the ECB reference rate of 2025-10-08 (1 EUR = 1.15 USD)"
    assert said in account["provider_messages"][0]
    assert said in account["run"]["warnings"][0]


async def test_binance_on_usd_without_a_stored_rate_keeps_quantities_without_values_and_says_why(
    api: httpx.AsyncClient, fake_binance: tuple[binance.BinanceStore, str]
) -> None:
    account, holdings = await _usd_binance(api, fake_binance[0])
    assert Decimal(holdings["BTC"]["quantity"]) == Decimal("0.5")
    assert holdings["BTC"]["price_currency"] == "EUR"
    assert all(h["market_value"] is None and h["value_conversion"] is None for h in holdings.values())
    assert account["balance"] is None  # unknown until a rate is stored, never 0
    assert "no EUR→USD ECB reference rate is stored yet" in account["provider_messages"][0]


async def test_a_refused_key_is_a_422_and_nothing_is_stored(
    api: httpx.AsyncClient, fake_kraken: tuple[kraken.KrakenStore, str]
) -> None:
    store, _ = fake_kraken
    creds = {"apiKey": store.key, "secret": "d3Jvbmctc2VjcmV0LTAwMDA="}
    r = await api.post("/api/v1/connections", json={"provider": "kraken", "credentials": creds})
    assert r.status_code == 422, r.text
    assert "EAPI:Invalid signature" in r.json()["detail"]
    assert "d3Jvbmct" not in r.text
    assert (await api.get("/api/v1/connections")).json()["items"] == []


async def test_kraken_maintenance_and_ban_fail_the_sync_and_store_nothing_new(
    api: httpx.AsyncClient, fake_kraken: tuple[kraken.KrakenStore, str]
) -> None:
    store, _ = fake_kraken
    creds = {"apiKey": store.key, "secret": store.secret}
    created = (
        await api.post("/api/v1/connections", json={"provider": "kraken", "credentials": creds})
    ).json()
    assert (await _run(api, created["sync_run_id"]))["status"] == "succeeded"
    before = await _items(api, "/api/v1/transactions")
    store.trades["TNEW00-AAAAA-BBBBBB"] = dict(next(iter(store.trades.values())), trade_id=99)
    store.inject("Ledgers", "EService:Market in cancel_only mode")  # after trades were read
    r = await api.post(f"/api/v1/connections/{created['id']}/sync")
    run = await _run(api, r.json()["id"])
    assert run["status"] == "failed"
    assert run["error_type"] == "provider-unavailable"
    assert "under maintenance" in run["error"]
    assert await _items(api, "/api/v1/transactions") == before  # the new trade was not half-stored
    connection = (await api.get(f"/api/v1/connections/{created['id']}")).json()
    assert connection["status"] == "error"
    store.inject("BalanceEx", "429")
    r = await api.post(f"/api/v1/connections/{created['id']}/sync")
    run = await _run(api, r.json()["id"])
    assert run["error_type"] == "provider-rate-limited"


async def test_a_binance_ip_ban_fails_the_sync_with_its_end_and_later_syncs_are_refused_up_front(
    api: httpx.AsyncClient, fake_binance: tuple[binance.BinanceStore, str]
) -> None:
    store, _ = fake_binance
    creds = {"apiKey": store.key, "secret": store.secret, "quote_currency": "EUR"}
    body = {"provider": "binance", "credentials": creds}
    created = (await api.post("/api/v1/connections", json=body)).json()
    assert (await _run(api, created["sync_run_id"]))["status"] == "succeeded"
    store.inject("/api/v3/account", "418")
    run = await _run(api, (await api.post(f"/api/v1/connections/{created['id']}/sync")).json()["id"])
    assert run["error_type"] == "provider-rate-limited"
    assert "Binance has banned this server's IP address until" in run["error"]
    calls = len(store.requests)
    refused = await api.post(f"/api/v1/connections/{created['id']}/sync")
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 3600
    assert refused.json()["retry_at"]
    assert len(store.requests) == calls  # refused before any call to Binance


async def test_replacing_the_key_with_one_that_may_withdraw_warns_and_a_read_only_one_clears_it(
    api: httpx.AsyncClient, fake_binance: tuple[binance.BinanceStore, str]
) -> None:
    store, _ = fake_binance
    creds = {"apiKey": store.key, "secret": store.secret, "quote_currency": "EUR"}
    body = {"provider": "binance", "credentials": creds}
    created = (await api.post("/api/v1/connections", json=body)).json()
    assert created["provider_messages"] is None
    await _run(api, created["sync_run_id"])
    store.restrictions["enableWithdrawals"] = True
    r = await api.patch(f"/api/v1/connections/{created['id']}", json={"credentials": creds})
    assert r.status_code == 200, r.text
    assert "may withdraw" in r.json()["provider_messages"][0]
    store.restrictions["enableWithdrawals"] = False
    r = await api.patch(f"/api/v1/connections/{created['id']}", json={"credentials": creds})
    assert r.json()["provider_messages"] is None
