"""Alpaca adapter against the fake Alpaca server over loopback HTTP, on virtual time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from finsync.domain.enums import AccountType, TransactionSubtype, TransactionType
from finsync.domain.errors import BadData, ProviderAuthError, ProviderError, ScopeError, Unavailable
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch
from finsync.providers.alpaca import METADATA, AlpacaAdapter, AlpacaSettings, create_adapter
from tests.fakes.alpaca import AlpacaStore, create_app
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve

pytestmark = pytest.mark.integration

KEY_ID, SECRET = "FAKE-ALPACA-KEY-ID-0123", "fake-alpaca-secret-key-abcdefghijklmnop"
FILLS, OTHERS = 230, 40
ACCOUNT = ProviderAccount(provider_account_id="a", name="a", type=AccountType.BROKERAGE, currency="USD")


@pytest.fixture
def store(clock: VirtualClock) -> AlpacaStore:
    data = AlpacaStore()
    data.seed(clock.now(), fills=FILLS, others=OTHERS)
    data.add_position("AAPL", "13", "171.02", "187.43")
    data.add_position("TSLA", "2", "250.00", "240.10", side="short")
    return data


@pytest.fixture
def settings(clock: VirtualClock, store: AlpacaStore) -> Iterator[AlpacaSettings]:
    with serve(create_app(clock, key_id=KEY_ID, secret_key=SECRET, store=store)) as url:
        yield AlpacaSettings(_env_file=None, paper_url=url, timeout_seconds=1.0)  # type: ignore[call-arg]


def session(state: dict[str, object] | None = None, secret: str = SECRET) -> ProviderSession:
    creds = {"key_id": KEY_ID, "secret_key": secret}
    return ProviderSession(
        connection_id=uuid.uuid4(), credentials=creds, environment="paper", state=state or {}
    )


async def sync(
    adapter: AlpacaAdapter,
) -> tuple[list[ProviderAccount], list[ProviderHolding], TransactionBatch]:
    try:
        accounts = await adapter.fetch_accounts()
        holdings = await adapter.fetch_holdings(accounts[0])
        return accounts, holdings, await adapter.fetch_transactions(accounts[0])
    finally:
        await adapter.aclose()


async def test_first_sync_reads_everything(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    sess = session()
    (account,), holdings, batch = await sync(create_adapter(sess, settings, clock=clock))

    assert account.balance == Decimal("11873.20")
    assert account.cash_value == Decimal("4120.55")
    assert account.holdings_value == Decimal("7752.65")
    assert {h.symbol: h.quantity for h in holdings} == {"AAPL": 13, "TSLA": -2}
    short = next(h for h in holdings if h.symbol == "TSLA")  # sold at 250, now 240.10: a gain
    assert (short.market_value, short.unrealized_pnl) == (Decimal("-480.20"), Decimal("19.80"))
    assert store.requests["activities"] == 3  # 270 activities at 100 a page
    assert len(batch.transactions) == FILLS + OTHERS
    assert {t.provider_transaction_id for t in batch.transactions} == {a["id"] for a in store.activities}
    kinds = {(t.type, t.subtype) for t in batch.transactions}
    assert (TransactionType.TRADE, TransactionSubtype.BUY) in kinds
    assert (TransactionType.INCOME, TransactionSubtype.DIVIDEND) in kinds
    assert (TransactionType.OTHER, TransactionSubtype.OTHER) in kinds
    assert sum(store.throttled.values()) == 0
    assert "activities_newest" in sess.state


async def test_resync_without_news_is_one_request(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    store.reset_counters()
    clock.advance(3600)

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    assert store.requests["activities"] == 1
    assert len(batch.transactions) < 100  # only the overlap window


async def test_new_fill_appears_on_next_sync(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    clock.advance(600)
    fill = store.add_fill(clock.now(), symbol="NVDA", side="sell", qty="4", price="120.25")

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    trade = {t.provider_transaction_id: t for t in batch.transactions}[fill["id"]]
    assert (trade.subtype, trade.amount, trade.quantity) == (
        TransactionSubtype.SELL,
        Decimal("481.00"),
        Decimal(4),
    )


async def test_trans_cash_transactions_are_deposits_and_withdrawals(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    """``TRANS`` is Alpaca's activity type for cash transactions (CSD and CSW alike)."""
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    clock.advance(600)
    deposit = store.add_activity(clock.now(), "TRANS", "1500.00", description="ACH deposit")
    withdrawal = store.add_activity(clock.now() + 1, "TRANS", "-200.00", description="ACH withdrawal")

    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))

    by_id = {t.provider_transaction_id: t for t in batch.transactions}
    assert (by_id[deposit["id"]].type, by_id[deposit["id"]].subtype, by_id[deposit["id"]].amount) == (
        TransactionType.TRANSFER,
        TransactionSubtype.DEPOSIT,
        Decimal("1500.00"),
    )
    assert (by_id[withdrawal["id"]].type, by_id[withdrawal["id"]].subtype) == (
        TransactionType.TRANSFER,
        TransactionSubtype.WITHDRAWAL,
    )
    assert by_id[withdrawal["id"]].amount == Decimal("-200.00")


