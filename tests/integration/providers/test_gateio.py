"""Gate.io through the shared ccxt adapter against the fake Gate.io API v4 (real KEY / Timestamp /
SIGN headers: HMAC-SHA512 over method, path, query, SHA-512 of the body and timestamp) over
loopback HTTP: history asked 30 days at a time, each window paged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import ProviderAuthError, RateLimited, Unavailable
from finsync.domain.ports import ProviderSession
from finsync.providers.ccxt import gateio
from finsync.providers.ccxt.adapter import ExchangeAdapter
from tests.fakes.clock import VirtualClock
from tests.fakes.gateio import DAY_MS, GateStore, api_urls, create_app, seed
from tests.fakes.server import serve

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clock: VirtualClock) -> GateStore:
    data = GateStore()
    seed(data, clock.now())
    return data


@pytest.fixture
def url(clock: VirtualClock, store: GateStore) -> Iterator[str]:
    with serve(create_app(clock, store)) as base:
        yield base


def _session(store: GateStore, state: dict[str, Any] | None = None, **creds: str) -> ProviderSession:
    credentials = {"apiKey": store.key, "secret": store.secret, "quote_currency": "USD"}
    return ProviderSession(connection_id=uuid.uuid4(), credentials=credentials | creds, state=state or {})


def _build(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    settings = gateio.GateioSettings(_env_file=None, api_urls=api_urls(url), timeout_seconds=2.0)  # type: ignore[call-arg]
    made = gateio.METADATA.adapter_factory(session, settings, clock=clock)  # type: ignore[misc]
    assert isinstance(made, ExchangeAdapter)
    return made


@pytest.fixture
async def adapter(url: str, store: GateStore, clock: VirtualClock) -> AsyncIterator[ExchangeAdapter]:
    built = _build(url, _session(store), clock)
    yield built
    await built.aclose()


async def _sync(adapter: ExchangeAdapter) -> list[Any]:
    [account] = await adapter.fetch_accounts()
    return list((await adapter.fetch_transactions(account)).transactions)


async def test_validate_signs_the_headers_and_loads_spot_markets_only(
    adapter: ExchangeAdapter, store: GateStore
) -> None:
    [key] = await adapter.validate()
    assert key.startswith("key:")
    assert store.key not in key
    paths = [p for p, _ in store.requests]
    assert not [p for p in paths if "futures" in p or "delivery" in p or "options" in p]
    assert "/api/v4/spot/accounts" in paths
    assert adapter.session.warnings == []  # Gate cannot tell a key's permissions


async def test_the_proxy_setting_takes_gates_nested_api_groups(url: str) -> None:
    """Gate's ccxt API groups are nested (``private.spot``…): ``FINSYNC_GATEIO_API_URLS`` was a
    flat string mapping and refused them, so no proxy could be set."""
    settings = gateio.GateioSettings(_env_file=None, api_urls=api_urls(url))  # type: ignore[call-arg]
    assert settings.api_urls["private"] == api_urls(url)["private"]


async def test_a_wrong_secret_is_a_refused_key(url: str, store: GateStore, clock: VirtualClock) -> None:
    bad = _build(url, _session(store, secret="NOTTHESECRET0000"), clock)
    try:
        with pytest.raises(ProviderAuthError, match="Signature mismatch") as caught:
            await bad.validate()
        assert "NOTTHESECRET0000" not in str(caught.value)
    finally:
        await bad.aclose()


async def test_balances_valued_from_gate_tickers(adapter: ExchangeAdapter) -> None:
    [account] = await adapter.fetch_accounts()
    held = {h.symbol: h for h in await adapter.fetch_holdings(account)}
    assert set(held) == {"BTC", "ETH", "GT", "USDT"}
    assert held["BTC"].quantity == Decimal("0.25")  # available + locked in an order
    usdt_usd = Decimal("0.9997")
    assert held["USDT"].current_price == usdt_usd
    assert held["GT"].current_price == Decimal("16.2") * usdt_usd  # GT/USDT, USDT/USD
    assert account.balance == sum(h.market_value for h in held.values() if h.market_value is not None)


async def test_trades_and_transfers_with_fees(adapter: ExchangeAdapter) -> None:
    found = {t.provider_transaction_id: t for t in await _sync(adapter)}
    buy = found["trade:BTC/USDT:5001"]
    assert (buy.subtype, buy.amount, buy.currency, buy.quantity) == (
        TransactionSubtype.BUY,
        Decimal("-12500"),
        "USDT",
        Decimal("0.25"),
    )
    assert buy.raw["fee"] == {"cost": "0.0005", "currency": "BTC"}
    sell = found["trade:ETH/USDT:5002"]
    assert (sell.subtype, sell.amount, sell.fees) == (TransactionSubtype.SELL, Decimal(1400), Decimal("2.8"))
    deposit = found["deposit:d210496"]
    assert (deposit.subtype, deposit.amount, deposit.status) == (
        TransactionSubtype.TRANSFER_IN,
        Decimal("0.25"),
        TransactionStatus.SETTLED,
    )
    withdrawal = found["withdrawal:w1001"]
    assert withdrawal.fees == Decimal(1)
    assert withdrawal.amount == Decimal(-49)  # ccxt reads Gate's amount as including the fee
    assert len(found) == 4


async def test_history_is_asked_30_days_at_a_time_from_the_cursor(
    adapter: ExchangeAdapter, store: GateStore, clock: VirtualClock
) -> None:
    """Gate refuses a trade query spanning more than 30 days, and ccxt asks transfers for the
    30 days after ``since`` only: an old trade and deposit are found by walking the windows."""
    t = int(clock.now() * 1000)
    store.add_trade(
        "ETH_BTC", trade_id=4001, ts=t - 400 * DAY_MS, side="buy", price="0.05", amount="1",
        fee="0.001", fee_currency="ETH",
    )  # fmt: skip
    store.add_deposit(deposit_id=100001, ts=t - 700 * DAY_MS, currency="ETH", amount="2", chain="ETH")
    found = {x.provider_transaction_id for x in await _sync(adapter)}
    assert {"trade:ETH/BTC:4001", "deposit:d100001"} <= found
    for path in ("/api/v4/spot/my_trades", "/api/v4/wallet/deposits", "/api/v4/wallet/withdrawals"):
        asked = [q for p, q in store.requests if p == path]
        assert all(int(q["to"]) - int(q["from"]) <= 30 * 86_400 for q in asked)
    [cursors] = adapter.session.state["cursors"].values()
    cursor = cursors["trades"]
    store.requests.clear()
    again = _build(adapter.ex.urls["api"]["private"]["spot"].removesuffix("/api/v4"),
                   _session(store, state=adapter.session.state), clock)  # fmt: skip
    try:
        await _sync(again)
    finally:
        await again.aclose()
    trades = [q for p, q in store.requests if p == "/api/v4/spot/my_trades"]
    assert min(int(q["from"]) for q in trades) == (cursor - DAY_MS) // 1000
    assert len(trades) == 1  # the day since the cursor: one window


async def test_more_than_a_page_of_trades_and_deposits_are_all_read(
    adapter: ExchangeAdapter, store: GateStore, clock: VirtualClock
) -> None:
    """Gate answers 100 a page by default: trades are paged by ``page``, transfers by ``offset``."""
    t = int(clock.now() * 1000)
    for i in range(250):
        store.add_trade(
            "BTC_USDT", trade_id=600_000 + i, ts=t - 5 * DAY_MS + i * 1000, side="buy", price="1",
            amount="1", fee="0", fee_currency="BTC",
        )  # fmt: skip
    for i in range(230):
        store.add_deposit(
            deposit_id=700_000 + i, ts=t - 8 * DAY_MS + i * 1000, currency="USDT", amount="1", chain="TRX"
        )
    found = await _sync(adapter)
    assert len([x for x in found if x.type is TransactionType.TRADE]) == 252
    assert len([x for x in found if x.subtype is TransactionSubtype.TRANSFER_IN]) == 231


async def test_the_account_book_is_not_read(adapter: ExchangeAdapter, store: GateStore) -> None:
    """ccxt sends the account book's ``from`` in milliseconds where Gate expects seconds: Gate
    refuses it, and the whole sync would fail."""
    await _sync(adapter)
    assert "/api/v4/spot/account_book" not in {p for p, _ in store.requests}


@pytest.mark.parametrize(
    ("fault", "raised", "words"),
    [
        ("key", ProviderAuthError, "Invalid key provided"),
        ("maintenance", Unavailable, "unavailable"),
        ("429", RateLimited, "rate limit"),
    ],
)
async def test_each_gate_error_is_a_clear_status(
    adapter: ExchangeAdapter, store: GateStore, fault: str, raised: type[Exception], words: str
) -> None:
    store.inject("/api/v4/spot/accounts", fault)
    with pytest.raises(raised, match=words) as caught:
        await adapter.fetch_accounts()
    assert store.key not in str(caught.value)
