"""GoCardless token manager, link flow and budgeted adapter against the fake API over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from uuid import uuid4

import pytest

from finsync.domain.enums import TransactionStatus
from finsync.domain.errors import ConsentDenied, InvalidInput, ProviderAuthError, RateLimited, Unavailable
from finsync.domain.ports import AuthorizationResult, ProviderSession
from finsync.providers.gocardless import (
    METADATA,
    GoCardlessFlow,
    GoCardlessSettings,
    GoCardlessTokens,
    institutions,
)
from finsync.providers.gocardless.adapter import GoCardlessAdapter
from finsync.providers.gocardless.mappers import api_account_id
from tests.fakes.clock import VirtualClock
from tests.fakes.consent import submit_consent
from tests.fakes.gocardless import SANDBOX, SECRET_ID, SECRET_KEY, FakeGoCardless, with_sample_data
from tests.fakes.server import serve

pytestmark = pytest.mark.integration
REDIRECT = "http://127.0.0.1:9/api/v1/connections/callback"


@dataclass
class Kit:
    """The provider's factories, bound to one deployment's settings, token manager and clock."""

    settings: GoCardlessSettings
    tokens: GoCardlessTokens
    clock: VirtualClock

    def flow(self, **options: Any) -> GoCardlessFlow:
        built = METADATA.flow_factory(  # type: ignore[misc]
            self.settings, options, tokens=self.tokens, clock=self.clock
        )
        assert isinstance(built, GoCardlessFlow)
        return built

    async def authorize(
        self, decision: str = "allow", state: str = "state-9"
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Start a link, press the bank's button, return (flow_data, callback params)."""
        start = await self.flow(institution_id=SANDBOX).start(state=state, redirect_uri=REDIRECT)
        location = await submit_consent(start.url, decision)
        assert location.startswith(REDIRECT)
        return start.flow_data, dict(parse_qsl(urlsplit(location).query))

    async def finish(self, flow_data: dict[str, Any], params: dict[str, str]) -> AuthorizationResult:
        return await self.flow().complete(params=params, flow_data=flow_data, redirect_uri=REDIRECT)

    async def connect(self) -> ProviderSession:
        """A sync session on a completed link."""
        result = await self.finish(*await self.authorize())
        return ProviderSession(connection_id=uuid4(), credentials=result.credentials)

    @asynccontextmanager
    async def adapter(self, session: ProviderSession) -> AsyncIterator[GoCardlessAdapter]:
        built = METADATA.adapter_factory(  # type: ignore[misc]
            session, self.settings, tokens=self.tokens, clock=self.clock
        )
        assert isinstance(built, GoCardlessAdapter)
        async with aclosing(built) as sync:
            yield sync


@pytest.fixture
def fake(clock: VirtualClock) -> FakeGoCardless:
    return with_sample_data(FakeGoCardless(clock))


@pytest.fixture
def settings(fake: FakeGoCardless) -> Iterator[GoCardlessSettings]:
    with serve(fake.app) as base:
        yield GoCardlessSettings(
            _env_file=None, url=f"{base}/api/v2", secret_id=SECRET_ID, secret_key=SECRET_KEY
        )  # type: ignore[call-arg]


@pytest.fixture
def tokens(settings: GoCardlessSettings, clock: VirtualClock) -> GoCardlessTokens:
    return GoCardlessTokens.from_settings(settings, clock=clock)


@pytest.fixture
def kit(settings: GoCardlessSettings, tokens: GoCardlessTokens, clock: VirtualClock) -> Kit:
    return Kit(settings, tokens, clock)


