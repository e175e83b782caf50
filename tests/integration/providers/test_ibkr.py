"""IBKR Flex adapter against the fake Flex Web Service on loopback: both steps, a statement
still generating, IBKR's retry rules on the virtual clock (1009/1019 after ~5 s, 1018 after
≥ 10 s, within a bounded total), the credential errors, IP restriction, hostile statements and
a step-2 URL on a host the token must not be sent to."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from finsync.domain.enums import AssetType, TransactionSubtype
from finsync.domain.errors import (
    BadData,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    ScopeError,
    Unavailable,
)
from finsync.domain.ports import ProviderSession
from finsync.providers.ibkr import METADATA
from finsync.providers.ibkr.adapter import IbkrAdapter, IbkrSettings, create_adapter
from finsync.providers.spec import check_adapter
from tests.fakes.clock import VirtualClock
from tests.fakes.ibkr import BASE, QUERY_ID, TOKEN, FlexStore, create_app, fixture
from tests.fakes.server import serve

pytestmark = pytest.mark.integration


@pytest.fixture
def flex(clock: VirtualClock) -> Iterator[tuple[FlexStore, str]]:
    store = FlexStore()
    with serve(create_app(clock, store)) as url:
        yield store, url


def adapter(
    url: str, clock: VirtualClock, *, token: str = TOKEN, query_id: str = QUERY_ID, **values: Any
) -> IbkrAdapter:
    session = ProviderSession(connection_id=uuid.uuid4(), credentials={"token": token, "query_id": query_id})
    settings = IbkrSettings(url=f"{url}{BASE}", timeout_seconds=2.0, **values)
    return create_adapter(session, settings, clock=clock)


async def test_two_steps_poll_a_generating_statement_every_five_seconds(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    store.generation_seconds = 12
    sync = adapter(url, clock)
    assert check_adapter(METADATA, sync) == []
    with capture_logs() as logs:
        accounts = await sync.fetch_accounts()
    await sync.aclose()
    assert store.steps() == ["SendRequest", "GetStatement", "GetStatement", "GetStatement", "GetStatement"]
    polls = [at for step, at, _ in store.requests if step == "GetStatement"]
    assert [b - a for a, b in itertools.pairwise(polls)] == [5.0, 5.0, 5.0]
    (_, _, first), (_, _, second) = store.requests[0], store.requests[1]
    assert first == {"t": TOKEN, "q": QUERY_ID, "v": "3"}
    assert second["q"] == "1000000000"  # step 2 asks for the reference code, not the query
    assert TOKEN not in str(logs)
    by_id = {a.provider_account_id: a for a in accounts}
    assert sorted(by_id) == ["U1111111", "U2222222"]
    main, euro = by_id["U1111111"], by_id["U2222222"]
    assert (main.currency, main.balance, main.cash_value) == ("USD", Decimal("36246.74"), Decimal("8063.50"))
    assert (euro.currency, euro.balance) == ("EUR", Decimal("5177"))

    holdings = {h.symbol: h for h in await sync.fetch_holdings(main)}
    assert holdings["VWCE"].asset_type is AssetType.ETF
    assert (holdings["VWCE"].currency, holdings["VWCE"].price_currency) == ("USD", "EUR")
    assert holdings["EUR"].quantity == Decimal("289.60")
    txns = {t.provider_transaction_id: t for t in (await sync.fetch_transactions(main)).transactions}
    assert txns["ca:2911000006"].subtype is TransactionSubtype.SPLIT
    assert len(txns) == 13
    assert len(store.requests) == 5  # the per-account reads use the one statement


async def test_busy_and_too_many_requests_wait_as_ibkr_asks(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    store.inject("SendRequest", "1009")
    store.inject("GetStatement", "1018")
    store.inject("GetStatement", "1019")
    sync = adapter(url, clock)
    await sync.fetch_accounts()
    await sync.aclose()
    times = [at - store.requests[0][1] for _, at, _ in store.requests]
    assert store.steps() == ["SendRequest", "SendRequest", "GetStatement", "GetStatement", "GetStatement"]
    assert times == [0.0, 5.0, 5.0, 15.0, 20.0]  # 1009: 5 s, 1018: 10 s, 1019: 5 s


async def test_a_statement_still_generating_after_the_bounded_total_fails_for_the_next_sync(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    store.generation_seconds = 3600
    sync = adapter(url, clock, max_wait_seconds=30)
    with pytest.raises(Unavailable, match=r"did not finish within 30 s \(IBKR error 1019"):
        await sync.fetch_accounts()
    await sync.aclose()
    assert clock.slept <= 30
    assert store.steps().count("GetStatement") == 7  # at 0, 5, …, 30 s


async def test_too_many_requests_beyond_the_total_is_rate_limited(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    store.inject("SendRequest", "1018", times=10)
    sync = adapter(url, clock, max_wait_seconds=25)
    with pytest.raises(RateLimited, match="1018") as caught:
        await sync.fetch_accounts()
    await sync.aclose()
    assert caught.value.retry_after >= 10
    assert clock.slept == 20


@pytest.mark.parametrize(
    ("setup", "error", "words"),
    [
        ("expired", ProviderAuthError, "Flex token has expired (IBKR error 1012: Token has expired.)"),
        ("unknown_token", ProviderAuthError, "does not accept the Flex token (IBKR error 1015"),
        ("wrong_query", ProviderAuthError, "does not know the Flex query id (IBKR error 1014"),
        ("ip_bound", ScopeError, "IP restriction (IBKR error 1013"),
    ],
)
async def test_credential_and_ip_errors_are_final_and_say_why(
    flex: tuple[FlexStore, str], clock: VirtualClock, setup: str, error: type[ProviderError], words: str
) -> None:
    store, url = flex
    token, query = TOKEN, QUERY_ID
    if setup == "expired":
        store.expired.add(TOKEN)
    elif setup == "unknown_token":
        token = "fake-revoked-token-0000"
    elif setup == "wrong_query":
        query = "111"
    else:
        store.ip_bound.add(TOKEN)
    sync = adapter(url, clock, token=token, query_id=query)
    with pytest.raises(error) as caught:
        await sync.fetch_accounts()
    await sync.aclose()
    assert words in caught.value.detail
    assert token not in caught.value.detail
    assert store.steps() == ["SendRequest"]  # never retried
    assert clock.slept == 0


async def test_a_message_repeating_the_token_is_scrubbed(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    store.echo_token = True
    store.expired.add(TOKEN)
    sync = adapter(url, clock)
    with pytest.raises(ProviderAuthError) as caught:
        await sync.fetch_accounts()
    await sync.aclose()
    assert "Token has expired. (***)" in caught.value.detail
    assert TOKEN not in caught.value.detail


async def test_errors_at_the_statement_step_are_read_from_the_body_too(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    store.inject("GetStatement", "1012")
    sync = adapter(url, clock)
    with pytest.raises(ProviderAuthError, match="1012"):
        await sync.fetch_accounts()
    await sync.aclose()


async def test_validation_is_one_send_request_without_waiting(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    ok = adapter(url, clock)
    assert await ok.validate() == []
    await ok.aclose()
    assert store.steps() == ["SendRequest"]
    store.inject("SendRequest", "1009")
    busy = adapter(url, clock)
    with pytest.raises(Unavailable, match="1009"):
        await busy.validate()
    await busy.aclose()
    bad = adapter(url, clock, token="fake-wrong-token-0000")
    with pytest.raises(ProviderAuthError, match="1015"):
        await bad.validate()
    await bad.aclose()
    assert clock.slept == 0


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("billion_laughs.xml", "no XML with a DTD, entities or external references"),
        ("external_entity.xml", "no XML with a DTD, entities or external references"),
        ("truncated.xml", "not well-formed XML"),
        ("bad_value.xml", "OpenPosition.position"),
    ],
)
async def test_hostile_or_broken_statements_are_bad_data(
    flex: tuple[FlexStore, str], clock: VirtualClock, name: str, words: str
) -> None:
    store, url = flex
    store.statement = fixture(name)
    sync = adapter(url, clock)
    with pytest.raises(BadData) as caught:
        await sync.fetch_accounts()
    await sync.aclose()
    assert words in caught.value.detail
    assert "root:" not in caught.value.detail  # /etc/passwd was never read


async def test_a_statement_answer_that_is_a_web_page_is_bad_data(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    store, url = flex
    store.statement = b"<html><body>Service temporarily unavailable</body></html>"
    sync = adapter(url, clock)
    with pytest.raises(BadData, match="<html> where a FlexQueryResponse"):
        await sync.fetch_accounts()
    await sync.aclose()


@pytest.mark.parametrize(
    "named",
    [
        "https://collector.example.invalid/steal",
        "http://ndcdyn.interactivebrokers.com/AccountManagement/FlexWebService/GetStatement",  # not https
        "http://127.0.0.1:9/AccountManagement/FlexWebService/GetStatement",  # another port
        "https://[::1/broken",  # unparseable
    ],
)
async def test_the_token_goes_only_to_the_configured_host(
    flex: tuple[FlexStore, str], clock: VirtualClock, named: str
) -> None:
    store, url = flex
    store.statement_url = named
    sync = adapter(url, clock)
    accounts = await sync.fetch_accounts()
    await sync.aclose()
    assert len(accounts) == 2
    assert store.steps() == ["SendRequest", "GetStatement"]  # served here, not at the named host


async def test_each_sync_reads_the_statement_again_and_ids_stay_the_same(
    flex: tuple[FlexStore, str], clock: VirtualClock
) -> None:
    _, url = flex
    ids = []
    for _ in range(2):
        sync = adapter(url, clock)
        (main, _) = sorted(await sync.fetch_accounts(), key=lambda a: a.provider_account_id)
        ids.append([t.provider_transaction_id for t in (await sync.fetch_transactions(main)).transactions])
        await sync.aclose()
        clock.advance(86_400)
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == len(ids[0])
