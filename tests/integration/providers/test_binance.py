"""Binance through the shared ccxt adapter against the fake Binance (real HMAC-SHA256 signing,
``fromId`` paging, 90-day windows, bans) over loopback HTTP, on virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from finsync.domain.enums import AssetType, TransactionSubtype, TransactionType
from finsync.domain.errors import InvalidInput, ProviderAuthError, ProviderError, RateLimited, Unavailable
from finsync.domain.fx import Rate, RateBook
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding
from finsync.infrastructure.db.engine import create_engine
from finsync.infrastructure.ratelimits import PgBucket, PgBuckets
from finsync.providers.ccxt import binance, limits
from finsync.providers.ccxt.adapter import ExchangeAdapter
from finsync.providers.ratelimit import BUCKET_STORE
from tests.fakes.binance import BinanceStore, api_urls, create_app, seed, withdrawal
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.integration.providers.exchanges import build_exchange, exchange_session

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clock: VirtualClock) -> BinanceStore:
    data = BinanceStore()
    seed(data, clock.now())
    return data


@pytest.fixture
def url(clock: VirtualClock, store: BinanceStore) -> Iterator[str]:
    with serve(create_app(clock, store)) as base:
        yield base


def _session(store: BinanceStore, state: dict[str, Any] | None = None, **creds: str) -> ProviderSession:
    credentials = {"apiKey": store.key, "secret": store.secret, "quote_currency": "EUR"} | creds
    return exchange_session(credentials, state)


@pytest.fixture
async def adapter(url: str, store: BinanceStore, clock: VirtualClock) -> AsyncIterator[ExchangeAdapter]:
    built = _build(url, _session(store), clock)
    yield built
    await built.aclose()


def _build(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    return build_exchange(binance, api_urls(url), session, clock)


def _again(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    """The next sync's adapter: the same connection with the state the last sync left."""
    again = ProviderSession(
        connection_id=session.connection_id, credentials=session.credentials, state=session.state
    )
    return _build(url, again, clock)


async def test_validate_is_one_signed_balance_call_and_a_read_only_key_gets_no_warning(
    adapter: ExchangeAdapter, store: BinanceStore
) -> None:
    assert await adapter.validate() == [f"uid:{store.uid}"]
    # ccxt loads the (spot) markets once, then one balance call and the key's restrictions
    assert [p for p, _ in store.requests] == [
        "/api/v3/exchangeInfo",
        "/api/v3/account",
        "/sapi/v1/account/apiRestrictions",
    ]
    assert adapter.session.warnings == []


async def test_a_key_that_may_trade_or_withdraw_is_accepted_with_a_warning(
    adapter: ExchangeAdapter, store: BinanceStore
) -> None:
    store.restrictions |= {"enableSpotAndMarginTrading": True, "enableWithdrawals": True}
    await adapter.validate()
    assert len(adapter.session.warnings) == 1
    assert "may trade and withdraw" in adapter.session.warnings[0]
    assert "read-only key is enough" in adapter.session.warnings[0]


