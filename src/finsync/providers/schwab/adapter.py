"""Schwab sync adapter: accounts, positions and transactions for one connection.

``session.state`` (persisted by the sync service on success)::

    {"hashes": {accountNumber: hashValue},
     "transactions_until": {accountNumber: ISO instant of the last fetched window end},
     "oldest_pending": {accountNumber: ISO date of its oldest PENDING activity}}

A pending activity (an ACH deposit on hold) may settle after the overlap has moved past
it: the next window reaches back to the oldest one still pending, so it is read again and
upserted as settled instead of staying pending for ever.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from finsync.domain.enums import TransactionStatus
from finsync.domain.errors import BadData, ProviderAuthError, ProviderNotAvailable
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction, TransactionBatch
from finsync.providers.http import Clock, SystemClock
from finsync.providers.schwab.client import SchwabClient
from finsync.providers.schwab.flow import SchwabFlow
from finsync.providers.schwab.mappers import map_account, map_positions, map_transaction
from finsync.providers.spec import ProviderSettings

WINDOW = timedelta(days=60)  # Schwab has no pagination; keep each date window ≤ 60 days
OVERLAP = timedelta(days=3)  # late-posting activity is picked up again and upserted by id


class SchwabAdapter:
    def __init__(
        self,
        session: ProviderSession,
        *,
        flow: SchwabFlow,
        api_url: str,
        lookback_days: int = 365,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._flow = flow
        self._clock: Clock = clock or SystemClock()
        self._lookback = timedelta(days=lookback_days)
        self._client = SchwabClient(
            base_url=api_url, token=self._access_token, clock=clock, transport=transport, timeout=timeout
        )
        self._payloads: dict[str, dict[str, Any]] = {}  # accountNumber → last accounts payload
        # Concurrent calls must not both spend the same refresh token (Schwab may rotate it).
        self._refresh_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _access_token(self, rejected: str | None) -> str:
        """Refresh near expiry, or when the API rejected the current token; persist rotations."""
        async with self._refresh_lock:
            creds = self._session.credentials
            force = rejected is not None and creds.get("access_token") == rejected
            fresh = await self._flow.refresh(creds, force=force)
            if fresh is not creds:
                creds.clear()
                creds.update(fresh)
        token = self._session.credentials.get("access_token")
        if not token:
            raise ProviderAuthError("Schwab connection has no access token; reconnect Schwab")
        return str(token)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def _load_hashes(self) -> dict[str, str]:
        numbers = await self._client.account_numbers()
        hashes = {str(n["accountNumber"]): str(n["hashValue"]) for n in numbers if n.get("hashValue")}
        self._session.state["hashes"] = hashes
        return hashes

    async def _hash(self, account: ProviderAccount) -> str:
        """Per-account paths take the hashValue; a number we have not seen reloads the mapping."""
        hashes: dict[str, str] = self._session.state.get("hashes") or {}
        if account.provider_account_id not in hashes:
            hashes = await self._load_hashes()
        try:
            return hashes[account.provider_account_id]
        except KeyError:
            raise BadData(
                f"Schwab sent no hashValue for account …{account.provider_account_id[-4:]}"
            ) from None

    async def validate(self) -> list[str]:
        """One cheap call (``accountNumbers``): the accounts this login reaches."""
        return [
            str(n["accountNumber"]) for n in await self._client.account_numbers() if n.get("accountNumber")
        ]

    async def fetch_accounts(self) -> list[ProviderAccount]:
        await self._load_hashes()
        accounts: list[ProviderAccount] = []
        for payload in await self._client.accounts():
            account = map_account(payload)
            self._payloads[account.provider_account_id] = payload
            accounts.append(account)
        return accounts

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        payload = self._payloads.get(account.provider_account_id)
        if payload is None:  # not read by fetch_accounts in this run
            payload = await self._client.account(await self._hash(account))
        return map_positions(payload)

    def windows(self, account_number: str) -> list[tuple[datetime, datetime]]:
        """Date windows of ≤ 60 days from the last sync (minus overlap) or the lookback, up to now."""
        now = self._now()
        cursors: dict[str, str] = self._session.state.get("transactions_until") or {}
        start = now - self._lookback
        if account_number in cursors:
            resume = datetime.fromisoformat(cursors[account_number]) - OVERLAP
            pending: dict[str, str] = self._session.state.get("oldest_pending") or {}
            if account_number in pending:
                oldest = datetime.combine(date.fromisoformat(pending[account_number]), time.min, UTC)
                resume = min(resume, oldest - timedelta(days=1))  # dated in UTC: a day's margin
            start = max(start, resume)
        spans: list[tuple[datetime, datetime]] = []
        while start < now:
            end = min(start + WINDOW, now)
            spans.append((start, end))
            start = end
        return spans

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        account_hash = await self._hash(account)
        spans = self.windows(account.provider_account_id)
        by_id: dict[str, ProviderTransaction] = {}
        for start, end in spans:
            for item in await self._client.transactions(account_hash, start, end):
                tx = map_transaction(item)
                by_id[tx.provider_transaction_id] = tx  # window edges can repeat an activity
        if spans:
            cursors = self._session.state.setdefault("transactions_until", {})
            cursors[account.provider_account_id] = spans[-1][1].isoformat()
            held = [t.transaction_date for t in by_id.values() if t.status is TransactionStatus.PENDING]
            oldest: dict[str, str] = self._session.state.setdefault("oldest_pending", {})
            if held:
                oldest[account.provider_account_id] = min(held).isoformat()
            else:
                oldest.pop(account.provider_account_id, None)
        return TransactionBatch(transactions=list(by_id.values()))


class SchwabSettings(ProviderSettings):
    """``FINSYNC_SCHWAB_*``: the deployment's Schwab app (key and secret) and hosts."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_SCHWAB_")
    required = ("app_key", "app_secret")

    auth_url: str = "https://api.schwabapi.com/v1/oauth"
    api_url: str = "https://api.schwabapi.com/trader/v1"
    app_key: SecretStr | None = None
    app_secret: SecretStr | None = None
    lookback_days: int = 365


def create_adapter(
    session: ProviderSession,
    settings: SchwabSettings,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SchwabAdapter:
    return SchwabAdapter(
        session,
        flow=create_flow(settings, clock=clock, transport=transport),
        api_url=settings.api_url,
        lookback_days=settings.lookback_days,
        clock=clock,
        transport=transport,
        timeout=settings.timeout_seconds,
    )


def create_flow(
    settings: SchwabSettings,
    options: dict[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SchwabFlow:
    """``options`` is accepted for symmetry with link providers; Schwab needs none."""
    if settings.app_key is None or settings.app_secret is None:
        raise ProviderNotAvailable("Schwab is not configured (FINSYNC_SCHWAB_APP_KEY / _APP_SECRET)")
    return SchwabFlow(
        app_key=settings.app_key.get_secret_value(),
        app_secret=settings.app_secret.get_secret_value(),
        auth_url=settings.auth_url,
        clock=clock,
        transport=transport,
        timeout=settings.timeout_seconds,
    )
