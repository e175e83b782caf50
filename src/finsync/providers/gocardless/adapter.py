"""GoCardless sync adapter: balances and transactions of the accounts one bank link shared.

Every call to a bank endpoint is budgeted (see ``budget.py``). Accounts are keyed by
what survives a re-consent (IBAN → the bank's ``resourceId`` → GoCardless's account
id, see ``mappers.account_identity``); each sync maps that stable key to the current
consent's account id for its calls. ``session.state``::

    {"budget": {account_id: ...},
     "accounts": {account_id: {"details": {...}, "details_at": epoch,
                               "transactions_until": "YYYY-MM-DD", "oldest_pending": "YYYY-MM-DD"}},
     "account_keys": {identity: provider_account_id}}

``account_keys`` keeps an account under the key it was first stored with: accounts
without an IBAN synced before resourceId keys existed stay keyed by their old
GoCardless id. Entries of account ids no longer in the consent are dropped.
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
from finsync.providers.gocardless.client import BankLimitReached, GoCardlessClient
from finsync.providers.gocardless.flow import GoCardlessFlow, list_institutions
from finsync.providers.gocardless.mappers import (
    account_identities,
    api_account_id,
    map_account,
    map_transactions,
)
from finsync.providers.gocardless.tokens import GoCardlessSettings, GoCardlessTokens
from finsync.providers.http import AccessRevoked, Clock, SystemClock

DETAILS_MAX_AGE = 30 * 86400.0  # account names/IBANs rarely change; spend the details call rarely


class GoCardlessAdapter:
    def __init__(
        self, session: ProviderSession, *, client: GoCardlessClient, clock: Clock | None = None
    ) -> None:
        self._session = session
        self._client = client
        self._clock: Clock = clock or SystemClock()
        self._budget = AccountBudget(session.state, self._clock)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _account_ids(self) -> list[str]:
        expires = self._session.credentials.get("access_expires_at")
        if expires is not None and float(expires) <= self._clock.now():
            raise ProviderAuthError("The bank consent expired; reconnect this bank through GoCardless")
        return [str(a) for a in self._session.credentials.get("accounts") or []]

    def _memo(self, account_id: str) -> dict[str, Any]:
        memo: dict[str, Any] = self._session.state.setdefault("accounts", {}).setdefault(account_id, {})
        return memo

    async def _fetch(
        self, account_id: str, kind: str, date_from: date | None = None, date_to: date | None = None
    ) -> dict[str, Any]:
        try:
            body, headers = await self._client.account_data(account_id, kind, date_from, date_to)
        except BankLimitReached as exc:
            self._budget.block(account_id, kind, exc.retry_after)
            raise
        except AccessRevoked as exc:
            raise ProviderAuthError(
                "The bank's consent for this account ended (expired or withdrawn, or the link is "
                f"gone); reconnect this bank through GoCardless ({exc.detail})"
            ) from None
        self._budget.record(account_id, kind, headers)
        return body

    def _sync_budget(self) -> list[str]:
        """The linked account ids, once the budget allows a whole sync (RateLimited otherwise).

        A sync reads balances and transactions of every account, and the details of an account
        it has not seen (they hold its stable key): refuse up front, never half-way.
        """
        ids = self._account_ids()
        needs = [(a, kind) for a in ids for kind in ("balances", "transactions")]
        needs += [(a, "details") for a in ids if "details" not in self._memo(a)]
        self._budget.require(needs)
        return ids

    def _forget_other_consents(self, ids: list[str]) -> None:
        """Account ids of earlier consents will not be called again: keep the state bounded."""
        for section in ("accounts", "budget"):
            entries: dict[str, Any] = self._session.state.get(section) or {}
            for gone in set(entries) - set(ids):
                del entries[gone]

    def _stable_key(self, account_id: str, identity: str | None) -> str:
        if identity is None:
            return account_id  # the bank names the account by nothing else
        keys: dict[str, str] = self._session.state.setdefault("account_keys", {})
        if identity not in keys:
            # Stored before under GoCardless's id (only IBAN accounts had a stable key): keep it.
            legacy = not identity.startswith("iban:") and "transactions_until" in self._memo(account_id)
            keys[identity] = account_id if legacy else identity
        return keys[identity]

    async def preflight(self) -> None:
        """Raise RateLimited now if a sync would exceed the bank's daily budget (no network call)."""
        self._sync_budget()

    async def fetch_accounts(self) -> list[ProviderAccount]:
        ids = self._sync_budget()
        self._forget_other_consents(ids)
        balances: dict[str, list[dict[str, Any]]] = {}
        for account_id in ids:
            memo = self._memo(account_id)
            stale = self._clock.now() - float(memo.get("details_at") or 0) > DETAILS_MAX_AGE
            if (stale or "details" not in memo) and self._budget.can_call(account_id, "details"):
                body = await self._fetch(account_id, "details")
                memo["details"] = body.get("account") or {}
                memo["details_at"] = self._clock.now()
            balances[account_id] = (await self._fetch(account_id, "balances")).get("balances") or []
        identities = account_identities({a: self._memo(a).get("details") for a in ids})
        institution = self._session.credentials.get("institution_id")
        return [
            map_account(
                a,
                self._memo(a).get("details"),
                balances[a],
                institution,
                key=self._stable_key(a, identities[a]),
            )
            for a in ids
        ]

    def window(self, account_id: str) -> tuple[date, date]:
        """The agreement's full history on a first sync (``max_historical_days``)."""
        today = datetime.fromtimestamp(self._clock.now(), UTC).date()
        history = int(self._session.credentials.get("max_historical_days") or 90)
        return banklink.window(self._memo(account_id), today, history)

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        account_id = api_account_id(account)
        self._budget.require([(account_id, "transactions")])
        date_from, date_to = self.window(account_id)
        body = await self._fetch(account_id, "transactions", date_from, date_to)
        transactions = map_transactions(body)
        banklink.remember(self._memo(account_id), date_to, transactions)
        return TransactionBatch(transactions=transactions, replace_pending_since=date_from)