async def test_a_wrong_secret_fails_the_signature_check_as_a_refused_key(
    url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    bad = _build(url, _session(store, secret="not-the-secret-0000"), clock)
    try:
        with pytest.raises(ProviderAuthError, match="Signature for this request is not valid") as caught:
            await bad.validate()
        assert "not-the-secret" not in str(caught.value)
        assert "signature=" not in str(caught.value)
    finally:
        await bad.aclose()


async def test_a_quote_currency_that_is_not_iso_is_refused_before_any_call(
    url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    bad = _build(url, _session(store, quote_currency="USDT"), clock)
    try:
        with pytest.raises(InvalidInput, match="ISO-4217"):
            await bad.validate()
        assert store.requests == []
    finally:
        await bad.aclose()


async def test_balances_become_holdings_valued_in_the_quote_currency_from_binance_tickers(
    adapter: ExchangeAdapter, store: BinanceStore
) -> None:
    [account] = await adapter.fetch_accounts()
    held = {h.symbol: h for h in await adapter.fetch_holdings(account)}
    assert account.currency == "EUR"
    assert account.provider_account_id == f"uid:{store.uid}"
    assert set(held) == {"BTC", "ETH", "SHIB", "USDT"}  # zero DOGE left out; EUR is cash
    btc = held["BTC"]
    assert btc.quantity == Decimal("0.5")
    assert btc.asset_type is AssetType.CRYPTO
    assert btc.price_currency == "EUR"
    assert btc.currency == "EUR"
    assert btc.current_price == Decimal("55500.00")  # BTC/EUR, the exchange's own ticker
    # SHIB/USDT 0.000025 ÷ EUR/USDT 1.08: through one bridge asset when there is no direct pair, exactly
    assert held["SHIB"].current_price == Decimal("0.00002500") / Decimal("1.0800")
    assert held["ETH"].quantity == Decimal("2.5")  # free + locked
    assert held["SHIB"].quantity == Decimal("1000000")
    assert held["SHIB"].market_value is not None
    assert account.cash_value == Decimal("100")
    total = sum((h.market_value or Decimal(0) for h in held.values()), Decimal(0))
    assert account.holdings_value == total
    assert account.balance == total + Decimal("100")
    # one markets call, one balance call, one tickers call for just the symbols needed
    assert [p for p, _ in store.requests] == [
        "/api/v3/exchangeInfo",
        "/api/v3/account",
        "/api/v3/ticker/24hr",
    ]


class BookRates:
    """The sync's reference rates (``StoredRates`` reads them from the database) over fixings in
    memory, on one day; records what the adapter asked."""

    def __init__(self, fixings: list[tuple[str, date, Decimal]], day: date) -> None:
        self.book, self.day = RateBook.of(fixings), day
        self.asked: list[tuple[str, str]] = []

    async def rate(self, base: str, quote: str) -> Rate | None:
        self.asked.append((base, quote))
        return self.book.rate(base, quote, self.day)


SUNDAY = date(2025, 10, 12)
FIXINGS = [("USD", date(2025, 10, 9), Decimal("1.1500")), ("USD", date(2025, 10, 10), Decimal("1.1600"))]


async def _usd_holdings(
    url: str, store: BinanceStore, clock: VirtualClock, rates: BookRates | None
) -> tuple[ProviderAccount, dict[str, ProviderHolding], list[str]]:
    session = _session(store, quote_currency="USD")
    session.rates = rates
    usd = _build(url, session, clock)
    try:
        [account] = await usd.fetch_accounts()
        held = {h.symbol: h for h in await usd.fetch_holdings(account)}
    finally:
        await usd.aclose()
    return account, held, session.warnings


async def test_on_usd_binance_values_at_its_eur_prices_and_the_ecb_rate_of_the_day(
    url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    """Binance has no USD market (USDT is a coin, not the dollar): each asset is priced in EUR,
    which Binance quotes, and converted at the last ECB fixing on or before the sync's day."""
    rates = BookRates([*FIXINGS, ("USD", date(2025, 10, 13), Decimal("1.2000"))], SUNDAY)
    account, held, warnings = await _usd_holdings(url, store, clock, rates)
    assert rates.asked == [("EUR", "USD")]  # one rate for every asset
    assert account.currency == "USD"
    assert set(held) == {"BTC", "ETH", "SHIB", "USDT", "EUR"}  # EUR is not cash in a USD account
    rate = Decimal("1.16")  # Friday's fixing: none on Sunday, and Monday's is later
    btc = held["BTC"]
    assert (btc.price_currency, btc.current_price, btc.currency) == ("EUR", Decimal("55500.00"), "USD")
    assert btc.market_value == Decimal("0.5") * Decimal("55500.00") * rate
    assert btc.raw["value_conversion"] == {
        "rate": "1.1600000000",
        "rate_date": "2025-10-10",
        "source": "ECB reference rate",
    }
    assert held["ETH"].market_value == Decimal("2.5") * Decimal("2780.00") * rate
    # USDT is valued like any coin, through EUR/USDT: never taken as one dollar
    usdt = held["USDT"]
    assert usdt.price_currency == "EUR"
    assert usdt.market_value == Decimal("150.25") / Decimal("1.0800") * rate
    assert held["SHIB"].market_value == Decimal(1000000) * (Decimal("0.00002500") / Decimal("1.0800")) * rate
    euros = held["EUR"]  # fiat cash is its own price: converted at the rate itself
    assert (euros.asset_type, euros.current_price, euros.market_value) == (AssetType.CASH, 1, Decimal(116))
    total = sum((h.market_value or Decimal(0) for h in held.values()), Decimal(0))
    assert (account.holdings_value, account.cash_value, account.balance) == (total, 0, total)
    assert warnings == [
        "Binance has no USD price for BTC, ETH, EUR, SHIB, USDT: valued at Binance's EUR prices, "
        "converted at the ECB reference rate of 2025-10-10 (1 EUR = 1.16 USD)"
    ]


@pytest.mark.parametrize("stored", [[], None], ids=["no-fixing-yet", "no-rates-port"])
async def test_without_a_stored_rate_usd_holdings_keep_their_quantities_and_say_why(
    url: str, store: BinanceStore, clock: VirtualClock, stored: list[tuple[str, date, Decimal]] | None
) -> None:
    rates = None if stored is None else BookRates(stored, SUNDAY)
    account, held, warnings = await _usd_holdings(url, store, clock, rates)
    assert held["BTC"].quantity == Decimal("0.5")
    assert (held["BTC"].current_price, held["BTC"].price_currency) == (Decimal("55500.00"), "EUR")
    assert all(h.market_value is None for h in held.values())
    assert "value_conversion" not in held["BTC"].raw
    # the balance is unknown, not the cash alone (0): net worth leaves it out and says so
    assert (account.balance, account.holdings_value, account.cash_value) == (None, None, 0)
    [said] = warnings
    assert said.startswith("Binance has no USD price for BTC, ETH, EUR, SHIB, USDT: they are priced in EUR")
    assert "no EUR→USD ECB reference rate is stored yet" in said


async def test_a_quote_binance_has_markets_in_needs_no_reference_rate(
    url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    rates = BookRates(FIXINGS, SUNDAY)
    session = _session(store)  # EUR
    session.rates = rates
    eur = _build(url, session, clock)
    try:
        [account] = await eur.fetch_accounts()
        held = await eur.fetch_holdings(account)
    finally:
        await eur.aclose()
    assert rates.asked == []
    assert {h.price_currency for h in held} == {"EUR"}
    assert session.warnings == []


async def test_trades_transfers_and_fees_with_their_assets(
    adapter: ExchangeAdapter, store: BinanceStore
) -> None:
    [account] = await adapter.fetch_accounts()
    batch = await adapter.fetch_transactions(account)
    found = {t.provider_transaction_id: t for t in batch.transactions}
    buy = found["trade:BTC/USDT:1000"]
    assert (buy.type, buy.subtype) == (TransactionType.TRADE, TransactionSubtype.BUY)
    assert buy.amount == Decimal("-5000")
    assert buy.currency == "USDT"
    assert buy.symbol == "BTC"
    assert buy.quantity == Decimal("0.1")
    assert buy.unit_price == Decimal("50000")
    assert buy.fees is None
    assert buy.raw["fee"] == {"cost": "0.00750000", "currency": "BNB"}
    sell = found["trade:ETH/BTC:77"]
    assert sell.subtype is TransactionSubtype.SELL
    assert sell.currency == "BTC"
    assert sell.fees == Decimal("0.000025")
    deposit = found["deposit:769800519366885376"]
    assert (deposit.subtype, deposit.amount, deposit.currency) == (
        TransactionSubtype.TRANSFER_IN,
        Decimal("0.6"),
        "BTC",
    )
    withdrawal = found["withdrawal:b6ae22b3aa844210a7041aee7589627c"]
    assert withdrawal.subtype is TransactionSubtype.TRANSFER_OUT
    assert withdrawal.amount == Decimal("-100")
    assert withdrawal.fees == Decimal("1")  # the network fee
    assert len(found) == 6
    # every deposit/withdrawal query stays within Binance's 90 days
    windows = [p for p, _ in store.requests if "capital" in p]
    assert windows
    assert all(
        int(q["endTime"]) - int(q["startTime"]) <= 90 * 86_400_000
        for _, q in store.requests
        if "capital" in _
    )


async def test_trade_history_pages_by_from_id_and_resumes_from_the_cursor(
    url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    start = int(clock.now() * 1000) - 30 * 86_400_000
    for i in range(2500):
        store.add_trade(
            "BTCUSDT",
            id=5000 + i,
            time_ms=start + i,
            buyer=i % 2 == 0,
            qty="0.001",
            price="50000",
            quote_qty="50",
            commission="0.05",
            commission_asset="USDT",
        )
    session = _session(store)
    first = _build(url, session, clock)
    try:
        [account] = await first.fetch_accounts()
        trades = [
            t
            for t in (await first.fetch_transactions(account)).transactions
            if t.type is TransactionType.TRADE
        ]
    finally:
        await first.aclose()
    assert len([t for t in trades if t.symbol == "BTC"]) == 2503
    from_ids = [
        q.get("fromId") for p, q in store.requests if p.endswith("myTrades") and q["symbol"] == "BTCUSDT"
    ]
    assert from_ids == ["0", "5997", "6997"]  # pages of 1000 until a short one
    # the next sync asks each symbol from its last id on: nothing re-read but the overlap of one
    store.requests.clear()
    store.add_trade(
        "BTCUSDT",
        id=9000,
        time_ms=start + 9000,
        buyer=True,
        qty="1",
        price="1",
        quote_qty="1",
        commission="0",
        commission_asset="USDT",
    )
    again = _again(url, session, clock)
    try:
        [account] = await again.fetch_accounts()
        new = [
            t
            for t in (await again.fetch_transactions(account)).transactions
            if t.symbol == "BTC" and t.type is TransactionType.TRADE
        ]
    finally:
        await again.aclose()
    assert sorted(t.provider_transaction_id for t in new) == ["trade:BTC/USDT:7499", "trade:BTC/USDT:9000"]


def _deposit(store: BinanceStore, id: str, at_ms: int) -> None:
    store.deposits.append(
        {
            "id": id,
            "amount": "0.01000000",
            "coin": "BTC",
            "network": "BTC",
            "status": 1,
            "address": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "addressTag": "",
            "txId": f"tx-{id}",
            "insertTime": at_ms,
            "transferType": 0,
            "confirmTimes": "1/1",
            "unlockConfirm": 0,
            "walletType": 0,
            "_t": at_ms,
        }
    )


def _withdrawal(store: BinanceStore, id: str, at_ms: int) -> None:
    store.withdrawals.append(withdrawal(id, at_ms, amount="1.00000000", fee="0.10000000", tx=f"0x{id}"))


async def test_a_90_day_window_holding_more_than_a_page_of_transfers_is_read_whole(
    url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    """Binance answers at most 1,000 deposits (or withdrawals) a query and keeps quiet about the
    rest: a full window is read again in parts. Items share instants on both sides of every
    whole second (where parts meet): none is lost, none read twice, and a re-sync reads from
    the cursor only."""
    day = 86_400_000
    t = int(clock.now() * 1000)
    base = (t - 20 * day) // 1000 * 1000
    deposits, withdrawals = set(), set()
    for s in range(400):  # 2,400 deposits: three at the end of each second, three at the next's start
        for k in range(6):
            at = base + s * 1000 - (1 if k < 3 else 0)
            _deposit(store, f"dep-{s}-{k}", at)
            deposits.add(f"deposit:dep-{s}-{k}")
    for s in range(300):  # 1,200 withdrawals, also within their seconds
        for k in range(4):
            at = base + s * 1000 + (999 if k < 2 else 0)
            _withdrawal(store, f"wd{s}x{k}", at)
            withdrawals.add(f"withdrawal:wd{s}x{k}")
    session = _session(store)
    first = _build(url, session, clock)
    try:
        [account] = await first.fetch_accounts()
        batch = await first.fetch_transactions(account)
    finally:
        await first.aclose()
    ids = [t.provider_transaction_id for t in batch.transactions]
    assert len(ids) == len(set(ids))
    assert {i for i in ids if i.startswith("deposit:dep-")} == deposits
    assert {i for i in ids if i.startswith("withdrawal:wd")} == withdrawals
    capital = [q for p, q in store.requests if "capital" in p]
    assert all(int(q["endTime"]) - int(q["startTime"]) <= 90 * day for q in capital)
    assert all(int(q["limit"]) <= 1000 for q in capital)
    # the answers kept (the short ones; a full one is asked again in halves) meet end to start:
    # no instant asked twice, none left out
    for path, stored in (("hisrec", store.deposits), ("history", store.withdrawals)):
        asked = [(int(q["startTime"]), int(q["endTime"])) for p, q in store.requests if p.endswith(path)]
        kept = sorted((a, b) for a, b in asked if sum(a <= i["_t"] <= b for i in stored) < 1000)
        assert all(after[0] == before[1] + 1 for before, after in pairwise(kept))
        assert kept[-1][1] >= t  # up to the sync's now
    # a re-sync a day later reads from the cursor: only what is new, nothing of the dense window
    store.requests.clear()
    clock.advance(86_400)
    _deposit(store, "dep-new", t + 3_600_000)
    again = _again(url, session, clock)
    try:
        [account] = await again.fetch_accounts()
        new = [
            t.provider_transaction_id
            for t in (await again.fetch_transactions(account)).transactions
            if t.type is not TransactionType.TRADE
        ]
    finally:
        await again.aclose()
    assert new == ["deposit:dep-new"]
    starts = [int(q["startTime"]) for p, q in store.requests if "capital" in p]
    assert len(starts) == 2  # one window each for deposits and withdrawals
    assert min(starts) >= t - 2 * day


async def test_symbols_come_from_balances_and_from_past_trades(
    adapter: ExchangeAdapter, store: BinanceStore
) -> None:
    adapter.session.state = {"cursors": {f"uid:{store.uid}": {"trades": {"BNB/USDT": 1}}}}
    [account] = await adapter.fetch_accounts()
    await adapter.fetch_transactions(account)
    asked = {q["symbol"] for p, q in store.requests if p.endswith("myTrades")}
    # BTC, ETH, SHIB and EUR are held; BNB was traded before though none is held now
    assert asked == {"BTCUSDT", "ETHUSDT", "ETHBTC", "SHIBUSDT", "EURUSDT", "BTCEUR", "ETHEUR", "BNBUSDT"}


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ("key", ProviderAuthError, "Invalid API-key"),
        ("timestamp", Unavailable, "nonce"),
        ("maintenance", Unavailable, "maintenance"),
        ("error", ProviderError, "Illegal characters"),
    ],
)
async def test_each_binance_error_is_a_clear_status(
    adapter: ExchangeAdapter, store: BinanceStore, fault: str, error: type[Exception], words: str
) -> None:
    store.inject("/api/v3/account", fault)
    store.inject("/api/v3/account", fault)  # an invalid nonce is retried once
    with pytest.raises(error, match=words):
        await adapter.fetch_accounts()


async def test_an_invalid_timestamp_once_is_retried(adapter: ExchangeAdapter, store: BinanceStore) -> None:
    store.inject("/api/v3/account", "timestamp")
    [account] = await adapter.fetch_accounts()
    assert account.balance is not None


async def test_a_429_is_rate_limited_and_holds_every_connection_of_binance(
    adapter: ExchangeAdapter, url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    store.inject("/api/v3/account", "429")
    with pytest.raises(RateLimited) as caught:
        await adapter.fetch_accounts()
    assert caught.value.retry_after == 30
    assert caught.value.retry_at is not None
    # another connection (another key) waits for the same budget instead of earning a 418
    other = _build(url, _session(store), clock)
    try:
        before = clock.now()
        await other.validate()
        assert clock.now() - before >= 30
    finally:
        await other.aclose()


async def test_a_418_is_an_ip_ban_until_its_end_and_preflight_refuses_without_calling(
    adapter: ExchangeAdapter, url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    store.inject("/api/v3/account", "418")
    with pytest.raises(RateLimited, match="banned this server's IP address until") as caught:
        await adapter.fetch_accounts()
    assert caught.value.retry_at is not None
    assert caught.value.retry_at.timestamp() == pytest.approx(clock.now() + 7200, abs=1)
    other = _build(url, _session(store), clock)
    try:
        calls = len(store.requests)
        with pytest.raises(RateLimited, match="banned"):
            await other.preflight()
        assert len(store.requests) == calls
    finally:
        await other.aclose()


async def test_a_key_whose_permissions_cannot_be_read_is_still_accepted(
    adapter: ExchangeAdapter, store: BinanceStore
) -> None:
    store.inject("/sapi/v1/account/apiRestrictions", "error")
    assert await adapter.validate() == [f"uid:{store.uid}"]
    assert adapter.session.warnings == []


async def test_a_refused_timestamp_asks_binance_for_its_clock_before_the_retry(
    adapter: ExchangeAdapter, store: BinanceStore
) -> None:
    store.inject("/api/v3/account", "timestamp")
    await adapter.validate()
    paths = [p for p, _ in store.requests]
    assert paths[paths.index("/api/v3/account") + 1] == "/api/v3/time"


async def test_a_429_holds_binance_for_another_process_through_the_shared_store(
    url: str, store: BinanceStore, clock: VirtualClock, pg_database: str | None
) -> None:
    """Two processes (two engines on one PostgreSQL): the worker that earned the 429 blocks the
    exchange's budget row, so the API process validating another key waits instead of
    earning Binance's 418."""
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    engines = [create_engine(pg_database), create_engine(pg_database)]
    try:
        adapters = []
        for engine in engines:
            token = BUCKET_STORE.set(PgBuckets(engine))
            try:
                adapters.append(_build(url, _session(store), clock))
            finally:
                BUCKET_STORE.reset(token)
        first, second = (a.budget.bucket for a in adapters)
        assert isinstance(first, PgBucket)
        assert first is not second  # nothing shared in memory: only the database row
        store.inject("/api/v3/account", "429")
        with pytest.raises(RateLimited):
            await adapters[0].fetch_accounts()
        limits.BANS.clear()  # the other process has no memory of it: only the database does
        before = clock.now()
        await adapters[1].validate()
        assert clock.now() - before >= 30
    finally:
        for adapter in adapters:
            await adapter.aclose()
        for engine in engines:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DELETE FROM rate_budgets")
            await engine.dispose()


async def test_a_pair_asked_before_is_asked_again_after_its_asset_is_sold_out(
    url: str, store: BinanceStore, clock: VirtualClock
) -> None:
    """BNB deposited and held at the first sync (BNB/USDT asked: no trades yet), then all sold
    for USDT before the next: Binance answers trades only per symbol, and BNB is no longer held,
    so the pair must come from what earlier syncs asked, or the sale is never read."""
    store.balances["BNB"] = ("5.00000000", "0.00000000")
    session = _session(store)
    first = _build(url, session, clock)
    try:
        [account] = await first.fetch_accounts()
        await first.fetch_transactions(account)
    finally:
        await first.aclose()
    assert "BNBUSDT" in {q["symbol"] for p, q in store.requests if p.endswith("myTrades")}
    store.balances["BNB"] = ("0.00000000", "0.00000000")
    store.add_trade(
        "BNBUSDT",
        id=4242,
        time_ms=int(clock.now() * 1000) - 3_600_000,
        buyer=False,
        qty="5.00000000",
        price="600.00",
        quote_qty="3000.00000000",
        commission="3.00000000",
        commission_asset="USDT",
    )
    second = _again(url, session, clock)
    try:
        [account] = await second.fetch_accounts()
        batch = await second.fetch_transactions(account)
        found = {t.provider_transaction_id: t for t in batch.transactions}
    finally:
        await second.aclose()
    sale = found["trade:BNB/USDT:4242"]
    assert (sale.subtype, sale.quantity, sale.amount) == (
        TransactionSubtype.SELL,
        Decimal("-5"),
        Decimal("3000"),
    )
