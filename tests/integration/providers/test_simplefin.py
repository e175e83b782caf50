"""SimpleFIN Bridge adapter against the fake bridge on loopback: the claim-once rule, Basic auth
from the access URL, date-range paging, pending → posted under a new id, the bridge's messages,
a revoked URL, a lapsed subscription and the daily request budget."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from finsync.domain.enums import AccountType, TransactionStatus
from finsync.domain.errors import InvalidInput, ProviderAuthError, ProviderError, RateLimited
from finsync.domain.ports import ProviderSession
from finsync.providers.simplefin import METADATA
from finsync.providers.simplefin.adapter import SimpleFinAdapter, SimpleFinSettings, create_adapter
from finsync.providers.spec import check_adapter
from tests.fakes.clock import VirtualClock
from tests.fakes.server import serve
from tests.fakes.simplefin import SimpleFinStore, create_app, seed_household

pytestmark = pytest.mark.integration
DAY = 86_400


@pytest.fixture
def bridge(clock: VirtualClock) -> Iterator[tuple[SimpleFinStore, str]]:
    store = SimpleFinStore()
    seed_household(store, clock.now(), old_purchase=True)
    with serve(create_app(clock, store)) as url:
        yield store, url


def settings(**values: Any) -> SimpleFinSettings:
    return SimpleFinSettings(allowed_hosts="127.0.0.1", timeout_seconds=2.0, **values)


def adapter(
    clock: VirtualClock, credentials: dict[str, Any], state: dict[str, Any] | None = None, **values: Any
) -> SimpleFinAdapter:
    state = {} if state is None else state
    session = ProviderSession(connection_id=uuid.uuid4(), credentials=credentials, state=state)
    return create_adapter(session, settings(**values), clock=clock)


async def claimed(store: SimpleFinStore, url: str, clock: VirtualClock) -> str:
    sync = adapter(clock, {"setup_token": store.setup_token(url)})
    assert await sync.validate() == []
    await sync.aclose()
    return str(sync.session.credentials["access_url"])


async def test_a_setup_token_is_claimed_once_for_an_access_url_that_replaces_it(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, url = bridge
    token = store.setup_token(url)
    first = adapter(clock, {"setup_token": token})
    assert check_adapter(METADATA, first) == []
    with capture_logs() as logs:
        await first.validate()
    await first.aclose()
    access = first.session.credentials["access_url"]
    assert list(first.session.credentials) == ["access_url"]  # the token is not kept
    assert access.startswith("http://user1:")
    assert access.endswith("/simplefin")
    claim_path = base64.b64decode(token).decode().split("127.0.0.1")[1].split("/", 1)[1]
    assert claim_path not in str(logs)
    assert access not in str(logs)

    again = adapter(clock, {"setup_token": token})
    with pytest.raises(ProviderAuthError, match=r"already used .* New connection") as refused:
        await again.validate()
    await again.aclose()
    assert token not in str(refused.value)
    assert claim_path.split("/")[-1] not in str(refused.value)
    assert store.claims == 2  # never retried: a claim cannot be repeated


async def test_a_token_that_is_not_one_or_names_another_host_is_refused_without_a_request(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, _url = bridge
    with pytest.raises(InvalidInput, match="not a SimpleFIN setup token"):
        await adapter(clock, {"setup_token": "not base64 at all!"}).validate()
    elsewhere = base64.b64encode(b"https://internal.example/simplefin/claim/abc").decode()
    with pytest.raises(InvalidInput, match=r"internal\.example, which this server does not allow"):
        await adapter(clock, {"setup_token": elsewhere}).validate()
    assert store.claims == 0


async def test_sync_reads_accounts_balances_and_pending_and_posted_transactions(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, url = bridge
    store.messages.append("Card Co needs you to log in again at the bridge.")
    access = await claimed(store, url, clock)
    state: dict[str, Any] = {}
    sync = adapter(clock, {"access_url": access}, state)
    accounts = await sync.fetch_accounts()
    assert [(a.provider_account_id, a.type, a.balance, a.institution) for a in accounts] == [
        ("ACT-1", AccountType.CHECKING, Decimal("1520.10"), "Demo Bank"),
        ("ACT-2", AccountType.CREDIT_CARD, Decimal("-312.45"), "Card Co"),
    ]
    checking = await sync.fetch_transactions(accounts[0])
    by_id = {t.provider_transaction_id: t for t in checking.transactions}
    assert sorted(by_id) == ["PEND-1", "TRN-1", "TRN-2"]
    assert by_id["PEND-1"].status is TransactionStatus.PENDING
    assert by_id["TRN-2"].amount == Decimal("-12.34")
    assert by_id["TRN-2"].description == "COFFEE SHOP"
    card = await sync.fetch_transactions(accounts[1])
    assert [t.provider_transaction_id for t in card.transactions] == ["TRN-4"]  # 150 days is too old
    assert await sync.fetch_holdings(accounts[0]) == []
    await sync.aclose()
    assert sync.session.warnings == ["Card Co needs you to log in again at the bridge."]
    # One request for the 90-day default; end is exclusive and tomorrow.
    ((start, end),) = store.ranges
    assert end - start == 90 * DAY
    assert end > clock.now()
    assert state["pending_since"] == {"ACT-1": checking.transactions[-1].transaction_date.isoformat()}


async def test_history_is_paged_by_90_day_ranges_until_one_is_empty(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, url = bridge
    access = await claimed(store, url, clock)
    sync = adapter(clock, {"access_url": access}, history_days=400)
    accounts = await sync.fetch_accounts()
    card = await sync.fetch_transactions(accounts[1])
    await sync.aclose()
    assert sorted(t.provider_transaction_id for t in card.transactions) == ["TRN-3", "TRN-4"]
    assert len(store.ranges) == 3  # the third range (180-270 days back) was empty: stop there
    for (start, end), (_, older_end) in zip(store.ranges, store.ranges[1:], strict=False):
        assert end - start == 90 * DAY
        assert older_end == start
    assert not any("capped" in w for w in sync.session.warnings)


async def test_a_pending_item_posted_under_a_new_id_replaces_its_pending_row(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, url = bridge
    access = await claimed(store, url, clock)
    state: dict[str, Any] = {}
    first = adapter(clock, {"access_url": access}, state)
    accounts = await first.fetch_accounts()
    pending = await first.fetch_transactions(accounts[0])
    await first.aclose()
    (pending_day,) = [
        t.transaction_date for t in pending.transactions if t.provider_transaction_id == "PEND-1"
    ]

    clock.advance(20 * DAY)  # longer ago than the re-read overlap: the pending date keeps the window open
    store.post("ACT-1", "PEND-1", "TRN-9", clock.now() - 19 * DAY)
    second = adapter(clock, {"access_url": access}, state)
    batch = await second.fetch_transactions((await second.fetch_accounts())[0])
    await second.aclose()
    ids = {t.provider_transaction_id for t in batch.transactions}
    assert "TRN-9" in ids
    assert "PEND-1" not in ids
    assert batch.replace_pending_since is not None
    assert batch.replace_pending_since <= pending_day
    assert state["pending_since"] == {}


async def test_protocol_version_2_names_institutions_by_connection_and_reads_errlist(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, url = bridge
    store.version = 2
    store.messages.append("Log in again to refresh this connection.")
    store.accounts[0]["holdings"] = [
        {"id": "HOL-1", "currency": "", "shares": "10", "symbol": "VTI", "description": "Total market",
         "cost_basis": "2000.00", "market_value": "2500.00", "purchase_price": "200.00", "created": 0}
    ]  # fmt: skip
    access = await claimed(store, url, clock)
    sync = adapter(clock, {"access_url": access})
    accounts = await sync.fetch_accounts()
    (holding,) = await sync.fetch_holdings(accounts[0])
    await sync.aclose()
    assert [a.institution for a in accounts] == ["Demo Bank", "Card Co"]
    assert sync.session.warnings == ["Demo Bank: Log in again to refresh this connection."]
    assert (holding.symbol, holding.quantity) == ("VTI", Decimal("10"))
    assert holding.market_value == Decimal("2500.00")
    assert holding.average_cost == Decimal("200")
    assert holding.currency == "USD"


async def test_a_revoked_access_url_needs_reauth_and_a_lapsed_subscription_says_so(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, url = bridge
    access = await claimed(store, url, clock)
    store.faults.append(402)
    with pytest.raises(ProviderError, match="subscription has lapsed") as lapsed:
        await adapter(clock, {"access_url": access}).fetch_accounts()
    assert not isinstance(lapsed.value, ProviderAuthError)
    store.revoked.add("user1")
    with pytest.raises(ProviderAuthError, match="refused finsync's access") as revoked:
        await adapter(clock, {"access_url": access}).fetch_accounts()
    password = access.split(":")[2].split("@")[0]
    assert password not in str(revoked.value)
    assert access not in str(revoked.value)
    wrong = access.replace(password, "fake-wrong-password")
    with pytest.raises(ProviderAuthError):
        await adapter(clock, {"access_url": wrong}).fetch_accounts()


async def test_no_more_than_24_requests_a_day_reach_the_bridge(
    bridge: tuple[SimpleFinStore, str], clock: VirtualClock
) -> None:
    store, url = bridge
    access = await claimed(store, url, clock)
    for _ in range(24):
        sync = adapter(clock, {"access_url": access})
        await sync.fetch_accounts()
        await sync.aclose()
    over = adapter(clock, {"access_url": access})
    with pytest.raises(RateLimited):
        await over.fetch_accounts()
    await over.aclose()
    assert len(store.ranges) == 24  # the 25th never left finsync
    clock.advance(DAY + 60)
    again = adapter(clock, {"access_url": access})
    await again.fetch_accounts()
    await again.aclose()
    assert len(store.ranges) == 25
