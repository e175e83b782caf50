"""Kraken through the shared ccxt adapter against the fake Kraken (real HMAC-SHA512 API-Sign,
growing nonces, ``ofs`` paging, errors in the body with HTTP 200) over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from finsync.domain.enums import TransactionSubtype, TransactionType
from finsync.domain.errors import ProviderAuthError, ProviderError, RateLimited, Unavailable
from finsync.domain.ports import ProviderSession
from finsync.providers.ccxt import kraken
from finsync.providers.ccxt.adapter import ExchangeAdapter
from tests.fakes.clock import VirtualClock
from tests.fakes.kraken import KrakenStore, api_urls, create_app, seed
from tests.fakes.server import serve
from tests.integration.providers.exchanges import build_exchange, exchange_session

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clock: VirtualClock) -> KrakenStore:
    data = KrakenStore()
    seed(data, clock.now())
    return data


@pytest.fixture
def url(clock: VirtualClock, store: KrakenStore) -> Iterator[str]:
    with serve(create_app(clock, store)) as base:
        yield base


def _session(store: KrakenStore, state: dict[str, Any] | None = None, **creds: str) -> ProviderSession:
    return exchange_session({"apiKey": store.key, "secret": store.secret} | creds, state)


def _build(url: str, session: ProviderSession, clock: VirtualClock) -> ExchangeAdapter:
    return build_exchange(kraken, api_urls(url), session, clock)


@pytest.fixture
async def adapter(url: str, store: KrakenStore, clock: VirtualClock) -> AsyncIterator[ExchangeAdapter]:
    built = _build(url, _session(store), clock)
    yield built
    await built.aclose()


async def test_validate_signs_with_api_sign_and_cannot_tell_permissions(
    adapter: ExchangeAdapter, store: KrakenStore
) -> None:
    [key] = await adapter.validate()
    assert key.startswith("key:")
    assert store.key not in key
    assert [m for m, _ in store.requests if m == "BalanceEx"] == ["BalanceEx"]
    assert adapter.session.warnings == []


async def test_a_wrong_secret_is_a_refused_key_though_ccxt_calls_it_an_exchange_error(
    url: str, store: KrakenStore, clock: VirtualClock
) -> None:
    bad = _build(url, _session(store, secret="d3Jvbmctc2VjcmV0LTAwMDA="), clock)
    try:
        with pytest.raises(ProviderAuthError, match="EAPI:Invalid signature") as caught:
            await bad.validate()
        assert "d3Jvbmctc2VjcmV0" not in str(caught.value)
    finally:
        await bad.aclose()


async def test_balances_in_usd_by_default_with_staked_assets_unpriced_but_kept(
    adapter: ExchangeAdapter, store: KrakenStore
) -> None:
    [account] = await adapter.fetch_accounts()
    held = {h.symbol: h for h in await adapter.fetch_holdings(account)}
    assert account.currency == "USD"
    assert account.cash_value == Decimal("1250.5")
    assert held["BTC"].current_price == Decimal("60000.0")
    assert held["BTC"].market_value == Decimal("30000.00000000000")
    assert held["ETH"].market_value == Decimal("6000.0000000000000")
    assert held["SOL.S"].quantity == Decimal("10")
    assert held["SOL.S"].market_value is None
    assert "SOL.S" in adapter.session.warnings[0]
    assert account.balance == Decimal("1250.5") + Decimal(30000) + Decimal(6000)


async def test_trades_transfers_and_staking_rewards(adapter: ExchangeAdapter, store: KrakenStore) -> None:
    [account] = await adapter.fetch_accounts()
    found = {t.provider_transaction_id: t for t in (await adapter.fetch_transactions(account)).transactions}
    buy = found["trade:BTC/USD:TQ0000-AAAAA-BBBBBB"]
    assert buy.subtype is TransactionSubtype.BUY
    assert buy.amount == Decimal("-300")
    assert buy.currency == "USD"
    assert buy.fees == Decimal("0.78")
    assert buy.quantity == Decimal("0.01")
    deposit = found["deposit:FTQ0000"]
    assert deposit.subtype is TransactionSubtype.TRANSFER_IN
    assert deposit.currency == "BTC"
    withdrawal = found["withdrawal:AGBZNBO"]
    assert withdrawal.amount == Decimal("-0.5")
    assert withdrawal.fees == Decimal("0.004")
    reward = found["ledger:LSTAKE-00001-AAAAAA"]
    assert (reward.type, reward.amount, reward.currency) == (TransactionType.INCOME, Decimal("0.05"), "SOL.S")
    assert "ledger:LTRADE-00001-AAAAAA" not in found  # the trade's ledger leg is the trade itself
    assert len(found) == 3 + 2 + 1 + 1


async def test_history_pages_by_offset_and_transfers_backwards(
    url: str, store: KrakenStore, clock: VirtualClock
) -> None:
    seed(store, clock.now(), trades=120, deposits=60)
    adapter = _build(url, _session(store), clock)
    try:
        [account] = await adapter.fetch_accounts()
        found = (await adapter.fetch_transactions(account)).transactions
    finally:
        await adapter.aclose()
    assert len([t for t in found if t.type is TransactionType.TRADE]) == 120
    assert len([t for t in found if t.subtype is TransactionSubtype.TRANSFER_IN]) == 60
    offsets = [form.get("ofs") for method, form in store.requests if method == "TradesHistory"]
    assert offsets == ["0", "50", "100", "120"]
    ends = [form.get("end") for method, form in store.requests if method == "DepositStatus"]
    assert ends[0] is None
    assert len(ends) >= 3


async def test_the_next_sync_starts_from_the_cursor_with_an_overlap(
    url: str, store: KrakenStore, clock: VirtualClock
) -> None:
    session = _session(store)
    first = _build(url, session, clock)
    try:
        [account] = await first.fetch_accounts()
        await first.fetch_transactions(account)
    finally:
        await first.aclose()
    newest = max(float(t["time"]) for t in store.trades.values())
    store.requests.clear()
    clock.advance(86_400)
    again = _build(url, _session(store, state=session.state), clock)
    try:
        [account] = await again.fetch_accounts()
        await again.fetch_transactions(account)
    finally:
        await again.aclose()
    [start] = {form["start"] for method, form in store.requests if method == "TradesHistory"}
    assert int(start) == int(newest - 86_400)


@pytest.mark.parametrize(
    ("error", "raised", "words"),
    [
        ("EAPI:Invalid key", ProviderAuthError, "refused the API key"),
        ("EGeneral:Permission denied", ProviderAuthError, "Permission denied"),
        ("EService:Market in cancel_only mode", Unavailable, "under maintenance"),
        ("EService:Unavailable", Unavailable, "unavailable"),
        ("EGeneral:Invalid arguments", ProviderError, "answered with an error"),
        ("EAPI:Rate limit exceeded", RateLimited, "rate limit"),
        ("429", RateLimited, "rate limit"),
    ],
)
async def test_each_kraken_error_is_a_clear_status(
    adapter: ExchangeAdapter, store: KrakenStore, error: str, raised: type[Exception], words: str
) -> None:
    store.inject("BalanceEx", error)
    with pytest.raises(raised, match=words):
        await adapter.fetch_accounts()


async def test_an_invalid_nonce_is_retried_once_then_explained(
    adapter: ExchangeAdapter, store: KrakenStore
) -> None:
    store.inject("BalanceEx", "EAPI:Invalid nonce")
    [account] = await adapter.fetch_accounts()  # retried once: fine
    assert account.balance is not None
    store.inject("BalanceEx", "EAPI:Invalid nonce")
    store.inject("BalanceEx", "EAPI:Invalid nonce")
    with pytest.raises(Unavailable, match="another application uses the same API key"):
        await adapter.validate()


async def test_a_fee_charged_in_the_base_asset_is_taken_from_the_ledger_not_the_quote_label(
    adapter: ExchangeAdapter, store: KrakenStore, clock: VirtualClock
) -> None:
    # Kraken's TradesHistory labels every fee in the pair's quote asset; the trade's ledger
    # entries (refid = the trade id) carry the fee on the asset actually charged: here BTC.
    at = clock.now() - 5 * 86_400
    store.trades["TBASE1-FEEIN-BTCBTC"] = dict(
        store.trades["TQ0000-AAAAA-BBBBBB"], ordertxid="OBASE1-FEEIN-BTCBTC", time=at, fee="0.78000"
    )
    legs = {
        "LBASE1-00001-AAAAAA": ("XXBT", "0.0100000000", "0.0000260000"),
        "LBASE1-00002-AAAAAA": ("ZUSD", "-300.0000", "0.0000"),
    }
    for ledger_id, (asset, amount, fee) in legs.items():
        store.ledger[ledger_id] = {
            "refid": "TBASE1-FEEIN-BTCBTC",
            "time": at,
            "type": "trade",
            "subtype": "",
            "aclass": "currency",
            "asset": asset,
            "amount": amount,
            "fee": fee,
            "balance": "0.5",
        }
    [account] = await adapter.fetch_accounts()
    found = {t.provider_transaction_id: t for t in (await adapter.fetch_transactions(account)).transactions}
    buy = found["trade:BTC/USD:TBASE1-FEEIN-BTCBTC"]
    assert buy.currency == "USD"
    assert buy.fees is None  # not 0.78 USD: the fee was not charged in the trade's currency
    assert buy.raw["fee"] == {"cost": "0.0000260000", "currency": "BTC"}
    assert "(fee 0.0000260000 BTC)" in buy.description
    assert found["trade:BTC/USD:TQ0000-AAAAA-BBBBBB"].fees == Decimal("0.78")  # charged in USD
    assert not any(t.startswith("ledger:LBASE1") for t in found)


async def test_a_trade_older_than_the_ledger_cursor_still_finds_its_fee_in_the_ledger(
    url: str, store: KrakenStore, clock: VirtualClock
) -> None:
    at = clock.now() - 40 * 86_400
    store.trades["TOLD01-FEEIN-ETHETH"] = dict(
        store.trades["TQ0000-AAAAA-BBBBBB"], pair="XETHZUSD", time=at, price="3000.0", cost="300.0", vol="0.1"
    )
    store.ledger["LOLD01-00001-AAAAAA"] = dict(
        store.ledger["LTRADE-00001-AAAAAA"],
        refid="TOLD01-FEEIN-ETHETH",
        time=at,
        asset="XETH",
        amount="0.1000000000",
        fee="0.0002600000",
    )
    # the previous sync read the ledger up to yesterday, and trades only up to 41 days ago
    state: dict[str, Any] = {"cursors": {}}
    session = _session(store, state=state)
    adapter = _build(url, session, clock)
    try:
        [account] = await adapter.fetch_accounts()
        state["cursors"][account.provider_account_id] = {
            "trades": int((at - 86_400) * 1000),
            "ledger": int((clock.now() - 86_400) * 1000),
        }
        batch = await adapter.fetch_transactions(account)
    finally:
        await adapter.aclose()
    found = {t.provider_transaction_id: t for t in batch.transactions}
    bought = found["trade:ETH/USD:TOLD01-FEEIN-ETHETH"]
    assert bought.fees is None
    assert bought.raw["fee"] == {"cost": "0.0002600000", "currency": "ETH"}


async def test_earn_allocations_and_deallocations_are_not_income_only_earn_rewards_are(
    adapter: ExchangeAdapter, store: KrakenStore, clock: VirtualClock
) -> None:
    """Kraken's ledger type ``earn`` covers every Earn movement — "allocation, deallocation,
    rewards" (its ledger field guide) — told apart by ``subtype``: moving 5 DOT into Earn is
    two ``earn``/``allocation`` entries (-5 DOT, +5 DOT.B), and back two ``deallocation`` ones.
    Only ``earn``/``reward`` is income."""
    store.assets |= {"DOT": "DOT", "DOT.B": "DOT.B"}
    at = clock.now() - 3 * 86_400.0

    def entry(key: str, subtype: str, asset: str, amount: str, offset: float) -> None:
        store.ledger[key] = {
            "refid": f"R{key}",
            "time": at + offset,
            "type": "earn",
            "subtype": subtype,
            "aclass": "currency",
            "asset": asset,
            "amount": amount,
            "fee": "0.0000000000",
            "balance": "5.0000000000",
        }

    entry("LEARN1-AAAAA-000001", "allocation", "DOT", "-5.0000000000", 0)
    entry("LEARN1-AAAAA-000002", "allocation", "DOT.B", "5.0000000000", 0)
    entry("LEARN1-AAAAA-000003", "reward", "DOT.B", "0.0123000000", 3600)
    entry("LEARN1-AAAAA-000004", "deallocation", "DOT.B", "-5.0000000000", 7200)
    entry("LEARN1-AAAAA-000005", "deallocation", "DOT", "5.0000000000", 7200)
    entry("LEARN1-AAAAA-000006", "autoallocation", "DOT.B", "1.0000000000", 9000)
    [account] = await adapter.fetch_accounts()
    found = {t.provider_transaction_id: t for t in (await adapter.fetch_transactions(account)).transactions}
    earn = {k: t for k, t in found.items() if k.startswith("ledger:LEARN1")}
    assert list(earn) == ["ledger:LEARN1-AAAAA-000003"]
    reward = earn["ledger:LEARN1-AAAAA-000003"]
    assert (reward.type, reward.amount) == (TransactionType.INCOME, Decimal("0.0123"))
    assert reward.currency == "DOT.B"
