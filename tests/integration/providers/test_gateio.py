"""Gate.io through the shared ccxt adapter against the fake Gate.io API v4 (real KEY / Timestamp /
SIGN headers: HMAC-SHA512 over method, path, query, SHA-512 of the body and timestamp) over
loopback HTTP: history asked 30 days at a time, each window paged."""

from __future__ import annotations

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
from tests.integration.providers.exchanges import build_exchange, exchange_session, synced

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
    return exchange_session(credentials | creds, state)


def _build(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    return build_exchange(gateio, api_urls(url), session, clock)


@pytest.fixture
async def adapter(url: str, store: GateStore, clock: VirtualClock) -> AsyncIterator[ExchangeAdapter]:
    built = _build(url, _session(store), clock)
    yield built
    await built.aclose()


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
    found = {t.provider_transaction_id: t for t in await synced(adapter)}
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
    assert len([x for x in found if not x.startswith("ledger:")]) == 4


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
    found = {x.provider_transaction_id for x in await synced(adapter)}
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
        await synced(again)
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
    found = await synced(adapter)
    assert len([x for x in found if x.type is TransactionType.TRADE]) == 252
    assert len([x for x in found if x.subtype is TransactionSubtype.TRANSFER_IN]) == 231


BOOK = "/api/v4/spot/account_book"


def _ledger(found: list[Any]) -> dict[str, Any]:
    return {t.provider_transaction_id: t for t in found if t.provider_transaction_id.startswith("ledger:")}


def _again(adapter: ExchangeAdapter, store: GateStore, clock: VirtualClock) -> ExchangeAdapter:
    """A later sync of the same connection: a new adapter on the first one's saved state."""
    url = adapter.ex.urls["api"]["private"]["spot"].removesuffix("/api/v4")
    return _build(url, _session(store, state=adapter.session.state), clock)


async def test_account_book_rewards_are_income_and_other_entries_are_not(
    adapter: ExchangeAdapter, store: GateStore
) -> None:
    """Failed before: the account book was not read (ccxt sends its ``from`` in milliseconds,
    which Gate refuses), so Gate's earn interest and airdrops were never income. Now they are;
    the book's lines for trades, fees and deposits are left to their own endpoints."""
    found = await synced(adapter)
    rewards = _ledger(found)
    assert set(rewards) == {"ledger:9001", "ledger:9002"}
    interest, airdrop = rewards["ledger:9001"], rewards["ledger:9002"]
    assert (interest.type, interest.subtype, interest.amount, interest.currency, interest.symbol) == (
        TransactionType.INCOME,
        TransactionSubtype.INTEREST,
        Decimal("0.42"),
        "USDT",
        "USDT",
    )
    assert (airdrop.amount, airdrop.currency, airdrop.quantity) == (Decimal("1.5"), "GT", Decimal("1.5"))
    assert len(found) == 6  # two trades, a deposit, a withdrawal, two rewards: each once
    asked = [q for p, q in store.requests if p == BOOK]
    assert asked
    for query in asked:
        assert {"from", "to", "page", "limit"} == set(query)  # no ``until``/``type`` of ccxt's
        assert max(int(query["from"]), int(query["to"])) < 10**10  # seconds, not milliseconds
        assert 0 <= int(query["to"]) - int(query["from"]) <= 30 * 86_400


async def test_the_book_is_read_30_days_at_a_time_back_to_an_old_reward(
    adapter: ExchangeAdapter, store: GateStore, clock: VirtualClock
) -> None:
    """Gate refuses a book query spanning more than 30 days: a reward from 400 days ago is found
    by walking 30-day windows, none wider (the fake answers a wider one with a 400)."""
    t = int(clock.now() * 1000)
    store.add_book(book_id=8001, ts=t - 400 * DAY_MS, currency="ETH", change="0.01", balance="1",
                   kind="str_int_in")  # fmt: skip
    rewards = _ledger(await synced(adapter))
    assert rewards["ledger:8001"].amount == Decimal("0.01")
    asked = [q for p, q in store.requests if p == BOOK]
    assert len(asked) > 400 // 30
    assert max(int(q["to"]) - int(q["from"]) for q in asked) <= 30 * 86_400


async def test_more_than_a_page_of_the_book_is_read_by_page(
    adapter: ExchangeAdapter, store: GateStore, clock: VirtualClock
) -> None:
    """Gate answers 100 entries a page: 250 daily-interest lines in one window take three pages."""
    t = int(clock.now() * 1000)
    for i in range(250):
        store.add_book(book_id=100_000 + i, ts=t - 5 * DAY_MS + i * 1000, currency="USDT",
                       change="0.01", balance="200", kind="hodl_int")  # fmt: skip
    rewards = _ledger(await synced(adapter))
    assert len(rewards) == 252
    pages = sorted(int(q["page"]) for p, q in store.requests if p == BOOK and int(q["page"]) > 1)
    assert pages == [2, 3]


async def test_a_resync_reads_the_book_from_its_cursor_and_stores_each_reward_once(
    adapter: ExchangeAdapter, store: GateStore, clock: VirtualClock
) -> None:
    """The book's cursor moves to its newest entry: the next sync asks one window from a day
    before it (the overlap), finds a reward that arrived since, and answers the overlapped
    rewards under the same ids (the store keeps one row per id)."""
    before = int(clock.now() * 1000)
    first = _ledger(await synced(adapter))
    [cursors] = adapter.session.state["cursors"].values()
    assert cursors["ledger"] >= before - DAY_MS  # no entry newer than the overlap: now, less a day
    clock.advance(3 * 86_400)
    t = int(clock.now() * 1000)
    store.add_book(book_id=9100, ts=t - 2 * DAY_MS, currency="USDT", change="0.05", balance="200.47",
                   kind="interest_in")  # fmt: skip
    store.add_book(book_id=9101, ts=t - DAY_MS // 2, currency="USDT", change="0.07", balance="200.54",
                   kind="interest_in")  # fmt: skip
    cursor = cursors["ledger"]
    store.requests.clear()
    again = _again(adapter, store, clock)
    try:
        second = await synced(again)
    finally:
        await again.aclose()
    asked = [q for p, q in store.requests if p == BOOK]
    assert len(asked) == 1  # the days since the cursor: one window, one page
    assert int(asked[0]["from"]) == (cursor - DAY_MS) // 1000
    rewards = _ledger(second)
    assert set(rewards) == {"ledger:9100", "ledger:9101"}
    assert not set(rewards) & set(first)
    [moved] = again.session.state["cursors"].values()
    assert moved["ledger"] == t - DAY_MS // 2  # the newest entry read


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