async def test_bad_secret_is_auth_error_without_secrets(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    adapter = create_adapter(session(secret="not-the-secret-123"), settings, clock=clock)
    with capture_logs() as logs, pytest.raises(ProviderAuthError, match="request is not authorized") as info:
        await adapter.validate()
    await adapter.aclose()
    text = str(info.value) + repr(logs)
    assert "not-the-secret-123" not in text
    assert KEY_ID not in text


async def test_revoked_key_is_auth_error_with_the_key_help(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    store.revoked = True  # Alpaca: 403 {"message": "forbidden."}, no numeric code
    adapter = create_adapter(session(), settings, clock=clock)
    with pytest.raises(ProviderAuthError, match="Alpaca rejected the API key") as info:
        await adapter.validate()
    await adapter.aclose()
    assert "forbidden." in info.value.detail
    assert SECRET not in info.value.detail


async def test_forbidden_with_a_code_is_a_refusal_not_a_credential_problem(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    store.inject("positions", "403")  # {"code": 40310000, ...}: e.g. insufficient buying power
    with pytest.raises(ProviderError, match="injected 403") as info:
        await sync(create_adapter(session(), settings, clock=clock))
    assert not isinstance(info.value, ProviderAuthError | ScopeError)


async def test_activities_stop_at_a_page_of_known_ids_when_after_is_ignored(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    store.ignore_after = True  # the server pages through everything, whatever ``after`` says
    sess = session()
    await sync(create_adapter(sess, settings, clock=clock))
    store.reset_counters()
    clock.advance(3600)

    await sync(create_adapter(sess, settings, clock=clock))
    assert store.requests["activities"] == 1  # the newest page held only known ids

    clock.advance(600)
    fill = store.add_fill(clock.now(), symbol="NVDA", qty="1", price="120.00")
    store.reset_counters()
    _, _, batch = await sync(create_adapter(sess, settings, clock=clock))
    assert fill["id"] in {t.provider_transaction_id for t in batch.transactions}
    assert store.requests["activities"] == 2  # one page with news, then one with none


async def test_injected_429_waits_for_reset(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    store.inject("account", "429")
    started = clock.now()
    adapter = create_adapter(session(), settings, clock=clock)
    assert await adapter.fetch_accounts()
    await adapter.aclose()
    assert clock.now() - started >= 9


async def test_server_errors_retried_then_unavailable(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    store.inject("account", "500", times=2)
    adapter = create_adapter(session(), settings, clock=clock)
    assert await adapter.fetch_accounts()
    assert store.requests["account"] == 3
    store.inject("activities", "503", times=4)
    with pytest.raises(Unavailable, match="alpaca activities unavailable after 4 attempts: HTTP 503"):
        await adapter.fetch_transactions((await adapter.fetch_accounts())[0])
    await adapter.aclose()


async def test_malformed_json_is_bad_data(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    store.inject("positions", "malformed")
    with pytest.raises(BadData):
        await sync(create_adapter(session(), settings, clock=clock))


async def test_shared_budget_is_respected(
    settings: AlpacaSettings, store: AlpacaStore, clock: VirtualClock
) -> None:
    store.seed(clock.now() - 10 * 86_400, fills=2000)  # 23 pages of activities
    adapter = create_adapter(session(), settings, clock=clock)
    for _ in range(90):  # 180 cheap calls first, so the history has to wait for the window
        await adapter.fetch_accounts()
        await adapter.fetch_holdings(ACCOUNT)
    started = clock.now()
    batch = await adapter.fetch_transactions((await adapter.fetch_accounts())[0])
    await adapter.aclose()
    assert len(batch.transactions) == FILLS + OTHERS + 2000
    assert sum(store.throttled.values()) == 0
    assert clock.now() - started >= 55


def test_metadata_is_complete() -> None:
    assert METADATA.problems() == []
    assert METADATA.environments == ("paper", "live")