def create_client(
    settings: GoCardlessSettings,
    *,
    tokens: GoCardlessTokens,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> GoCardlessClient:
    """``tokens`` is the process-wide token manager (``METADATA.resources``); never one per call."""
    return GoCardlessClient(
        base_url=settings.url,
        tokens=tokens,
        clock=clock,
        transport=transport,
        timeout=settings.timeout_seconds,
    )


def create_adapter(
    session: ProviderSession,
    settings: GoCardlessSettings,
    *,
    tokens: GoCardlessTokens,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> GoCardlessAdapter:
    client = create_client(settings, tokens=tokens, clock=clock, transport=transport)
    return GoCardlessAdapter(session, client=client, clock=clock)


def create_flow(
    settings: GoCardlessSettings,
    options: dict[str, Any] | None = None,
    *,
    tokens: GoCardlessTokens,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> GoCardlessFlow:
    """``options``: ``institution_id`` (required to start), ``access_valid_for_days``, ``user_language``."""
    opts = options or {}
    try:
        days = int(opts.get("access_valid_for_days") or 90)
    except (TypeError, ValueError):
        raise InvalidInput("access_valid_for_days must be a whole number of days") from None
    return GoCardlessFlow(
        client=partial(create_client, settings, tokens=tokens, clock=clock, transport=transport),
        institution_id=opts.get("institution_id"),
        access_valid_for_days=days,
        user_language=opts.get("user_language"),
    )


async def institutions(
    settings: GoCardlessSettings,
    country: str,
    *,
    tokens: GoCardlessTokens,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[dict[str, Any]]:
    """Banks of ``country`` for the bank picker (the API layer caches the answer)."""
    client = create_client(settings, tokens=tokens, clock=clock, transport=transport)
    try:
        return await list_institutions(client, country)
    finally:
        await client.aclose()
