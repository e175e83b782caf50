"""Schwab flow and adapter against the fake Schwab over loopback HTTP, on a virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from uuid import uuid4

import pytest

from finsync.domain.enums import AssetType, TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import ConsentDenied, ProviderAuthError, RateLimited, Unavailable
from finsync.domain.ports import AuthorizationResult, AuthorizationStart, ProviderSession
from finsync.providers.schwab import METADATA, SchwabFlow, SchwabSettings
from finsync.providers.schwab.adapter import SchwabAdapter
from tests.fakes.clock import VirtualClock
from tests.fakes.consent import submit_consent
from tests.fakes.schwab import APP_KEY, APP_SECRET, FakeSchwab, _activity, with_sample_data
from tests.fakes.server import serve

pytestmark = pytest.mark.integration
REDIRECT = "http://127.0.0.1:9/api/v1/connections/callback"


async def consent(url: str, decision: str = "allow") -> dict[str, str]:
    """Open the authorize URL, press a button, return the query of the redirect to our callback."""
    location = await submit_consent(url, decision)
    assert location.startswith(REDIRECT)
    return dict(parse_qsl(urlsplit(location).query))


@pytest.fixture
def fake(clock: VirtualClock) -> FakeSchwab:
    return with_sample_data(FakeSchwab(clock))


@pytest.fixture
def settings(fake: FakeSchwab) -> Iterator[SchwabSettings]:
    with serve(fake.app) as base:
        yield SchwabSettings(  # type: ignore[call-arg]
            _env_file=None,
            auth_url=f"{base}/v1/oauth",
            api_url=f"{base}/trader/v1",
            app_key=APP_KEY,
            app_secret=APP_SECRET,
        )


@pytest.fixture
def flow(settings: SchwabSettings, clock: VirtualClock) -> SchwabFlow:
    built = METADATA.flow_factory(settings, clock=clock)  # type: ignore[misc]
    assert isinstance(built, SchwabFlow)
    return built


async def authorize(
    flow: SchwabFlow, state: str = "state-1", decision: str = "allow"
) -> tuple[AuthorizationStart, dict[str, str]]:
    """Start the flow and press a button on the consent page: (the start, the callback query)."""
    start = await flow.start(state=state, redirect_uri=REDIRECT)
    return start, await consent(start.url, decision)


async def finish(flow: SchwabFlow, start: AuthorizationStart, params: dict[str, str]) -> AuthorizationResult:
    return await flow.complete(params=params, flow_data=start.flow_data, redirect_uri=REDIRECT)


async def connect(flow: SchwabFlow) -> dict[str, Any]:
    """A completed authorization's credentials."""
    start, params = await authorize(flow)
    return (await finish(flow, start, params)).credentials