async def test_one_token_serves_many_calls_and_is_refreshed(
    settings: GoCardlessSettings,
    tokens: GoCardlessTokens,
    fake: FakeGoCardless,
    clock: VirtualClock,
    kit: Kit,
) -> None:
    banks = await institutions(settings, "GB", tokens=tokens, clock=clock)
    assert {b["id"] for b in banks} == {SANDBOX, "FAKEBANK_FKBKGB2L"}
    await institutions(settings, "gb", tokens=tokens, clock=clock)
    await kit.connect()
    assert fake.calls["token_new"] == 1
    assert tokens.minted == 1
    clock.advance(86400 - 200)  # within the renewal margin of the 24-hour access token
    await institutions(settings, "GB", tokens=tokens, clock=clock)
    assert (fake.calls["token_new"], fake.calls["token_refresh"]) == (1, 1)
    with pytest.raises(InvalidInput):
        await institutions(settings, "GBR", tokens=tokens, clock=clock)


async def test_wrong_deployment_secret_is_not_a_user_reauth(
    settings: GoCardlessSettings, clock: VirtualClock
) -> None:
    bad = GoCardlessTokens(base_url=settings.url, secret_id="nope", secret_key="nope!", clock=clock)
    with pytest.raises(Unavailable, match="secret id/key"):
        await bad.access_token()


async def test_link_flow_linked(kit: Kit, fake: FakeGoCardless, clock: VirtualClock) -> None:
    flow_data, params = await kit.authorize()
    assert params == {"ref": "state-9"}
    assert set(flow_data) == {
        "requisition_id",
        "agreement_id",
        "institution_id",
        "access_valid_for_days",
        "max_historical_days",
    }
    agreement = fake.agreements[flow_data["agreement_id"]]
    assert (agreement["max_historical_days"], agreement["access_valid_for_days"]) == (90, 90)
    result = await kit.finish(flow_data, params)
    creds = result.credentials
    assert creds["accounts"] == [a.id for a in fake.bank_accounts]
    assert creds["institution_id"] == SANDBOX
    assert creds["requisition_id"] == flow_data["requisition_id"]
    assert result.expires_at == datetime.fromtimestamp(clock.now(), UTC) + timedelta(days=90)


async def test_link_rejected_or_unfinished(kit: Kit) -> None:
    flow_data, params = await kit.authorize("deny")
    with pytest.raises(ProviderAuthError, match=r"rejected.*\[RJ\].*UserCancelledSession") as caught:
        await kit.finish(flow_data, params)
    assert isinstance(caught.value, ConsentDenied)  # the callback reports it as access_denied
    assert caught.value.reason == "User cancelled the session"
    start = await kit.flow(institution_id=SANDBOX).start(state="state-10", redirect_uri=REDIRECT)
    with pytest.raises(ProviderAuthError, match=r"\[CR\]") as unfinished:
        await kit.finish(start.flow_data, {})
    assert not isinstance(unfinished.value, ConsentDenied)  # not refused: authorization_failed
    with pytest.raises(InvalidInput, match="institution_id"):
        await kit.flow().start(state="s", redirect_uri=REDIRECT)


@pytest.mark.parametrize("header_style", ["http", "x"])
async def test_budget_refuses_the_fifth_call_before_calling(
    kit: Kit, fake: FakeGoCardless, clock: VirtualClock, header_style: Any
) -> None:
    fake.header_style = header_style
    session = await kit.connect()
    first_call = clock.now()
    for _ in range(4):
        async with kit.adapter(session) as sync:
            for account in await sync.fetch_accounts():
                await sync.fetch_transactions(account)
        clock.advance(3600)
    current = fake.bank_accounts[0].id
    assert fake.calls[f"balances:{current}"] == 4
    assert fake.calls[f"details:{current}"] == 1
    async with kit.adapter(session) as sync:
        with pytest.raises(RateLimited) as caught:
            await sync.fetch_accounts()
    assert fake.calls[f"balances:{current}"] == 4  # refused locally: no call burnt
    assert caught.value.retry_at == datetime.fromtimestamp(first_call + 86400, UTC)
    clock.advance(caught.value.retry_after)
    async with kit.adapter(session) as sync:
        assert len(await sync.fetch_accounts()) == 2


