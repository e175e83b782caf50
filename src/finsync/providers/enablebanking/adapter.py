"""Enable Banking sync adapter: balances and transactions of the accounts one session shared.

Every call to a bank endpoint spends the account's daily allowance of unattended calls
(PSD2: four a day), tracked with the budget GoCardless uses (``providers/budget.py``) in
``session.state["budget"][uid]``; a whole sync is refused up front when any account's
allowance is spent. A transactions read following ``continuation_key`` pages counts as
one call. ``session.state``::

    {"budget": {uid: ...},
     "accounts": {stable key: {"transactions_until": "YYYY-MM-DD", "oldest_pending": "YYYY-MM-DD"}}}

Reading memos are kept under the stable key (uids change with every session), so a
re-consent continues from where the last sync stopped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import httpx

from finsync.domain.errors import InvalidInput, ProviderAuthError
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, TransactionBatch
from finsync.providers import banklink
from finsync.providers.budget import AccountBudget
from finsync.providers.enablebanking.client import BankLimitReached, EnableBankingClient, psu_headers
from finsync.providers.enablebanking.flow import EnableBankingFlow, check_country, institution_id
from finsync.providers.enablebanking.mappers import account_identities, api_uid, map_account, map_transactions
from finsync.providers.enablebanking.settings import EnableBankingSettings, EnableBankingSigner
from finsync.providers.http import AccessRevoked, Clock, SystemClock

RECONNECT = "reconnect this bank through Enable Banking"


class EnableBankingAdapter:
    def __init__(
        self,
        session: ProviderSession,
        *,
        client: EnableBankingClient,
        history_days: int = 90,
        clock: Clock | None = None,
    ) -> None:
        self._session = session
        self._client = client
        self._history_days = history_days
        self._clock: Clock = clock or SystemClock()
        self._budget = AccountBudget(session.state, self._clock)
        # With the person present the bank does not count the calls as unattended: no budget.
        self._psu = psu_headers(session.present, session.credentials.get("required_psu_headers"))

    async def aclose(self) -> None:
        await self._client.aclose()

    def _accounts(self) -> list[dict[str, Any]]:
        until = self._session.credentials.get("valid_until")
        if until is not None and float(until) <= self._clock.now():
            raise ProviderAuthError(f"The bank consent expired; {RECONNECT}")
        return [
            a for a in self._session.credentials.get("accounts") or [] if isinstance(a, dict) and a.get("uid")
        ]

    def _memo(self, key: str) -> dict[str, Any]:
        memo: dict[str, Any] = self._session.state.setdefault("accounts", {}).setdefault(key, {})
        return memo

    def _sync_budget(self) -> list[dict[str, Any]]:
        """The shared accounts, once the allowance covers a whole sync (RateLimited otherwise)."""
        accounts = self._accounts()
        if not self._psu:
            self._budget.require(
                [(a["uid"], kind) for a in accounts for kind in ("balances", "transactions")]
            )
        return accounts

    def _forget_other_sessions(self, uids: set[str]) -> None:
        """Budgets of uids of earlier sessions will not be used again: keep the state bounded."""
        budget: dict[str, Any] = self._session.state.get("budget") or {}
        for gone in set(budget) - uids:
            del budget[gone]

    async def _spend(self, uid: str, kind: str, call: Any) -> Any:
        try:
            result = await call
        except BankLimitReached as exc:
            self._budget.block(uid, kind, exc.retry_after or 0.0)
            raise
        except AccessRevoked as exc:
            raise ProviderAuthError(
                f"The bank's consent for this account ended (expired, withdrawn or closed); {RECONNECT} "
                f"({exc.detail})"
            ) from None
        if not self._psu:
            self._budget.record(uid, kind, {})
        return result

    async def preflight(self) -> None:
        """Raise RateLimited now if a sync would exceed the bank's daily allowance (no network call)."""
        self._sync_budget()

    async def fetch_accounts(self) -> list[ProviderAccount]:
        accounts = self._sync_budget()
        self._forget_other_sessions({a["uid"] for a in accounts})
        keys = account_identities(accounts)
        aspsp = self._session.credentials.get("aspsp") or {}
        institution = str(aspsp.get("name") or "") or None
        found = []
        for account in accounts:
            uid = account["uid"]
            balances = await self._spend(uid, "balances", self._client.balances(uid, self._psu))
            found.append(map_account(account, balances, keys[uid], institution))
        return found

    def window(self, key: str) -> tuple[date, date]:
        today = datetime.fromtimestamp(self._clock.now(), UTC).date()
        return banklink.window(self._memo(key), today, self._history_days)

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        uid = api_uid(account)
        if not uid:
            raise ProviderAuthError(f"This account is not part of the current bank consent; {RECONNECT}")
        if not self._psu:
            self._budget.require([(uid, "transactions")])
        date_from, date_to = self.window(account.provider_account_id)
        call = self._client.transactions(uid, date_from, date_to, self._psu)
        items = await self._spend(uid, "transactions", call)
        transactions = map_transactions(items)
        banklink.remember(self._memo(account.provider_account_id), date_to, transactions)
        return TransactionBatch(transactions=transactions, replace_pending_since=date_from)


