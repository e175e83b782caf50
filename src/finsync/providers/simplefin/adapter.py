"""SimpleFIN Bridge adapter: claim the setup token (validation), then one ``/accounts`` call per
90-day range per sync, its accounts, balances, holdings and transactions read from that.

The bridge sends every account with each answer, so ``fetch_accounts`` makes the calls and
the per-account methods read what it kept: one request per sync (the bridge asks for at most
24 a day). ``session.state`` holds ``synced_to`` (epoch seconds of the last successful read)
and, per account, the date of its oldest pending item, so the next window covers it and a
pending item that posts under a new id replaces its pending row instead of joining it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Unpack

import httpx
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finsync.domain.enums import TransactionStatus
from finsync.domain.errors import BadData, ProviderAuthError
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch
from finsync.providers import common
from finsync.providers.http import Clock, ProviderHttp, SystemClock
from finsync.providers.simplefin import mappers
from finsync.providers.simplefin.client import (
    LIMITS,
    Access,
    SimpleFinClient,
    access_error,
    check_url,
    claim,
    claim_url,
)
from finsync.providers.spec import ProviderSettings

DAY = 86_400
MAX_RANGE_DAYS = 90  # the bridge caps one request at 90 days (end exclusive)
OVERLAP_DAYS = 14  # re-read: banks post late, and the bridge refreshes about once a day
NAME = "SimpleFIN Bridge"


class SimpleFinSettings(ProviderSettings):
    """``FINSYNC_SIMPLEFIN_ALLOWED_HOSTS``: hosts a setup token may name (``*``: any), since
    finsync POSTs to the URL a person pastes; ``FINSYNC_SIMPLEFIN_HISTORY_DAYS``: how far back
    the first sync reads (in 90-day requests; the bridge usually holds about 90 days)."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_SIMPLEFIN_")

    allowed_hosts: str = "beta-bridge.simplefin.org,bridge.simplefin.org"
    history_days: int = Field(default=90, ge=1, le=3650)

    def hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())


class SimpleFinAdapter:
    def __init__(
        self, session: ProviderSession, settings: SimpleFinSettings, host: common.HostOptions
    ) -> None:
        self.session, self.settings, self.host = session, settings, host
        self.clock: Clock = host.get("clock") or SystemClock()
        self._client: SimpleFinClient | None = None
        self._claim_http: ProviderHttp | None = None
        self._accounts: dict[str, dict[str, Any]] = {}
        self._transactions: dict[str, dict[str, dict[str, Any]]] = {}
        self._since: date | None = None

    def client(self) -> SimpleFinClient:
        if self._client is None:
            url = common.credential(self.session, "access_url", required_by=NAME)
            access = Access.parse(url)
            check_url(access.url, self.settings.hosts(), "access URL")
            http = common.key_http(
                provider="simplefin",
                base_url=access.base_url + "/",
                key=url,
                secrets=(access.username, access.password),
                auth=httpx.BasicAuth(access.username, access.password),
                limits=LIMITS,
                error_type=access_error,
                timeout=self.settings.timeout_seconds,
                **self.host,
            )
            self._client = SimpleFinClient(http)
        return self._client

    async def validate(self) -> list[str]:
        """Claim the setup token and put the access URL in its place in ``session.credentials``
        (what the connection stores). Nothing else is called first or after: a claimed token
        cannot be claimed again, so the URL must reach the database before anything can fail.
        The login's accounts are unknown until the first sync (which catches a duplicate)."""
        token = common.credential(self.session, "setup_token", required_by=NAME)
        target = claim_url(token)
        check_url(target, self.settings.hosts(), "setup token's claim URL")
        path = target.raw_path.decode("ascii")
        self._claim_http = common.key_http(
            provider="simplefin",
            base_url=str(target.copy_with(raw_path=b"/")),
            key=token,
            secrets=(path, str(target)),
            timeout=self.settings.timeout_seconds,
            **self.host,
        )
        answer = await claim(self._claim_http, target)
        try:
            access = Access.parse(answer)
        except ProviderAuthError:
            raise BadData("SimpleFIN's claim answered something that is not an access URL") from None
        check_url(access.url, self.settings.hosts(), "access URL")
        self.session.credentials.clear()
        self.session.credentials["access_url"] = answer
        return []

    def _window(self, now: float) -> tuple[int, int]:
        state = self.session.state
        synced = state.get("synced_to")
        end = int(now) + DAY  # exclusive: tomorrow covers every time zone
        start = int(synced) - OVERLAP_DAYS * DAY if synced else end - self.settings.history_days * DAY
        for day in (state.get("pending_since") or {}).values():
            start = min(start, int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()))
        return start, end

    async def fetch_accounts(self) -> list[ProviderAccount]:
        """Read the window newest range first, 90 days a request, and stop early at a range with
        no transactions (the bridge holds nothing older)."""
        now = self.clock.now()
        start, end = self._window(now)
        # The first whole day read: stored pending rows from then on are all in this answer.
        self._since = datetime.fromtimestamp(start + (-start % DAY), UTC).date()
        high = end
        while high > start:
            low = max(start, high - MAX_RANGE_DAYS * DAY)
            body = await self.client().accounts(low, high)
            for note in mappers.messages(body):
                if note not in self.session.warnings:
                    self.session.warnings.append(note)
            items = [a for a in body.get("accounts") or [] if isinstance(a, dict)]
            for item in items:
                key = str(item.get("id") or "")
                self._accounts.setdefault(key, {**item, "_body": body})
                known = self._transactions.setdefault(key, {})
                for txn in item.get("transactions") or []:
                    if isinstance(txn, dict) and txn.get("id"):
                        known.setdefault(str(txn["id"]), txn)
            if not any(item.get("transactions") for item in items):
                break
            high = low
        accounts = [mappers.map_account(item, item["_body"]) for item in self._accounts.values()]
        for account in accounts:
            account.raw.pop("_body", None)
        self.session.state["synced_to"] = int(now)
        return accounts

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        today = datetime.fromtimestamp(self.clock.now(), UTC).date()
        key = account.provider_account_id
        items = [
            mappers.map_transaction(t, account.currency, today)
            for t in self._transactions.get(key, {}).values()
        ]
        pending = [t.transaction_date for t in items if t.status is TransactionStatus.PENDING]
        oldest: dict[str, str] = self.session.state.setdefault("pending_since", {})
        if pending:
            oldest[key] = min(pending).isoformat()
        else:
            oldest.pop(key, None)
        since = min([self._since or today, *pending])
        # Stored pending rows from ``since`` that the bridge no longer lists have posted (under a
        # new id) or vanished: the batch replaces them, so one purchase stays one row.
        return TransactionBatch(transactions=items, replace_pending_since=since)

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        item = self._accounts.get(account.provider_account_id) or {}
        return [
            mappers.map_holding(h, account.currency)
            for h in item.get("holdings") or []
            if isinstance(h, dict)
        ]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.http.aclose()
        if self._claim_http is not None:
            await self._claim_http.aclose()


def create_adapter(
    session: ProviderSession, settings: SimpleFinSettings, **host: Unpack[common.HostOptions]
) -> SimpleFinAdapter:
    """Builds nothing that talks yet: the credentials are a setup token (to validate) or an
    access URL (to sync), and each call builds what it needs."""
    return SimpleFinAdapter(session, settings, host)