@asynccontextmanager
async def adapter(
    settings: SchwabSettings,
    clock: VirtualClock,
    credentials: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> AsyncIterator[SchwabAdapter]:
    session = ProviderSession(
        connection_id=uuid4(), credentials=credentials, state={} if state is None else state
    )
    built = METADATA.adapter_factory(session, settings, clock=clock)  # type: ignore[misc]
    assert isinstance(built, SchwabAdapter)
    async with aclosing(built) as sync:
        yield sync


async def test_authorize_with_pkce_then_complete(
    flow: SchwabFlow, fake: FakeSchwab, clock: VirtualClock
) -> None:
    start, params = await authorize(flow)
    query = dict(parse_qsl(urlsplit(start.url).query))
    assert query["client_id"] == APP_KEY
    assert query["state"] == "state-1"
    assert query["code_challenge_method"] == "S256"
    assert len(start.flow_data["code_verifier"]) >= 43
    assert params["state"] == "state-1"
    assert params["code"].endswith("@")
    result = await finish(flow, start, params)
    creds = result.credentials
    assert set(creds) == {"access_token", "refresh_token", "access_expires_at", "refresh_expires_at"}
    assert creds["access_expires_at"] == int(clock.now()) + 1800
    assert creds["refresh_expires_at"] == int(clock.now()) + 7 * 86400
    assert result.expires_at is not None
    assert result.expires_at.timestamp() == creds["refresh_expires_at"]


async def test_deny_is_an_auth_error(flow: SchwabFlow) -> None:
    start, params = await authorize(flow, "s", "deny")
    assert params == {"error": "access_denied", "state": "s"}
    with pytest.raises(ProviderAuthError, match="declined") as caught:
        await finish(flow, start, params)
    assert isinstance(caught.value, ConsentDenied)  # the callback reports it as access_denied
    assert caught.value.reason == "access_denied"


async def test_pkce_verifier_missing_or_wrong(flow: SchwabFlow) -> None:
    _, params = await authorize(flow, "s")
    with pytest.raises(ProviderAuthError, match="verifier missing"):
        await flow.complete(params=params, flow_data={}, redirect_uri=REDIRECT)
    with pytest.raises(ProviderAuthError, match="PKCE verification failed"):
        await flow.complete(params=params, flow_data={"code_verifier": "x" * 64}, redirect_uri=REDIRECT)


async def test_code_is_single_use_and_expires(flow: SchwabFlow, clock: VirtualClock) -> None:
    start, params = await authorize(flow, "s")
    await finish(flow, start, params)
    with pytest.raises(ProviderAuthError, match="invalid_grant"):
        await finish(flow, start, params)

    start, params = await authorize(flow, "t")
    clock.advance(31)
    with pytest.raises(ProviderAuthError, match="expired"):
        await finish(flow, start, params)


async def test_sync_reads_accounts_holdings_and_windows(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    async with adapter(settings, clock, await connect(flow)) as sync:
        accounts = {a.provider_account_id: a for a in await sync.fetch_accounts()}
        margin, cash = accounts["12345678"], accounts["87654321"]
        assert (margin.balance, margin.cash_value, margin.available_balance) == (
            Decimal("3351.15"),
            Decimal("1000.1"),
            Decimal("900.2"),
        )
        assert margin.holdings_value == Decimal("2351.05")
        assert (cash.balance, cash.cash_value) == (Decimal("0.3"), Decimal("0.3"))
        holdings = {h.symbol: h for h in await sync.fetch_holdings(margin)}
        assert holdings["TSLA"].quantity == Decimal("-3.0")
        assert holdings["SPY"].asset_type is AssetType.ETF
        assert holdings["AAPL"].cusip == "037833100"
        assert holdings["AAPL"].unrealized_pnl == Decimal("199.3")

        batch = await sync.fetch_transactions(margin)
    assert fake.windows
    assert all(end - start <= timedelta(days=60) for start, end in fake.windows)
    assert fake.windows[0][0].timestamp() == pytest.approx(clock.now() - 365 * 86400, abs=1)
    by_id = {t.provider_transaction_id: t for t in batch.transactions}
    assert set(by_id) == {"9001", "9002", "9003", "9004", "9005", "9006"}  # 9007 is older than the lookback
    buy = by_id["9001"]
    assert (buy.type, buy.subtype, buy.quantity, buy.unit_price, buy.fees) == (
        TransactionType.TRADE,
        TransactionSubtype.BUY,
        Decimal("10.0"),
        Decimal("170.03"),
        Decimal("0.3"),
    )
    assert by_id["9002"].subtype is TransactionSubtype.SELL
    assert by_id["9004"].subtype is TransactionSubtype.INTEREST
    assert by_id["9006"].amount == Decimal("-100.0")


async def test_next_sync_starts_at_cursor_minus_overlap(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    async with adapter(settings, clock, await connect(flow)) as sync:
        account = (await sync.fetch_accounts())[0]
        await sync.fetch_transactions(account)
        fake.windows.clear()
        clock.advance(86400)
        await sync.fetch_transactions(account)
    assert len(fake.windows) == 1
    start, end = fake.windows[0]
    assert end - start == timedelta(days=4)  # one day since the last sync plus a 3-day overlap


async def test_refresh_before_expiry_keeps_or_rotates_token(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    creds = await connect(flow)
    original = dict(creds)
    async with adapter(settings, clock, creds) as sync:
        clock.advance(25 * 60 + 1)  # inside the 5-minute margin before the 30-minute expiry
        fake.omit_refresh_token = True
        await sync.fetch_accounts()
        assert fake.refreshes == 1
        assert creds["access_token"] != original["access_token"]
        assert creds["refresh_token"] == original["refresh_token"]  # none returned: keep the old one
        assert creds["access_expires_at"] == int(clock.now()) + 1800

        clock.advance(26 * 60)
        fake.rotate_every = 2
        await sync.fetch_accounts()
        assert fake.refreshes == 2
        assert creds["refresh_token"] != original["refresh_token"]
        assert (
            creds["refresh_expires_at"] == original["refresh_expires_at"]
        )  # 7 days from login, not extended

        await sync.fetch_accounts()  # still fresh: no token call
        assert fake.refreshes == 2


async def test_refresh_token_lapsed_or_revoked_needs_reauth(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    creds = await connect(flow)
    fake.refresh_tokens.clear()  # revoked at Schwab
    clock.advance(1800)
    with pytest.raises(ProviderAuthError, match="invalid_grant"):
        await flow.refresh(creds)
    calls = fake.calls["token"]
    clock.advance(7 * 86400)
    async with adapter(settings, clock, creds) as sync:
        with pytest.raises(ProviderAuthError, match="7-day"):
            await sync.fetch_accounts()
    assert fake.calls["token"] == calls  # lapsed by the clock: not even asked


async def test_429_retry_after_and_5xx_are_retried(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    async with adapter(settings, clock, await connect(flow)) as sync:
        fake.fail_next(429, retry_after=7)
        fake.fail_next(503)
        assert len(await sync.fetch_accounts()) == 2
    assert clock.slept >= 7
    assert fake.calls["accountNumbers"] == 3


async def test_rejected_token_is_refreshed_once_even_when_calls_race(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    creds = await connect(flow)
    async with adapter(settings, clock, creds) as sync:
        accounts = await sync.fetch_accounts()
        fake.access_tokens.clear()  # Schwab revoked the access token before its expiry
        fake.rotate_every = 1
        old_refresh = creds["refresh_token"]
        batches = await asyncio.gather(*(sync.fetch_transactions(a) for a in accounts))
    assert fake.refreshes == 1  # one refresh for both calls: a rotated token is spent only once
    assert creds["refresh_token"] != old_refresh
    assert len(batches[0].transactions) == 6


async def test_unknown_account_number_reloads_the_hash_map(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    creds = await connect(flow)
    session_state: dict[str, Any] = {"hashes": {}}  # persisted by an older sync, before the account existed
    async with adapter(settings, clock, creds, session_state) as sync:
        margin = next(a for a in await sync.fetch_accounts() if a.provider_account_id == "12345678")
        session_state["hashes"] = {}
        holdings = await sync.fetch_holdings(margin)  # served from this run's accounts payload
        await sync.fetch_transactions(margin)
    assert len(holdings) == 3
    assert session_state["hashes"]["12345678"] == fake.hash_of("12345678")
    assert fake.calls["accountNumbers"] == 2
    async with adapter(settings, clock, creds, session_state) as later:
        # a run that did not list accounts reads one account by its hash
        assert len(await later.fetch_holdings(margin)) == 3
    assert (fake.calls["account"], fake.calls["accountNumbers"]) == (1, 2)


async def test_token_endpoint_outage_is_unavailable_not_reauth(flow: SchwabFlow, fake: FakeSchwab) -> None:
    start, params = await authorize(flow, "s")
    fake.fail_next(503)
    with pytest.raises(Unavailable):
        await finish(flow, start, params)
    fake.fail_next(429, retry_after=30)
    with pytest.raises(RateLimited) as caught:
        await finish(flow, start, params)
    assert caught.value.retry_after == 30
    result = await finish(flow, start, params)
    assert result.credentials["access_token"]  # the code was never spent by the failed attempts


async def test_a_pending_activity_is_read_again_until_it_settles(
    flow: SchwabFlow, settings: SchwabSettings, fake: FakeSchwab, clock: VirtualClock
) -> None:
    """An ACH deposit stays PENDING for days; later syncs must re-read it until Schwab says VALID,
    even after it falls behind the 3-day overlap (it would stay pending in finsync forever)."""
    deposit = _activity(clock, 9100, 1, "ACH_RECEIPT", "ACH IN PENDING", 250.0)
    deposit["status"] = "PENDING"
    fake.transactions["87654321"] = [deposit]
    state: dict[str, Any] = {}
    creds = await connect(flow)
    async with adapter(settings, clock, creds, state) as sync:
        cash = next(a for a in await sync.fetch_accounts() if a.provider_account_id == "87654321")
        (first,) = (await sync.fetch_transactions(cash)).transactions
    assert first.status is TransactionStatus.PENDING

    clock.advance(3 * 86400)  # a sync while the deposit is still held
    async with adapter(settings, clock, creds, state) as sync:
        await sync.fetch_transactions(cash)
    deposit["status"] = "VALID"  # Schwab settles it, a week after it started
    clock.advance(3 * 86400)
    async with adapter(settings, clock, creds, state) as sync:
        batch = await sync.fetch_transactions(cash)
    settled = {t.provider_transaction_id: t for t in batch.transactions}
    assert settled["9100"].status is TransactionStatus.SETTLED

    clock.advance(12 * 3600)  # nothing pending any more: back to the last sync minus the overlap
    fake.windows.clear()
    async with adapter(settings, clock, creds, state) as sync:
        await sync.fetch_transactions(cash)
    assert [end - start for start, end in fake.windows] == [timedelta(days=3, hours=12)]