def create_client(
    settings: EnableBankingSettings,
    *,
    signer: EnableBankingSigner,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EnableBankingClient:
    """``signer`` is the process-wide JWT signer (``METADATA.resources``)."""
    return EnableBankingClient(
        base_url=settings.url,
        signer=signer,
        clock=clock,
        transport=transport,
        timeout=settings.timeout_seconds,
    )


def create_adapter(
    session: ProviderSession,
    settings: EnableBankingSettings,
    *,
    signer: EnableBankingSigner,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EnableBankingAdapter:
    client = create_client(settings, signer=signer, clock=clock, transport=transport)
    return EnableBankingAdapter(session, client=client, history_days=settings.history_days, clock=clock)


def create_flow(
    settings: EnableBankingSettings,
    options: dict[str, Any] | None = None,
    *,
    signer: EnableBankingSigner,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EnableBankingFlow:
    """``options``: ``institution_id`` (``<country>:<bank name>``, required to start), ``consent_days``."""
    opts = options or {}
    days: int | None = None
    if opts.get("consent_days") not in (None, ""):
        try:
            days = int(opts["consent_days"])
        except (TypeError, ValueError):
            raise InvalidInput("consent_days must be a whole number of days") from None
        if days < 1:
            raise InvalidInput("consent_days must be at least 1")
    return EnableBankingFlow(
        client=partial(create_client, settings, signer=signer, clock=clock, transport=transport),
        institution=opts.get("institution_id"),
        consent_days=days,
        clock=clock,
    )


async def institutions(
    settings: EnableBankingSettings,
    country: str,
    *,
    signer: EnableBankingSigner,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[dict[str, Any]]:
    """Banks (ASPSPs) of ``country`` for the bank picker (the API layer caches the answer)."""
    chosen = check_country(country)
    client = create_client(settings, signer=signer, clock=clock, transport=transport)
    try:
        found = await client.aspsps(chosen)
    finally:
        await client.aclose()
    banks = []
    for aspsp in found:
        if "personal" not in (aspsp.get("psu_types") or ["personal"]):
            continue  # business-only banks cannot link a person's own accounts
        seconds = aspsp.get("maximum_consent_validity")
        banks.append(
            {
                "id": institution_id(aspsp),
                "name": str(aspsp.get("name") or ""),
                "bic": aspsp.get("bic") or None,
                "countries": [str(aspsp.get("country") or chosen).upper()],
                "logo": aspsp.get("logo") or None,
                "max_access_valid_for_days": int(seconds) // 86400 if seconds else None,
            }
        )
    return banks


async def revoke(
    session: ProviderSession,
    settings: EnableBankingSettings,
    *,
    signer: EnableBankingSigner,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """End the consent at the bank (``DELETE /sessions/{id}``), e.g. when the connection is deleted."""
    session_id = str(session.credentials.get("session_id") or "")
    if not session_id:
        return
    client = create_client(settings, signer=signer, clock=clock, transport=transport)
    try:
        await client.delete_session(session_id)
    finally:
        await client.aclose()
