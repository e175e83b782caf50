"""Trading 212 sync adapter: one account per key, history read incrementally.

History endpoints are limited to 6 pages a minute each, so a re-sync must not walk the
whole history again; ``history.py`` decides how far to read and what to remember in
``session.state``. The sync service persists the state only when the sync succeeds, so
a failed sync simply reads again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from pydantic_settings import SettingsConfigDict

from finsync.domain.errors import ProviderAuthError
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction, TransactionBatch
from finsync.providers import common
from finsync.providers.http import Clock
from finsync.providers.spec import ProviderSettings
from finsync.providers.trading212 import mappers
from finsync.providers.trading212.client import HISTORY, LIMITS, PROVIDER, Trading212Client
from finsync.providers.trading212.history import HistoryReader

ENVIRONMENTS = ("live", "demo")

Mapper = Callable[[dict[str, Any], str], ProviderTransaction | None]
_MAPPERS: dict[str, Mapper] = {
    "history_orders": mappers.map_order,
    "history_dividends": mappers.map_dividend,
    "history_transactions": mappers.map_cash,
}


class Trading212Adapter:
    def __init__(self, client: Trading212Client, session: ProviderSession, *, environment: str) -> None:
        self.client, self.session, self.environment = client, session, environment

    async def validate(self) -> list[str]:
        """One cheap authenticated call (account summary, scope ``account``), without retries:
        a person waits for the answer, and a refused connection will not be back in seconds.
        Returns the key's account."""
        summary = await self.client.account_summary(retries=0)
        return [mappers.map_account(summary, environment=self.environment).provider_account_id]

    async def fetch_accounts(self) -> list[ProviderAccount]:
        summary = await self.client.account_summary()
        return [mappers.map_account(summary, environment=self.environment)]

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        positions = await self.client.positions()
        return [mappers.map_position(p, account.currency) for p in positions if p.get("quantity") != 0]

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        now = self.client.http.clock.now()
        # Each endpoint has its own 6/min budget: read them side by side.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {
                    ep: group.create_task(
                        HistoryReader(self.client, ep).read(self.session.state.get(ep), now)
                    )
                    for ep in HISTORY
                }
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        batch = TransactionBatch()
        for endpoint, task in tasks.items():
            items, state = task.result()
            for item in items:
                record = _MAPPERS[endpoint](item, account.currency)
                if record is not None:
                    batch.transactions.append(record)
            self.session.state[endpoint] = state
        return batch

    async def aclose(self) -> None:
        await self.client.http.aclose()


class Trading212Settings(ProviderSettings):
    """``FINSYNC_TRADING212_LIVE_URL`` / ``_DEMO_URL``: real hosts by default (or a proxy)."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_TRADING212_")

    live_url: str = "https://live.trading212.com"
    demo_url: str = "https://demo.trading212.com"


def create_adapter(
    session: ProviderSession,
    settings: Trading212Settings,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Trading212Adapter:
    """Key + secret → HTTP Basic (current scheme); a bare key → legacy ``Authorization: <key>``."""
    environment = common.environment(session, ENVIRONMENTS, "Trading 212")
    key, secret = common.credential(session, "api_key"), common.credential(session, "api_secret")
    if not key:
        raise ProviderAuthError("Trading 212 credentials lack an API key")
    http = common.key_http(
        provider=PROVIDER,
        base_url=settings.demo_url if environment == "demo" else settings.live_url,
        key=key,
        secrets=(secret,),
        auth=httpx.BasicAuth(key, secret) if secret else None,
        headers=None if secret else {"Authorization": key},
        limits=LIMITS,
        timeout=settings.timeout_seconds,
        clock=clock,
        transport=transport,
    )
    return Trading212Adapter(Trading212Client(http), session, environment=environment)
