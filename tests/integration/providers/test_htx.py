"""HTX through the shared ccxt adapter against the fake HTX (real HmacSHA256 query signature
with AccessKeyId, SignatureMethod, SignatureVersion and Timestamp) over loopback HTTP: trades
within HTX's 48-hour windows of the last 120 days, transfers paged by id, the key's
permissions from ``/v2/user/api-key``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import ProviderAuthError, RateLimited, Unavailable
from finsync.domain.ports import ProviderSession
from finsync.providers.ccxt import htx
from finsync.providers.ccxt.adapter import ExchangeAdapter
from tests.fakes.clock import VirtualClock
from tests.fakes.htx import DAY_MS, HtxStore, api_urls, create_app, seed
from tests.fakes.server import serve
from tests.integration.providers.exchanges import build_exchange, exchange_session, synced

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clock: VirtualClock) -> HtxStore:
    data = HtxStore()
    seed(data, clock.now())
    return data


@pytest.fixture
def url(clock: VirtualClock, store: HtxStore) -> Iterator[str]:
    with serve(create_app(clock, store)) as base:
        yield base


def _session(store: HtxStore, state: dict[str, Any] | None = None, **creds: str) -> ProviderSession:
    credentials = {"apiKey": store.key, "secret": store.secret, "quote_currency": "USD"}
    return exchange_session(credentials | creds, state)


def _build(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    return build_exchange(htx, api_urls(url), session, clock)


@pytest.fixture
async def adapter(url: str, store: HtxStore, clock: VirtualClock) -> AsyncIterator[ExchangeAdapter]:
    built = _build(url, _session(store), clock)
    yield built
    await built.aclose()


async def test_validate_signs_the_query_and_a_read_only_key_gets_no_warning(
    adapter: ExchangeAdapter, store: HtxStore
) -> None:
    [key] = await adapter.validate()
    assert key.startswith("key:")
    assert store.key not in key
    paths = [p for p, _ in store.requests]
    assert paths.count("/v1/common/symbols") == 1  # spot markets only: no contract hosts
    assert "/v1/account/accounts/10000001/balance" in paths
    assert adapter.session.warnings == []


@pytest.mark.parametrize(
    ("permission", "words"),
    [("trade,readOnly", "may trade"), ("readOnly,trade,withdraw", "may trade and withdraw")],
)
async def test_a_key_that_may_trade_or_withdraw_is_accepted_with_a_warning(
    adapter: ExchangeAdapter, store: HtxStore, permission: str, words: str
) -> None:
    store.permission = permission
    await adapter.validate()
    [warning] = adapter.session.warnings
    assert words in warning
    assert "read-only key is enough" in warning


async def test_a_wrong_secret_is_a_refused_key(url: str, store: HtxStore, clock: VirtualClock) -> None:
    bad = _build(url, _session(store, secret="NOTTHESECRET0000"), clock)
    try:
        with pytest.raises(ProviderAuthError, match="Verification failure") as caught:
            await bad.validate()
        assert "NOTTHESECRET0000" not in str(caught.value)
    finally:
        await bad.aclose()


async def test_balances_valued_from_htx_tickers(adapter: ExchangeAdapter) -> None:
    [account] = await adapter.fetch_accounts()
    held = {h.symbol: h for h in await adapter.fetch_holdings(account)}
    assert set(held) == {"BTC", "ETH", "HTX", "USDT"}  # TRX at zero is not held
    assert held["BTC"].quantity == Decimal("0.25")  # free + frozen in an order
    usdt_usd = Decimal("0.9998")
    assert held["USDT"].current_price == usdt_usd
    assert held["BTC"].current_price == Decimal("60000.5") * usdt_usd  # BTC/USDT, USDT/USD
    assert held["HTX"].market_value == Decimal(1_000_000) * Decimal("0.0000017") * usdt_usd
    assert account.balance == sum(h.market_value for h in held.values() if h.market_value is not None)


async def test_trades_and_transfers_with_fees(adapter: ExchangeAdapter, store: HtxStore) -> None:
    found = {t.provider_transaction_id: t for t in await synced(adapter)}
    buy = found[f"trade:BTC/USDT:{313288753120940 * 7}"]
    assert (buy.subtype, buy.amount, buy.currency, buy.quantity) == (
        TransactionSubtype.BUY,
        Decimal("-12500"),
        "USDT",
        Decimal("0.25"),
    )
    assert buy.raw["fee"] == {"cost": "0.0005", "currency": "BTC"}
    sell = found[f"trade:ETH/USDT:{313288753121000 * 7}"]
    assert (sell.subtype, sell.amount, sell.fees) == (TransactionSubtype.SELL, Decimal(1400), Decimal("2.8"))
    deposit = found["deposit:45182894"]
    assert (deposit.subtype, deposit.amount, deposit.status) == (
        TransactionSubtype.TRANSFER_IN,
        Decimal("0.25"),
        TransactionStatus.SETTLED,
    )
    withdrawal = found["withdrawal:61003926"]
    assert (withdrawal.amount, withdrawal.fees) == (Decimal(-50), Decimal(1))
    assert len(found) == 4


async def test_trades_are_read_in_48_hour_windows_over_htxs_120_days(
    adapter: ExchangeAdapter, store: HtxStore, clock: VirtualClock
) -> None:
    """HTX refuses a trade query spanning more than 48 hours or reaching past 120 days: the
    first sync walks 48-hour windows from 120 days ago, a later one from its cursor."""
    t = int(clock.now() * 1000)
    store.add_trade(
        "ethbtc",
        record_id=313288753000001,
        ts=t - 119 * DAY_MS,
        side="buy",
        price="0.05",
        amount="1",
        fee="0.001",
        fee_currency="eth",
    )
    store.add_trade(  # older than HTX keeps: out of reach
        "ethbtc",
        record_id=313288753000000,
        ts=t - 125 * DAY_MS,
        side="buy",
        price="0.05",
        amount="1",
        fee="0.001",
        fee_currency="eth",
    )
    found = await synced(adapter)
    trades = {t.provider_transaction_id for t in found if t.type is TransactionType.TRADE}
    assert trades == {
        f"trade:{s}:{i * 7}"
        for s, i in (
            ("ETH/BTC", 313288753000001),
            ("BTC/USDT", 313288753120940),
            ("ETH/USDT", 313288753121000),
        )
    }
    windows = [q for p, q in store.requests if p == "/v1/order/matchresults"]
    assert all(int(q["end-time"]) - int(q["start-time"]) < 48 * 3_600_000 for q in windows)
    assert min(int(q["start-time"]) for q in windows) >= t - 120 * DAY_MS
    [cursors] = adapter.session.state["cursors"].values()
    cursor = cursors["trades"]
    store.requests.clear()
    again = _build(adapter.ex.urls["api"]["spot"], _session(store, state=adapter.session.state), clock)
    try:
        await synced(again)
    finally:
        await again.aclose()
    windows = [q for p, q in store.requests if p == "/v1/order/matchresults"]
    assert min(int(q["start-time"]) for q in windows) == cursor - DAY_MS


async def test_more_than_a_page_of_trades_and_deposits_are_all_read(
    adapter: ExchangeAdapter, store: HtxStore, clock: VirtualClock
) -> None:
    """Trades page within a window by the record ``id`` (``from``, ``direct=next``); deposits
    come newest first by id whatever the time: both are walked down to the cursor."""
    t = int(clock.now() * 1000)
    for i in range(1200):  # more than two pages of 500 in one 48-hour window
        store.add_trade(
            "btcusdt",
            record_id=400_000_000 + i,
            ts=t - 5 * DAY_MS + i * 60_000,
            side="buy",
            price="1",
            amount="1",
            fee="0",
            fee_currency="btc",
        )
    for i in range(230):
        store.add_transfer(
            "deposit",
            transfer_id=70_000_000 + i,
            ts=t - 50 * DAY_MS + i * 1000,
            currency="usdt",
            amount=1,
            fee=0,
            chain="trc20usdt",
        )
    found = await synced(adapter)
    assert len([x for x in found if x.type is TransactionType.TRADE]) == 1202
    assert len([x for x in found if x.subtype is TransactionSubtype.TRANSFER_IN]) == 231


async def test_the_ledger_of_internal_transfers_is_not_read(
    adapter: ExchangeAdapter, store: HtxStore
) -> None:
    """HTX's ledger holds only transfers between the user's own accounts (no rewards), 10 days
    per query within 180 days: reading it would bring nothing and fail on the first sync."""
    await synced(adapter)
    assert "/v2/account/ledger" not in {p for p, _ in store.requests}


@pytest.mark.parametrize(
    ("fault", "raised", "words"),
    [
        ("key", ProviderAuthError, "Incorrect Access key"),
        ("maintenance", Unavailable, "maintenance"),
        ("429", RateLimited, "rate limit"),
    ],
)
async def test_each_htx_error_is_a_clear_status(
    adapter: ExchangeAdapter, store: HtxStore, fault: str, raised: type[Exception], words: str
) -> None:
    store.inject("/v1/account/accounts", fault)
    with pytest.raises(raised, match=words) as caught:
        await adapter.fetch_accounts()
    assert store.key not in str(caught.value)
