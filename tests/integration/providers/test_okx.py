"""OKX through the shared ccxt adapter against the fake OKX (real HMAC-SHA256 OK-ACCESS-SIGN with
the passphrase, newest-first history of at most 100 a page) over loopback HTTP: the key's
permissions are read from ``account/config`` and the generic ``since`` history walk runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import TransactionSubtype, TransactionType
from finsync.domain.errors import ProviderAuthError, RateLimited, Unavailable
from finsync.domain.ports import ProviderSession
from finsync.providers.ccxt import okx
from finsync.providers.ccxt.adapter import ExchangeAdapter
from tests.fakes.clock import VirtualClock
from tests.fakes.okx import DAY_MS, OkxStore, api_urls, create_app, seed
from tests.fakes.server import serve
from tests.integration.providers.exchanges import build_exchange, exchange_session

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clock: VirtualClock) -> OkxStore:
    data = OkxStore()
    seed(data, clock.now())
    return data


@pytest.fixture
def url(clock: VirtualClock, store: OkxStore) -> Iterator[str]:
    with serve(create_app(clock, store)) as base:
        yield base


def _session(store: OkxStore, state: dict[str, Any] | None = None, **creds: str) -> ProviderSession:
    credentials = {
        "apiKey": store.key,
        "secret": store.secret,
        "password": store.passphrase,
        "quote_currency": "EUR",
    }
    return exchange_session(credentials | creds, state)


def _build(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    return build_exchange(okx, api_urls(url), session, clock)


@pytest.fixture
async def adapter(url: str, store: OkxStore, clock: VirtualClock) -> AsyncIterator[ExchangeAdapter]:
    built = _build(url, _session(store), clock)
    yield built
    await built.aclose()


async def test_validate_signs_with_the_passphrase_and_a_read_only_key_gets_no_warning(
    adapter: ExchangeAdapter, store: OkxStore
) -> None:
    [key] = await adapter.validate()
    assert key.startswith("key:")
    assert store.key not in key
    paths = [p for p, _ in store.requests]
    assert paths.count("public/instruments") == 1  # spot markets only: one call, not five
    assert paths[-2:] == ["account/balance", "account/config"]
    assert adapter.session.warnings == []


@pytest.mark.parametrize(
    ("perm", "words"), [("read_only,trade", "may trade"), ("read_only,withdraw", "may withdraw")]
)
async def test_a_key_that_may_trade_or_withdraw_is_accepted_with_a_warning(
    adapter: ExchangeAdapter, store: OkxStore, perm: str, words: str
) -> None:
    store.perm = perm
    await adapter.validate()
    [warning] = adapter.session.warnings
    assert words in warning
    assert "read-only key is enough" in warning


@pytest.mark.parametrize(
    ("creds", "words"),
    [
        ({"password": "not-the-passphrase"}, "OK-ACCESS-PASSPHRASE incorrect"),
        ({"secret": "NOTTHESECRET0000"}, "Invalid Sign"),
    ],
)
async def test_a_wrong_passphrase_or_secret_is_a_refused_key(
    url: str, store: OkxStore, clock: VirtualClock, creds: dict[str, str], words: str
) -> None:
    bad = _build(url, _session(store, **creds), clock)
    try:
        with pytest.raises(ProviderAuthError, match=words) as caught:
            await bad.validate()
        assert all(value not in str(caught.value) for value in creds.values())
    finally:
        await bad.aclose()


async def test_balances_valued_from_okx_tickers(adapter: ExchangeAdapter, store: OkxStore) -> None:
    [account] = await adapter.fetch_accounts()
    held = {h.symbol: h for h in await adapter.fetch_holdings(account)}
    assert set(held) == {"BTC", "ETH", "OKB", "USDT"}  # EUR is cash
    assert held["BTC"].current_price == Decimal("55550.5")
    assert held["OKB"].current_price == Decimal("48.5") * Decimal("0.9259")  # OKB-USDT, USDT-EUR
    assert account.cash_value == Decimal(50)


async def test_trades_transfers_with_fees(adapter: ExchangeAdapter, store: OkxStore) -> None:
    [account] = await adapter.fetch_accounts()
    found = {t.provider_transaction_id: t for t in (await adapter.fetch_transactions(account)).transactions}
    buy = found["trade:BTC/USDT:501"]
    assert (buy.subtype, buy.amount, buy.currency, buy.quantity) == (
        TransactionSubtype.BUY,
        Decimal("-12500"),
        "USDT",
        Decimal("0.25"),
    )
    assert buy.raw["fee"] == {"cost": "0.00025", "currency": "BTC"}
    sell = found["trade:ETH/EUR:502"]
    assert (sell.subtype, sell.amount, sell.fees) == (TransactionSubtype.SELL, Decimal(1350), Decimal("1.35"))
    assert found["deposit:88165462"].subtype is TransactionSubtype.TRANSFER_IN
    withdrawal = found["withdrawal:58041719"]
    assert (withdrawal.amount, withdrawal.fees) == (Decimal(-50), Decimal(1))
    assert len(found) == 4  # no bill is income: an auto token conversion is not a reward
    assert "account/bills" not in {p for p, _ in store.requests}


async def test_more_than_a_page_of_fills_and_deposits_since_the_cursor_are_all_read(
    url: str, store: OkxStore, clock: VirtualClock
) -> None:
    """OKX answers the newest 100 from ``begin`` on: moving ``begin`` past the newest would skip
    every older one, so the walk goes backwards with ``end`` down to the cursor."""
    t = int(clock.now() * 1000)
    for i in range(250):  # three at each millisecond: a page may end inside a millisecond
        store.add_fill(
            "BTC-USDT",
            trade_id=10_000 + i,
            ts=t - 30 * DAY_MS + i // 3,
            side="buy",
            px="1",
            sz="1",
            fee="0",
            fee_ccy="USDT",
        )
    for i in range(130):
        store.deposits.append(
            dict(store.deposits[0], depId=str(90_000 + i), ts=str(t - 50 * DAY_MS + i * 1000))
        )
    session = _session(store)
    adapter = _build(url, session, clock)
    try:
        [account] = await adapter.fetch_accounts()
        found = (await adapter.fetch_transactions(account)).transactions
    finally:
        await adapter.aclose()
    assert len([t for t in found if t.type is TransactionType.TRADE]) == 252
    assert len([t for t in found if t.subtype is TransactionSubtype.TRANSFER_IN]) == 131
    # the next sync starts a day before the newest fill it saw
    cursor = session.state["cursors"][account.provider_account_id]["trades"]
    assert cursor == max(int(f["ts"]) for f in store.fills)
    store.requests.clear()
    again = _build(url, _session(store, state=session.state), clock)
    try:
        [account] = await again.fetch_accounts()
        await again.fetch_transactions(account)
    finally:
        await again.aclose()
    begins = {q.get("begin") for p, q in store.requests if p == "trade/fills-history"}
    assert begins == {str(cursor - DAY_MS)}


@pytest.mark.parametrize(
    ("fault", "raised", "words"),
    [
        ("key", ProviderAuthError, "Invalid OK-ACCESS-KEY"),
        ("maintenance", Unavailable, "maintenance"),
        ("429", RateLimited, "rate limit"),
    ],
)
async def test_each_okx_error_is_a_clear_status(
    adapter: ExchangeAdapter, store: OkxStore, fault: str, raised: type[Exception], words: str
) -> None:
    store.inject("account/balance", fault)
    with pytest.raises(raised, match=words):
        await adapter.fetch_accounts()


async def test_an_expired_timestamp_is_retried_once(adapter: ExchangeAdapter, store: OkxStore) -> None:
    store.inject("account/balance", "timestamp")
    [account] = await adapter.fetch_accounts()
    assert account.balance is not None


async def test_the_funding_account_is_counted_with_the_trading_account(
    adapter: ExchangeAdapter, store: OkxStore
) -> None:
    """OKX keeps two accounts per key: deposits land in the funding account (``asset/balances``)
    and only what is moved to the trading account is in ``account/balance``."""
    store.funding = {"BTC": "0.1", "SOL": "3", "EUR": "20"}
    [account] = await adapter.fetch_accounts()
    held = {h.symbol: h for h in await adapter.fetch_holdings(account)}
    assert held["BTC"].quantity == Decimal("0.35")  # 0.25 trading + 0.1 funding
    assert held["SOL"].quantity == Decimal(3)
    assert account.cash_value == Decimal(70)
    assert "asset/balances" in {p for p, _ in store.requests}


async def test_deposits_sharing_a_millisecond_across_a_page_are_all_read(
    url: str, store: OkxStore, clock: VirtualClock
) -> None:
    """The transfer histories' ``after`` is exclusive ("earlier than"): asking again ``until`` the
    oldest instant of a page must not skip the deposits of that instant the page left out."""
    t = int(clock.now() * 1000)
    for i in range(110):  # the 100th and 101st newest share one millisecond
        ts = t - 5 * DAY_MS - (i if i < 100 else 99) * 1000
        store.deposits.append(dict(store.deposits[0], depId=str(70_000 + i), ts=str(ts)))
    adapter = _build(url, _session(store), clock)
    try:
        [account] = await adapter.fetch_accounts()
        found = (await adapter.fetch_transactions(account)).transactions
    finally:
        await adapter.aclose()
    deposits = {t.provider_transaction_id for t in found if t.subtype is TransactionSubtype.TRANSFER_IN}
    assert len(deposits) == 111
