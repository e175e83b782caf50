"""Coinbase (Advanced Trade) through the shared ccxt adapter against the fake Coinbase (CDP key
auth: an ES256 JWT the fake verifies with the test key's public key) over loopback HTTP.

Coinbase keeps deposits, withdrawals and rewards in each account's v2 history, which ccxt
will not read without an account: a sync reads it account by account, paged by
``starting_after``, with a cursor per account in ``session.state``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import TransactionSubtype, TransactionType
from finsync.domain.errors import ProviderAuthError, ProviderError, RateLimited, Unavailable
from finsync.domain.ports import ProviderSession
from finsync.providers.ccxt import coinbase, limits
from finsync.providers.ccxt.adapter import ExchangeAdapter
from tests.fakes.clock import VirtualClock
from tests.fakes.coinbase import (
    DAY_MS,
    CoinbaseStore,
    account_uuid,
    api_urls,
    create_app,
    fake_key,
    iso,
    seed,
)
from tests.fakes.server import serve
from tests.integration.providers.exchanges import build_exchange, exchange_session

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clock: VirtualClock) -> CoinbaseStore:
    data = CoinbaseStore()
    seed(data, clock.now())
    return data


@pytest.fixture
def url(clock: VirtualClock, store: CoinbaseStore) -> Iterator[str]:
    with serve(create_app(clock, store)) as base:
        yield base


def _session(store: CoinbaseStore, state: dict[str, Any] | None = None, **creds: str) -> ProviderSession:
    credentials = {"apiKey": store.key_name, "secret": store.private_pem}
    return exchange_session(credentials | creds, state)


def _build(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    return build_exchange(coinbase, api_urls(url), session, clock)


@pytest.fixture
async def adapter(url: str, store: CoinbaseStore, clock: VirtualClock) -> AsyncIterator[ExchangeAdapter]:
    built = _build(url, _session(store), clock)
    yield built
    await built.aclose()


async def _sync(adapter: ExchangeAdapter) -> dict[str, Any]:
    [account] = await adapter.fetch_accounts()
    batch = await adapter.fetch_transactions(account)
    return {t.provider_transaction_id: t for t in batch.transactions}


async def test_validate_signs_a_jwt_and_a_view_only_key_gets_no_warning(
    adapter: ExchangeAdapter, store: CoinbaseStore
) -> None:
    [key] = await adapter.validate()
    assert key.startswith("key:")
    assert store.key_name not in key
    paths = [p for p, _ in store.requests]
    assert paths[-2:] == ["api/v3/brokerage/accounts", "api/v3/brokerage/key_permissions"]
    assert adapter.session.warnings == []


@pytest.mark.parametrize(("flag", "words"), [("can_trade", "may trade"), ("can_transfer", "may withdraw")])
async def test_a_key_that_may_trade_or_transfer_is_accepted_with_a_warning(
    adapter: ExchangeAdapter, store: CoinbaseStore, flag: str, words: str
) -> None:
    store.permissions[flag] = True
    await adapter.validate()
    [warning] = adapter.session.warnings
    assert words in warning
    assert "read-only key is enough" in warning


async def test_a_key_signed_with_another_private_key_is_refused(
    url: str, store: CoinbaseStore, clock: VirtualClock
) -> None:
    _, other = fake_key()
    bad = _build(url, _session(store, secret=other), clock)
    try:
        with pytest.raises(ProviderAuthError, match="refused the API key") as caught:
            await bad.validate()
        assert "PRIVATE KEY" not in str(caught.value)
        assert store.key_name not in str(caught.value)
    finally:
        await bad.aclose()


async def test_balances_with_what_is_on_hold_valued_from_coinbase_prices(adapter: ExchangeAdapter) -> None:
    [account] = await adapter.fetch_accounts()
    held = {h.symbol: h for h in await adapter.fetch_holdings(account)}
    assert set(held) == {"BTC", "ETH"}  # USD is cash, USDC is empty
    assert held["BTC"].quantity == Decimal("0.5")  # 0.4 available + 0.1 on hold
    assert held["BTC"].current_price == Decimal("60000.01")
    assert account.cash_value == Decimal(1000)
    value = Decimal("0.5") * Decimal("60000.01") + Decimal("2.01") * Decimal("3000.5")
    assert account.balance == value + 1000


async def test_a_sync_reads_trades_deposits_withdrawals_and_rewards_per_account(
    adapter: ExchangeAdapter, store: CoinbaseStore
) -> None:
    """Failed on main: ccxt's Coinbase refuses deposits/withdrawals/ledger without an account
    ("requires an account_id … OR a currency code"), so every sync failed after the balance."""
    found = await _sync(adapter)
    buy = found["trade:BTC/USD:b1"]
    assert (buy.subtype, buy.amount, buy.currency, buy.quantity, buy.fees) == (
        TransactionSubtype.BUY,
        Decimal(-20000),
        "USD",
        Decimal("0.5"),
        Decimal(120),
    )
    assert found["trade:ETH/USD:e1"].quantity == Decimal(2)
    deposit = found["deposit:tx-btc-in"]
    assert (deposit.subtype, deposit.amount, deposit.currency) == (
        TransactionSubtype.TRANSFER_IN,
        Decimal("0.1"),
        "BTC",
    )
    sent = found["withdrawal:tx-btc-out"]  # a send out: what reached the chain, and its network fee
    assert (sent.subtype, sent.amount, sent.fees) == (
        TransactionSubtype.TRANSFER_OUT,
        Decimal("-0.0999"),
        Decimal("0.0001"),
    )
    fiat = found["deposit:tx-usd-dep"]
    assert (fiat.amount, fiat.currency) == (Decimal(26150), "USD")
    reward = found["ledger:tx-eth-reward"]
    assert (reward.type, reward.amount, reward.currency) == (TransactionType.INCOME, Decimal("0.01"), "ETH")
    # advanced-trade fills in the history are the trades already read; a staking transfer moves nothing out
    assert len(found) == 6
    walked = {p.split("/")[2] for p, _ in store.requests if p.endswith("/transactions")}
    assert walked == {account_uuid("BTC"), account_uuid("ETH"), account_uuid("USD")}  # not the empty USDC


async def test_every_page_of_fills_and_of_an_account_history_is_read_and_the_next_sync_starts_at_the_cursors(
    url: str, store: CoinbaseStore, clock: VirtualClock
) -> None:
    t = int(clock.now() * 1000)
    store.fills_page = 100
    store.accounts_page = 2  # four accounts: two pages of brokerage/accounts
    for i in range(250):
        store.add_fill(
            "BTC-USD",
            trade_id=f"p{i:03}",
            ts=t - 40 * DAY_MS + i,
            side="buy",
            price="1",
            size="1",
            commission="0",
        )
    for i in range(230):
        ts = t - 50 * DAY_MS + i * 1000
        store.add_transaction("BTC", tx_id=f"in-{i:03}", ts=ts, kind="send", amount="0.001")
    session = _session(store)
    first = _build(url, session, clock)
    try:
        found = await _sync(first)
    finally:
        await first.aclose()
    assert len([x for x in found.values() if x.type is TransactionType.TRADE]) == 252
    assert len([x for x in found.values() if x.subtype is TransactionSubtype.TRANSFER_IN]) == 232
    fill_cursors = [q.get("cursor") for p, q in store.requests if p.endswith("historical/fills")]
    assert len(fill_cursors) == 3
    assert fill_cursors[0] is None
    btc = f"v2/accounts/{account_uuid('BTC')}/transactions"
    afters = [q.get("starting_after") for p, q in store.requests if p == btc]
    assert len(afters) == 3  # 234 entries, 100 a page
    assert afters[0] is None
    cursors = session.state["cursors"][first._account_id({"info": {}})]
    assert cursors["trades"] == t - 8 * DAY_MS + 123  # the newest fill (its trade_time has .123456 s)
    assert cursors["accounts"][account_uuid("BTC")] == t - 5 * DAY_MS  # the newest BTC entry

    # the next sync: fills from a day before the newest seen; each history stops at its cursor
    store.requests.clear()
    store.add_transaction("BTC", tx_id="late", ts=t - DAY_MS, kind="send", amount="0.002")
    again = _build(url, _session(store, state=session.state), clock)
    try:
        found = await _sync(again)
    finally:
        await again.aclose()
    starts = {q.get("start_sequence_timestamp") for p, q in store.requests if p.endswith("historical/fills")}
    assert starts == {iso(t - 9 * DAY_MS).replace("Z", ".123Z")}
    assert [q.get("starting_after") for p, q in store.requests if p == btc] == [None]
    assert "deposit:late" in found


async def test_an_account_emptied_since_the_last_sync_is_still_read(
    url: str, store: CoinbaseStore, clock: VirtualClock
) -> None:
    session = _session(store)
    first = _build(url, session, clock)
    try:
        await _sync(first)
    finally:
        await first.aclose()
    t = int(clock.now() * 1000)
    store.balances["BTC"] = ("0", "0")
    store.fills.clear()
    store.add_transaction(
        "BTC", tx_id="tx-btc-all-out", ts=t, kind="send", amount="-0.5", fee="0.0001", sent="0.4999"
    )
    again = _build(url, _session(store, state=session.state), clock)
    try:
        found = await _sync(again)
    finally:
        await again.aclose()
    assert found["withdrawal:tx-btc-all-out"].amount == Decimal("-0.4999")


@pytest.mark.parametrize(
    ("path", "fault", "raised", "words"),
    [
        ("api/v3/brokerage/accounts", "401", ProviderAuthError, "refused the API key"),
        ("api/v3/brokerage/accounts", "429", RateLimited, "rate limit"),
        ("api/v3/brokerage/accounts", "503", Unavailable, "Coinbase"),
        ("api/v3/brokerage/orders/historical/fills", "429", RateLimited, "rate limit"),
        ("v2/accounts/{BTC}/transactions", "401", ProviderAuthError, "refused the API key"),
        ("v2/accounts/{BTC}/transactions", "429", RateLimited, "rate limit"),
    ],
)
async def test_each_coinbase_error_is_a_clear_status(
    adapter: ExchangeAdapter,
    store: CoinbaseStore,
    path: str,
    fault: str,
    raised: type[Exception],
    words: str,
) -> None:
    store.inject(path.replace("{BTC}", account_uuid("BTC")), fault)
    with pytest.raises(raised, match=words) as caught:
        await _sync(adapter)
    assert "PRIVATE KEY" not in str(caught.value)


async def test_a_429_holds_every_coinbase_connection_until_the_wait_ends(
    adapter: ExchangeAdapter, store: CoinbaseStore
) -> None:
    store.inject(f"v2/accounts/{account_uuid('BTC')}/transactions", "429")
    with pytest.raises(RateLimited) as caught:
        await _sync(adapter)
    assert caught.value.retry_after == 60.0
    assert limits.BANS["coinbase"] >= adapter.clock.now() + 59


async def test_an_account_history_coinbase_does_not_know_names_the_account(
    adapter: ExchangeAdapter, store: CoinbaseStore
) -> None:
    store.inject(f"v2/accounts/{account_uuid('ETH')}/transactions", "404")
    with pytest.raises(ProviderError, match=rf"ETH account \({account_uuid('ETH')}\).*not_found"):
        await _sync(adapter)
