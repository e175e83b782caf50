"""Trading 212 adapter against the fake Trading 212 server over loopback HTTP, on virtual time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from finsync.domain.enums import TransactionSubtype, TransactionType
from finsync.domain.errors import BadData, ProviderAuthError, ScopeError, Unavailable
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch
from finsync.domain.trading import OrderRequest, OrderSide, OrderStatus, OrderType
from finsync.providers.trading212 import METADATA, Trading212Adapter, Trading212Settings, create_adapter
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.fakes.trading212 import ALL_SCOPES, Trading212Store, create_app

pytestmark = pytest.mark.integration

KEY = "fake-t212-api-key-0123456789abcdef"
SECRET = "fake-t212-secret-9f8e7d6c5b4a3210"
ORDERS, DIVIDENDS, CASH = 120, 30, 12


@pytest.fixture
def store(clock: VirtualClock) -> Trading212Store:
    data = Trading212Store()
    data.seed(clock.now(), orders=ORDERS, dividends=DIVIDENDS, transactions=CASH)
    data.add_position("AAPL_US_EQ", "15.5", "170.25", "185.5", fx="0.79", currency="USD", in_pies="3")
    data.add_position("VUSAl_EQ", "40", "7512", "8123.5", fx="0.01", currency="GBX", isin="IE00B3XXRP09")
    return data


def start(clock: VirtualClock, store: Trading212Store, **kwargs: object) -> Iterator[Trading212Settings]:
    app = create_app(clock, api_key=KEY, api_secret=kwargs.pop("secret", SECRET), store=store, **kwargs)  # type: ignore[arg-type]
    with serve(app) as url:
        yield Trading212Settings(_env_file=None, live_url=url, timeout_seconds=1.0)  # type: ignore[call-arg]


@pytest.fixture
def settings(clock: VirtualClock, store: Trading212Store) -> Iterator[Trading212Settings]:
    yield from start(clock, store)


def session(state: dict[str, object] | None = None, **credentials: str) -> ProviderSession:
    creds = credentials or {"api_key": KEY, "api_secret": SECRET}
    return ProviderSession(
        connection_id=uuid.uuid4(), credentials=creds, environment="live", state=state or {}
    )


async def sync(
    adapter: Trading212Adapter,
) -> tuple[list[ProviderAccount], list[ProviderHolding], TransactionBatch]:
    try:
        accounts = await adapter.fetch_accounts()
        holdings = await adapter.fetch_holdings(accounts[0])
        return accounts, holdings, await adapter.fetch_transactions(accounts[0])
    finally:
        await adapter.aclose()


async def test_first_sync_reads_everything(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    sess = session()
    accounts, holdings, batch = await sync(create_adapter(sess, settings, clock=clock))

    (account,) = accounts
    assert account.provider_account_id == "31415926"
    assert account.currency == "GBP"
    assert account.cash_value == Decimal("1648.87")
    assert account.balance == account.cash_value + (account.holdings_value or 0)
    assert {h.symbol: h.quantity for h in holdings} == {"AAPL_US_EQ": Decimal("15.5"), "VUSAl_EQ": 40}
    filled = [o for o in store.orders if o["fill"]]
    assert store.requests["history_orders"] == 3  # 120 orders at 50 a page
    assert store.requests["history_dividends"] == store.requests["history_transactions"] == 1
    kinds = {t.provider_transaction_id.split(":")[0] for t in batch.transactions}
    assert kinds == {"order", "dividend", "cash"}
    assert len(batch.transactions) == len(filled) + DIVIDENDS + CASH
    assert sum(store.throttled.values()) == 0
    assert set(sess.state) == {"history_orders", "history_dividends", "history_transactions"}


async def test_an_empty_page_that_names_a_next_page_is_followed(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    """Only a null ``nextPagePath`` ends the listing: an empty page before it skips nothing."""
    store.empty_pages = {50}  # orders 51..120 come after an empty page
    sess = session()
    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    filled = {f"order:{o['order']['id']}" for o in store.orders if o["fill"]}
    assert filled <= {t.provider_transaction_id for t in batch.transactions}
    assert store.requests["history_orders"] == 4  # 50, the empty page, 50, 20


async def test_resync_without_news_reads_one_page_per_endpoint(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    store.reset_counters()
    clock.advance(3600)

    await sync(create_adapter(sess, settings, clock=clock))

    assert store.requests["history_orders"] == 1
    assert store.requests["history_dividends"] == 1
    assert store.requests["history_transactions"] == 1


async def test_new_fill_appears_on_next_sync(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    clock.advance(600)
    item = store.add_order(clock.now(), ticker="MSFT_US_EQ", side="SELL", quantity="3", price="410.10")
    store.add_transaction(clock.now(), type="WITHDRAW", amount="-100")

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    by_id = {t.provider_transaction_id: t for t in batch.transactions}
    trade = by_id[f"order:{item['order']['id']}"]
    assert (trade.type, trade.subtype, trade.symbol) == (
        TransactionType.TRADE,
        TransactionSubtype.SELL,
        "MSFT_US_EQ",
    )
    assert trade.amount > 0
    assert trade.quantity == 3
    assert trade.unit_price == Decimal("410.1")
    assert any(t.subtype is TransactionSubtype.WITHDRAWAL and t.amount == -100 for t in batch.transactions)
    assert store.requests["history_orders"] == 3 + 2  # a page with the news, then one with none


async def test_many_new_orders_are_paged_until_known_ones(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    store.reset_counters()
    clock.advance(86_400)
    new = {f"order:{store.add_order(clock.now() + i)['order']['id']}" for i in range(60)}

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    assert new <= {t.provider_transaction_id for t in batch.transactions}
    assert store.requests["history_orders"] == 3  # 50 new, 10 new + 40 known, 50 known


async def test_pages_out_of_order_miss_nothing(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    store.disorder = 60  # items displaced by up to 60 places: older ones come before newer ones
    clock.advance(3 * 86_400)
    new = {f"order:{store.add_order(clock.now() - 600 * i)['order']['id']}" for i in range(60)}

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    assert new <= {t.provider_transaction_id for t in batch.transactions}


async def test_an_old_order_filling_now_does_not_hide_newer_orders(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.listing = "updated"  # the late fill is listed first, with its month-old createdAt
    working = store.add_order(clock.now() - 30 * 86_400, status="NEW")
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    clock.advance(86_400)
    new = {f"order:{store.add_order(clock.now() - 60 * i)['order']['id']}" for i in range(60)}
    store.change_fill(working, clock.now(), quantity="2", price="99.5")

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    by_id = {t.provider_transaction_id: t for t in batch.transactions}
    assert new <= set(by_id)
    late = by_id[f"order:{working['order']['id']}"]
    assert (late.quantity, late.unit_price) == (2, Decimal("99.5"))


async def test_a_changed_fill_is_news_even_with_a_known_id(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.listing = "updated"
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    clock.advance(3600)
    newer = store.add_order(clock.now() - 60)
    filled = [o for o in store.orders if o["fill"] and o is not newer][-50:]
    for item in filled:  # 50 known orders re-fill after it: they fill the first page
        store.change_fill(item, clock.now(), price="100")
    store.reset_counters()

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    ids = {t.provider_transaction_id for t in batch.transactions}
    assert f"order:{newer['order']['id']}" in ids
    assert store.requests["history_orders"] == 3  # 50 changed, 1 new + 49 known, 50 known


async def test_weekly_full_pass_reconciles_what_incremental_paging_cannot_see(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    deep = next(o for o in store.orders if o["fill"])  # the oldest: on the last page
    store.change_fill(deep, clock.now(), quantity="7")
    clock.advance(3600)
    store.reset_counters()

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))
    assert store.requests["history_orders"] == 1  # incremental: the change is out of reach
    assert f"order:{deep['order']['id']}" not in {t.provider_transaction_id for t in batch.transactions}

    clock.advance(7 * 86_400)
    store.reset_counters()
    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))
    assert store.requests["history_orders"] == 3  # the full pass walks the whole listing
    by_id = {t.provider_transaction_id: t for t in batch.transactions}
    assert by_id[f"order:{deep['order']['id']}"].quantity == 7
    assert len(by_id) == len(batch.transactions)

    clock.advance(3600)
    store.reset_counters()
    await sync(create_adapter(sess, settings, clock=clock))
    assert store.requests["history_orders"] == 1  # next pass in a week


async def test_full_pass_is_spread_over_syncs_and_state_stays_bounded(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.seed(clock.now(), orders=880)  # 1,000 orders: 20 pages
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    assert len(json.dumps(sess.state)) < 20_000
    clock.advance(8 * 86_400)
    pages = []
    for _ in range(3):
        store.reset_counters()
        started = clock.now()
        await sync(create_adapter(sess, settings, clock=clock))
        pages.append(store.requests["history_orders"])
        assert clock.now() - started < 150  # a pass never holds a sync for the whole history
        clock.advance(3600)
    assert pages == [1 + 12, 1 + 7, 1]  # the top, then at most 12 pages of the pass per sync
    assert sum(store.throttled.values()) == 0
    assert len(json.dumps(sess.state)) < 20_000


async def test_a_refused_resume_cursor_restarts_the_full_pass(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    state = sess.state["history_orders"]
    state["resume"] = "/api/v0/equity/history/orders?limit=50&cursor=stale"  # the server answers 400
    state["full_due"] = clock.now()
    clock.advance(3600)

    await sync(create_adapter(sess, settings, clock=clock))  # the sync itself succeeds
    assert "resume" not in sess.state["history_orders"]
    store.reset_counters()
    clock.advance(3600)
    await sync(create_adapter(sess, settings, clock=clock))
    assert store.requests["history_orders"] == 3  # the pass started again from the top


async def test_wrong_key_is_auth_error(store: Trading212Store, clock: VirtualClock) -> None:
    for settings in start(clock, store):
        adapter = create_adapter(session(api_key=KEY, api_secret="wrong-secret-000"), settings, clock=clock)
        with pytest.raises(ProviderAuthError, match="rejected the API key") as info:
            await adapter.validate()
        await adapter.aclose()
        assert "wrong-secret-000" not in str(info.value)
        assert KEY not in str(info.value)


async def test_legacy_bare_key_is_sent_as_authorization(store: Trading212Store, clock: VirtualClock) -> None:
    for settings in start(clock, store, secret=None):
        adapter = create_adapter(session(api_key=KEY), settings, clock=clock)
        await adapter.validate()
        await adapter.aclose()


async def test_missing_scope_names_it(store: Trading212Store, clock: VirtualClock) -> None:
    for settings in start(clock, store, scopes=ALL_SCOPES - {"history:dividends"}):
        with pytest.raises(ScopeError, match="'history:dividends' permission"):
            await sync(create_adapter(session(), settings, clock=clock))


async def test_injected_429_waits_for_reset(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.inject("account_summary", "429")
    started = clock.now()
    adapter = create_adapter(session(), settings, clock=clock)
    accounts = await adapter.fetch_accounts()
    await adapter.aclose()
    assert accounts
    assert clock.now() - started >= 9
    assert store.requests["account_summary"] == 2


async def test_server_errors_twice_are_retried(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.inject("positions", "500", times=2)
    adapter = create_adapter(session(), settings, clock=clock)
    account = (await adapter.fetch_accounts())[0]
    assert len(await adapter.fetch_holdings(account)) == 2
    await adapter.aclose()
    assert store.requests["positions"] == 3


async def test_persistent_server_errors_are_unavailable(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.inject("history_orders", "503", times=10)
    with pytest.raises(Unavailable, match="trading212 history_orders unavailable after 4 attempts: HTTP 503"):
        await sync(create_adapter(session(), settings, clock=clock))


async def test_timeout_is_retried(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.hang_seconds = 1.3
    store.inject("account_summary", "timeout")
    adapter = create_adapter(session(), settings, clock=clock)
    assert await adapter.fetch_accounts()
    await adapter.aclose()


async def test_malformed_json_is_bad_data(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.inject("history_transactions", "malformed")
    sess = session()
    with pytest.raises(BadData, match="malformed JSON"):
        await sync(create_adapter(sess, settings, clock=clock))
    assert sess.state == {}


async def test_long_history_respects_limits(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    store.seed(clock.now(), orders=400)  # 520 orders: 11 pages at 6 a minute
    started = clock.now()
    _, _, batch = await sync(create_adapter(session(), settings, clock=clock))
    assert store.requests["history_orders"] == 11
    assert sum(store.throttled.values()) == 0
    assert 60 <= clock.now() - started < 66
    assert len({t.provider_transaction_id for t in batch.transactions}) == len(batch.transactions)


async def test_credentials_never_logged_or_raised(store: Trading212Store, clock: VirtualClock) -> None:
    for settings in start(clock, store, secret=None):
        with capture_logs() as logs:
            adapter = create_adapter(session(api_key=KEY), settings, clock=clock)
            await sync(adapter)
            store.inject("account_summary", "401")
            adapter = create_adapter(session(api_key=KEY), settings, clock=clock)
            with pytest.raises(ProviderAuthError) as info:
                await adapter.validate()
            await adapter.aclose()
        assert logs
        assert all(entry["provider"] == "trading212" for entry in logs)
        assert KEY not in repr(logs)
        assert KEY not in str(info.value)


async def test_demo_environment_uses_demo_host(store: Trading212Store, clock: VirtualClock) -> None:
    for settings in start(clock, store):
        # nothing listens on the live host
        demo = settings.model_copy(update={"demo_url": settings.live_url, "live_url": "http://127.0.0.1:9"})
        sess = session()
        sess.environment = "demo"
        accounts, _, _ = await sync(create_adapter(sess, demo, clock=clock))
        assert "Practice" in accounts[0].name


def test_metadata_is_complete() -> None:
    assert METADATA.problems() == []
    assert {f.name for f in METADATA.credential_fields} == {"api_key", "api_secret"}
    assert METADATA.environments == ("live", "demo")


async def test_reconciliation_prefers_the_history_entry_with_its_fill(
    settings: Trading212Settings, store: Trading212Store, clock: VirtualClock
) -> None:
    """A partly filled order is both open and in history: the history entry (with the fill) wins."""
    store.fill_mode = "partial"
    request = OrderRequest(
        symbol="AAPL_US_EQ", side=OrderSide.BUY, type=OrderType.MARKET, quantity=Decimal(4)
    )
    sent_at = datetime.fromtimestamp(clock.now(), UTC)
    adapter = create_adapter(session(), settings, clock=clock)
    try:
        placed = await adapter.place_order(request, "finsync-order-1")
        clock.advance(5)
        (found,) = await adapter.find_orders(request, "finsync-order-1", sent_at)
    finally:
        await adapter.aclose()

    assert found.broker_order_id == placed.broker_order_id
    assert found.status is OrderStatus.PARTIALLY_FILLED
    assert [(f.quantity, f.price) for f in found.fills] == [(Decimal(2), Decimal("185.5"))]
