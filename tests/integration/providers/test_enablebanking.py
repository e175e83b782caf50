"""Enable Banking JWT signing, link flow and budgeted adapter against the fake API over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from uuid import uuid4

import pytest

from finsync.domain.enums import AccountType, TransactionStatus
from finsync.domain.errors import ConsentDenied, InvalidInput, ProviderAuthError, RateLimited, Unavailable
from finsync.domain.ports import AuthorizationResult, PersonPresent, ProviderSession
from finsync.providers.enablebanking import (
    METADATA,
    EnableBankingAdapter,
    EnableBankingFlow,
    EnableBankingSettings,
    EnableBankingSigner,
    institutions,
    revoke,
)
from finsync.providers.enablebanking.client import psu_headers
from tests.fakes.clock import VirtualClock
from tests.fakes.consent import submit_consent
from tests.fakes.enablebanking import (
    APPLICATION_ID,
    INSTITUTION,
    FakeEnableBanking,
    new_key,
    with_sample_data,
)
from tests.fakes.server import serve

pytestmark = pytest.mark.integration
REDIRECT = "http://127.0.0.1:9/api/v1/connections/callback"
KEY = new_key()  # one RSA key for the module: generating one costs ~0.1 s


@dataclass
class Kit:
    settings: EnableBankingSettings
    signer: EnableBankingSigner
    clock: VirtualClock

    def flow(self, **options: Any) -> EnableBankingFlow:
        built = METADATA.flow_factory(self.settings, options, signer=self.signer, clock=self.clock)  # type: ignore[misc]
        assert isinstance(built, EnableBankingFlow)
        return built

    async def authorize(
        self, decision: str = "allow", **options: Any
    ) -> tuple[dict[str, Any], dict[str, str]]:
        start = await self.flow(institution_id=INSTITUTION, **options).start(
            state="state-9", redirect_uri=REDIRECT
        )
        location = await submit_consent(start.url, decision)
        assert location.startswith(REDIRECT)
        return start.flow_data, dict(parse_qsl(urlsplit(location).query))

    async def finish(self, flow_data: dict[str, Any], params: dict[str, str]) -> AuthorizationResult:
        return await self.flow().complete(params=params, flow_data=flow_data, redirect_uri=REDIRECT)

    async def connect(self, session: ProviderSession | None = None) -> ProviderSession:
        """A sync session on a completed link (a re-consent keeps ``session``'s state)."""
        result = await self.finish(*await self.authorize())
        if session is None:
            return ProviderSession(connection_id=uuid4(), credentials=result.credentials)
        return ProviderSession(
            connection_id=session.connection_id, credentials=result.credentials, state=session.state
        )

    @asynccontextmanager
    async def adapter(self, session: ProviderSession) -> AsyncIterator[EnableBankingAdapter]:
        built = METADATA.adapter_factory(session, self.settings, signer=self.signer, clock=self.clock)  # type: ignore[misc]
        assert isinstance(built, EnableBankingAdapter)
        async with aclosing(built) as sync:
            yield sync


@pytest.fixture
def fake(clock: VirtualClock) -> FakeEnableBanking:
    return with_sample_data(FakeEnableBanking(clock, KEY[1]))


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / f"{APPLICATION_ID}.pem"
    path.write_bytes(KEY[0])
    return path


@pytest.fixture
def settings(fake: FakeEnableBanking, key_path: Path) -> Iterator[EnableBankingSettings]:
    with serve(fake.app) as base:
        yield EnableBankingSettings(
            _env_file=None, url=base, application_id=APPLICATION_ID, key_path=str(key_path)
        )  # type: ignore[call-arg]


@pytest.fixture
def kit(settings: EnableBankingSettings, clock: VirtualClock) -> Kit:
    return Kit(settings, EnableBankingSigner.from_settings(settings, clock=clock), clock)


async def test_institutions_signed_and_the_token_reused_for_an_hour(
    kit: Kit, fake: FakeEnableBanking, clock: VirtualClock
) -> None:
    banks = await institutions(kit.settings, "fi", signer=kit.signer, clock=clock)
    assert [b["id"] for b in banks] == [INSTITUTION]  # the business-only bank is left out
    assert banks[0]["max_access_valid_for_days"] == 180
    await institutions(kit.settings, "SE", signer=kit.signer, clock=clock)
    assert kit.signer.signed == 1
    assert len(fake.tokens) == 1
    clock.advance(3600 - 200)  # within five minutes of the token's end: a new one
    await institutions(kit.settings, "FI", signer=kit.signer, clock=clock)
    assert kit.signer.signed == 2
    with pytest.raises(InvalidInput):
        await institutions(kit.settings, "FIN", signer=kit.signer, clock=clock)


async def test_a_wrong_key_is_the_deployments_problem_not_a_reconsent(
    kit: Kit, tmp_path: Path, clock: VirtualClock
) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(new_key()[0])
    signer = EnableBankingSigner(application_id=APPLICATION_ID, key_path=str(other), clock=clock)
    with pytest.raises(Unavailable, match="application key"):
        await institutions(kit.settings, "FI", signer=signer, clock=clock)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nsecret-looking\n-----END PRIVATE KEY-----\n")
    broken = EnableBankingSigner(application_id=APPLICATION_ID, key_path=str(garbage), clock=clock)
    with pytest.raises(Unavailable) as caught:
        await institutions(kit.settings, "FI", signer=broken, clock=clock)
    assert "secret-looking" not in str(caught.value)


async def test_link_asks_the_banks_consent_length_and_keeps_the_session(
    kit: Kit, fake: FakeEnableBanking, clock: VirtualClock
) -> None:
    flow_data, params = await kit.authorize()
    assert params["state"] == "state-9"
    assert params["code"]
    result = await kit.finish(flow_data, params)
    assert result.expires_at is not None
    assert result.expires_at.timestamp() == pytest.approx(clock.now() + 180 * 86400 - 300, abs=2)
    creds = result.credentials
    assert creds["session_id"] in fake.sessions
    assert [a["identification_hash"] for a in creds["accounts"]] == ["hash-current-1", "hash-card-2"]
    assert creds["accounts"][0]["iban"] == "FI2112345600000785"
    with pytest.raises(ProviderAuthError):  # the code is good for one session only
        await kit.finish(flow_data, params)
    shorter, params = await kit.authorize(consent_days=30)
    assert (await kit.finish(shorter, params)).expires_at.timestamp() == pytest.approx(  # type: ignore[union-attr]
        clock.now() + 30 * 86400, abs=2
    )


async def test_denied_link_and_bad_bank_choices(kit: Kit) -> None:
    flow_data, params = await kit.authorize("deny")
    with pytest.raises(ConsentDenied, match="access_denied"):
        await kit.finish(flow_data, params)
    for bad in (None, "Sandbox Bank", "FIN:Sandbox Bank", "FI:"):
        with pytest.raises(InvalidInput):
            await kit.flow(institution_id=bad).start(state="s", redirect_uri=REDIRECT)
    with pytest.raises(InvalidInput, match="no bank named"):
        await kit.flow(institution_id="FI:Nowhere Bank").start(state="s", redirect_uri=REDIRECT)
    with pytest.raises(InvalidInput):
        kit.flow(institution_id=INSTITUTION, consent_days="soon")


async def test_sync_pages_signs_and_names_rows_stably(kit: Kit, fake: FakeEnableBanking) -> None:
    session = await kit.connect()
    async with kit.adapter(session) as sync:
        accounts = await sync.fetch_accounts()
        current, card = accounts
        assert current.provider_account_id == "hash:hash-current-1"
        assert (current.balance, current.available_balance) == (Decimal("1000.00"), Decimal("950.10"))
        assert card.type is AccountType.CREDIT_CARD
        assert card.balance == Decimal("-250.00")
        batch = await sync.fetch_transactions(current)
    assert fake.calls["transactions"] == 4  # 7 rows in pages of 2: continuation keys followed
    rows = batch.transactions
    assert len(rows) == 7  # the cancelled item is not money that moved
    by_text = {(t.description, t.status): t for t in rows}
    assert by_text[("SALARY", TransactionStatus.SETTLED)].amount == Decimal("2500.00")
    assert by_text[("RENT", TransactionStatus.SETTLED)].amount == Decimal("-100.00")
    assert by_text[("RENT", TransactionStatus.SETTLED)].provider_transaction_id == "ref:e-0"
    fares = [t.provider_transaction_id for t in rows if t.description == "BUS FARE"]
    assert len(set(fares)) == 2  # identical twins stay two rows
    async with kit.adapter(session) as again:
        second = await again.fetch_transactions(current)
    # transaction_id changes on every fetch; our ids do not
    assert {t.provider_transaction_id for t in second.transactions} >= set(fares)


async def test_reconsent_keeps_keys_with_new_uids(kit: Kit) -> None:
    session = await kit.connect()
    async with kit.adapter(session) as sync:
        before = await sync.fetch_accounts()
    renewed = await kit.connect(session)
    async with kit.adapter(renewed) as sync:
        after = await sync.fetch_accounts()
    assert [a.provider_account_id for a in after] == [a.provider_account_id for a in before]
    assert [a.raw["enablebanking_uid"] for a in after] != [a.raw["enablebanking_uid"] for a in before]
    assert set(renewed.state["budget"]) == {a.raw["enablebanking_uid"] for a in after}


async def test_four_unattended_calls_a_day_then_refused_before_calling(
    kit: Kit, fake: FakeEnableBanking, clock: VirtualClock
) -> None:
    session = await kit.connect()
    for _ in range(4):
        async with kit.adapter(session) as sync:
            for account in await sync.fetch_accounts():
                await sync.fetch_transactions(account)
        clock.advance(600)
    calls = fake.calls.total()
    async with kit.adapter(session) as sync:
        with pytest.raises(RateLimited) as caught:
            await sync.preflight()
    assert fake.calls.total() == calls
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 86400
    clock.advance(86400)
    async with kit.adapter(session) as sync:
        await sync.preflight()


@pytest.mark.parametrize("known", [True, False], ids=["required-list-kept", "connected-before-it-was-kept"])
async def test_with_the_person_present_the_psu_headers_go_and_no_allowance_is_spent(
    kit: Kit, fake: FakeEnableBanking, clock: VirtualClock, known: bool
) -> None:
    session = await kit.connect()
    assert session.credentials["required_psu_headers"] == ["Psu-Ip-Address", "Psu-User-Agent"]
    if not known:
        del session.credentials["required_psu_headers"]
    session.present = PersonPresent("2001:db8::7", "Mozilla/5.0 (X11)")
    for _ in range(6):  # beyond the four unattended calls a day
        async with kit.adapter(session) as sync:
            await sync.preflight()
            for account in await sync.fetch_accounts():
                await sync.fetch_transactions(account)
        clock.advance(600)
    assert len(fake.psu_seen) == 6 * 2 * len(fake.bank_accounts)
    assert {tuple(sorted(psu.items())) for _, psu in fake.psu_seen} == {
        (("psu-ip-address", "2001:db8::7"), ("psu-user-agent", "Mozilla/5.0 (X11)"))
    }
    session.present = None  # a scheduled sync: unattended, and the allowance is whole
    for _ in range(4):
        async with kit.adapter(session) as sync:
            for account in await sync.fetch_accounts():
                await sync.fetch_transactions(account)
    async with kit.adapter(session) as sync:
        with pytest.raises(RateLimited):
            await sync.preflight()


async def test_psu_headers_all_the_bank_requires_or_none(kit: Kit, fake: FakeEnableBanking) -> None:
    fake.aspsps[0]["required_psu_headers"] = ["Psu-Ip-Address", "Psu-Geo-Location"]
    session = await kit.connect()
    session.present = PersonPresent("192.0.2.10", "Mozilla/5.0")
    async with kit.adapter(session) as sync:
        for account in await sync.fetch_accounts():
            await sync.fetch_transactions(account)
    assert fake.psu_seen
    assert all(psu == {} for _, psu in fake.psu_seen)  # a header finsync cannot fill: none sent
    assert psu_headers(PersonPresent("192.0.2.10", None), ["Psu-Ip-Address", "Psu-User-Agent"]) == {}
    assert psu_headers(PersonPresent("192.0.2.10", None), ["psu-ip-address"]) == {
        "Psu-Ip-Address": "192.0.2.10"
    }
    assert psu_headers(None, []) == {}


async def test_the_banks_own_limit_blocks_the_account(kit: Kit, fake: FakeEnableBanking) -> None:
    """Another application spent the allowance: the bank's 429 is raised at once and remembered."""
    session = await kit.connect()
    fake.daily_limit = 0
    async with kit.adapter(session) as sync:
        with pytest.raises(RateLimited, match="daily allowance"):
            await sync.fetch_accounts()
    calls = fake.calls.total()
    async with kit.adapter(session) as sync:
        with pytest.raises(RateLimited):
            await sync.preflight()
    assert fake.calls.total() == calls


async def test_pending_booked_with_a_new_reference_replaces_the_pending_row(
    kit: Kit, fake: FakeEnableBanking, clock: VirtualClock
) -> None:
    session = await kit.connect()
    async with kit.adapter(session) as sync:
        current = (await sync.fetch_accounts())[0]
        first = await sync.fetch_transactions(current)
    pending = [t for t in first.transactions if t.status is TransactionStatus.PENDING]
    assert len(pending) == 2
    booked = fake.book_pending(fake.bank_accounts[0], 1)  # GROCER, pending as p-7, booked as a new ref
    clock.advance(3600)
    async with kit.adapter(session) as sync:
        current = (await sync.fetch_accounts())[0]
        second = await sync.fetch_transactions(current)
    assert second.replace_pending_since is not None
    assert second.replace_pending_since <= min(t.transaction_date for t in pending)  # the old rows go
    now_pending = [t for t in second.transactions if t.status is TransactionStatus.PENDING]
    assert [t.description for t in now_pending] == ["COFFEE"]
    grocer = [t for t in second.transactions if t.description == "GROCER"]
    assert [t.provider_transaction_id for t in grocer] == [f"ref:{booked['entry_reference']}"]


async def test_expired_and_closed_sessions_need_a_reconsent(
    kit: Kit, fake: FakeEnableBanking, clock: VirtualClock
) -> None:
    session = await kit.connect()
    fake.sessions[session.credentials["session_id"]]["valid_until"] = clock.now() + 60
    clock.advance(120)  # the bank ended it before the date we were told
    async with kit.adapter(session) as sync:
        with pytest.raises(ProviderAuthError, match="reconnect"):
            await sync.fetch_accounts()
    other = await kit.connect()
    await revoke(other, kit.settings, signer=kit.signer, clock=clock)
    assert fake.sessions[other.credentials["session_id"]]["status"] == "CLOSED"
    await revoke(other, kit.settings, signer=kit.signer, clock=clock)  # twice is harmless
    async with kit.adapter(other) as sync:
        with pytest.raises(ProviderAuthError, match="reconnect"):
            await sync.fetch_accounts()
    clock.advance(181 * 86400)  # past the consent's own end: refused without a call
    calls = fake.calls.total()
    async with kit.adapter(other) as sync:
        with pytest.raises(ProviderAuthError, match="expired"):
            await sync.fetch_accounts()
    assert fake.calls.total() == calls


async def test_unchanged_bank_data_reads_as_unchanged_rows(kit: Kit, fake: FakeEnableBanking) -> None:
    """``transaction_id`` may change on every fetch: it must not make every row look changed
    (the store compares a row's content, ``raw`` included), or each sync rewrites them all."""
    session = await kit.connect()
    async with kit.adapter(session) as sync:
        current = (await sync.fetch_accounts())[0]
        first = await sync.fetch_transactions(current)
    async with kit.adapter(session) as sync:
        current = (await sync.fetch_accounts())[0]
        second = await sync.fetch_transactions(current)
    before = {t.provider_transaction_id: t for t in first.transactions}
    after = {t.provider_transaction_id: t for t in second.transactions}
    assert len(after) == 5  # the last week, re-read
    assert all(before[key] == row for key, row in after.items())
    assert not any("transaction_id" in t.raw for t in second.transactions)