@pytest.mark.parametrize("header_style", ["http", "x"])
async def test_the_per_minute_limit_in_the_headers_is_waited_for_not_hit(
    kit: Kit, fake: FakeGoCardless, clock: VirtualClock, header_style: Any
) -> None:
    """GoCardless's own /accounts/* limit: remaining 0 with a reset in (relative) seconds means
    wait that long before the next call, rather than earn a 429."""
    fake.header_style = header_style
    session = await kit.connect()
    fake.minute_limit = 3  # another client of this deployment spends the rest of the minute
    async with kit.adapter(session) as sync:
        for account in await sync.fetch_accounts():  # details + balances, twice: four calls
            await sync.fetch_transactions(account)
    assert fake.minute_429s == 0
    assert clock.slept >= 55


async def test_server_side_limit_is_remembered(kit: Kit, fake: FakeGoCardless, clock: VirtualClock) -> None:
    session = await kit.connect()
    fake.daily_limit = 1  # another client spent the allowance: the 429 must not be retried for hours
    async with kit.adapter(session) as sync:
        accounts = await sync.fetch_accounts()
        await sync.fetch_transactions(accounts[0])
        fake.successes[(api_account_id(accounts[1]), "transactions")].append(clock.now())
        with pytest.raises(RateLimited):
            await sync.fetch_transactions(accounts[1])
    assert fake.calls[f"transactions:{api_account_id(accounts[1])}"] == 1
    assert clock.slept < 60


async def test_pending_then_booked_leaves_one_row(
    kit: Kit, fake: FakeGoCardless, clock: VirtualClock
) -> None:
    async with kit.adapter(await kit.connect()) as sync:
        current = (await sync.fetch_accounts())[0]
        assert (current.balance, current.available_balance) == (Decimal("1000.00"), Decimal("950.10"))
        first = await sync.fetch_transactions(current)
        clock.advance(6 * 3600)
        booked = fake.book_pending(api_account_id(current), 0, "b-9")
        second = await sync.fetch_transactions(current)
    pending_first = {
        t.provider_transaction_id for t in first.transactions if t.status is TransactionStatus.PENDING
    }
    assert len(pending_first) == 2
    assert all(i.startswith("h:") for i in pending_first)
    assert {"b-1", "int-77"} <= {t.provider_transaction_id for t in first.transactions}
    ids = [t.provider_transaction_id for t in second.transactions]
    assert len(ids) == len(set(ids))
    assert "b-9" in ids
    still_pending = {
        t.provider_transaction_id for t in second.transactions if t.status is TransactionStatus.PENDING
    }
    assert len(still_pending) == 1
    assert still_pending < pending_first
    # The sync service drops stored pending rows from this date on that the batch lacks: the old
    # pending twin of b-9 goes, so the booked row is the only one left.
    assert second.replace_pending_since is not None
    assert second.replace_pending_since <= datetime.fromisoformat(booked["bookingDate"]).date()
    assert second.replace_pending_since <= min(
        t.transaction_date for t in first.transactions if t.status is TransactionStatus.PENDING
    )


async def test_expired_consent_needs_reauth(kit: Kit, clock: VirtualClock) -> None:
    session = await kit.connect()
    clock.advance(91 * 86400)
    async with kit.adapter(session) as sync:
        with pytest.raises(ProviderAuthError, match="expired"):
            await sync.fetch_accounts()
        session.credentials["access_expires_at"] = None  # even without our own record, the API says so
        with pytest.raises(ProviderAuthError, match="expired"):
            await sync.fetch_accounts()


async def test_consent_page_works_when_mounted_under_a_prefix(
    fake: FakeGoCardless, clock: VirtualClock
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    with serve(Starlette(routes=[Mount("/gocardless", app=fake.app)])) as base:
        settings = GoCardlessSettings(  # type: ignore[call-arg]
            _env_file=None, url=f"{base}/gocardless/api/v2", secret_id=SECRET_ID, secret_key=SECRET_KEY
        )
        tokens = GoCardlessTokens.from_settings(settings, clock=clock)
        session = await Kit(settings, tokens, clock).connect()
    assert len(session.credentials["accounts"]) == 2


async def _fresh_token_then_count(kit: Kit, fake: FakeGoCardless) -> tuple[int, int]:
    """Renew the deployment token now, so that what follows shows only renewals it caused."""
    await kit.tokens.access_token()
    return fake.calls["token_new"], fake.calls["token_refresh"]


async def test_expired_agreement_needs_reauth_at_once_without_renewing_the_token(
    kit: Kit, fake: FakeGoCardless, clock: VirtualClock
) -> None:
    session = await kit.connect()
    session.credentials["access_expires_at"] = None  # only the API can tell
    clock.advance(91 * 86400)
    tokens_before = await _fresh_token_then_count(kit, fake)
    first = fake.bank_accounts[0].id
    async with kit.adapter(session) as sync:
        with pytest.raises(ProviderAuthError, match="reconnect this bank") as caught:
            await sync.fetch_accounts()
    assert "has expired" in caught.value.detail
    assert (fake.calls["token_new"], fake.calls["token_refresh"]) == tokens_before
    assert fake.calls[f"details:{first}"] == 1  # no retry: a new token cannot revive a consent


async def test_revoked_access_needs_reauth_at_once(kit: Kit, fake: FakeGoCardless) -> None:
    session = await kit.connect()
    async with kit.adapter(session) as sync:
        await sync.fetch_accounts()
    revoked = fake.bank_accounts[1].id
    fake.revoke(revoked)  # withdrawn at the bank: {"type": "AccessExpiredError", ...}
    tokens_before = await _fresh_token_then_count(kit, fake)
    async with kit.adapter(session) as sync:
        with pytest.raises(ProviderAuthError, match="reconnect this bank"):
            await sync.fetch_accounts()
    assert (fake.calls["token_new"], fake.calls["token_refresh"]) == tokens_before
    assert fake.calls[f"balances:{revoked}"] == 2  # once per sync: no retry


async def test_account_gone_at_gocardless_needs_reauth(kit: Kit, fake: FakeGoCardless) -> None:
    session = await kit.connect()
    fake.unlink(fake.bank_accounts[0].id)  # 404 "Account not found": the bank link is gone
    async with kit.adapter(session) as sync:
        with pytest.raises(ProviderAuthError, match="reconnect this bank"):
            await sync.fetch_accounts()


async def test_a_rejected_token_is_still_renewed_once(kit: Kit, fake: FakeGoCardless) -> None:
    session = await kit.connect()
    fake.access.clear()  # GoCardless forgot every token: 401 "Invalid token"
    async with kit.adapter(session) as sync:
        assert len(await sync.fetch_accounts()) == 2
    assert fake.calls["token_refresh"] == 1


async def test_accounts_stored_under_gocardless_ids_keep_that_key_across_reconsent(
    kit: Kit, fake: FakeGoCardless
) -> None:
    fake.bank_accounts[0].iban = ""  # only the bank's resourceId names it
    session = await kit.connect()
    old_id = fake.bank_accounts[0].id
    session.state = {"accounts": {old_id: {"transactions_until": "2025-10-01"}}}  # an older finsync's
    async with kit.adapter(session) as sync:
        assert (await sync.fetch_accounts())[0].provider_account_id == old_id  # as stored then
    fake.renew_ids()
    session.credentials = (await kit.finish(*await kit.authorize(state="state-renewed"))).credentials
    async with kit.adapter(session) as sync:
        accounts = await sync.fetch_accounts()
        batch = await sync.fetch_transactions(accounts[0])
    assert accounts[0].provider_account_id == old_id
    assert api_account_id(accounts[0]) == fake.bank_accounts[0].id  # calls use the new consent's id
    assert batch.transactions
    current = {a.id for a in fake.bank_accounts}
    assert set(session.state["accounts"]) == current  # the old consent's entries are dropped
    assert set(session.state["budget"]) <= current
