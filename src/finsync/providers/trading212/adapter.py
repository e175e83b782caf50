"""Trading 212 sync adapter: one account per key, incremental history via watermarks.

History endpoints are limited to 6 pages a minute each, so a re-sync must not walk
the whole history again. ``session.state[endpoint]`` keeps the newest item time
seen and the ids of items within ``OVERLAP`` of it; paging stops at the first page
that reaches older items or only holds known ones. The sync service persists the
state only when the sync succeeds, so a failed sync simply re-reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from finsync.config import Settings
from finsync.domain.errors import AuthError, InvalidInput
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction, TransactionBatch
from finsync.providers.http import Clock, ProviderHttp
from finsync.providers.trading212 import mappers
from finsync.providers.trading212.client import HISTORY, LIMITS, PROVIDER, StopRule, Trading212Client

ENVIRONMENTS = ("live", "demo")
OVERLAP = timedelta(days=2)  # re-read window behind the newest item seen
RECENT_CAP = 500  # ids remembered per endpoint; a page holds at most 50

Mapper = Callable[[dict[str, Any], str], ProviderTransaction | None]
_MAPPERS: dict[str, Mapper] = {
    "history_orders": mappers.map_order,
    "history_dividends": mappers.map_dividend,
    "history_transactions": mappers.map_cash,
}


def item_key(endpoint: str, item: dict[str, Any]) -> tuple[str, datetime]:
    """Stable id and sort time of a history item (orders sort by creation, newest first)."""
    if endpoint == "history_orders":
        order, fill = item.get("order") or {}, item.get("fill") or {}
        return str(order.get("id")), mappers.parse_time(order.get("createdAt") or fill.get("filledAt"))
    stamp = item.get("paidOn") if endpoint == "history_dividends" else item.get("dateTime")
    return str(item.get("reference")), mappers.parse_time(stamp)


class Watermark:
    def __init__(self, newest: datetime, recent: dict[str, str]) -> None:
        self.newest, self.recent = newest, recent

    @classmethod
    def load(cls, value: Any) -> Watermark | None:
        """State from an earlier successful sync; anything unreadable means 'start over'."""
        try:
            recent = {str(k): str(v) for k, v in value["recent"].items()}
            return cls(datetime.fromisoformat(value["newest"]), recent)
        except (TypeError, KeyError, ValueError, AttributeError):
            return None

    def stop_rule(self, endpoint: str) -> StopRule:
        boundary = self.newest - OVERLAP

        def stop(page: list[dict[str, Any]]) -> bool:
            all_known = True
            for item in page:
                key, when = item_key(endpoint, item)
                if when < boundary:
                    return True  # later pages are older still: all synced before
                all_known = all_known and key in self.recent
            return all_known

        return stop

    @staticmethod
    def after(
        previous: Watermark | None, endpoint: str, items: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        stamps = {k: t for k, t in (item_key(endpoint, i) for i in items)}
        if previous is not None:
            for key, text in previous.recent.items():
                stamps.setdefault(key, datetime.fromisoformat(text))
        if not stamps:
            return None
        newest = max(stamps.values())
        if previous is not None:
            newest = max(newest, previous.newest)
        keep = sorted(((t, k) for k, t in stamps.items() if t >= newest - OVERLAP), reverse=True)
        return {"newest": newest.isoformat(), "recent": {k: t.isoformat() for t, k in keep[:RECENT_CAP]}}


class Trading212Adapter:
    def __init__(self, client: Trading212Client, session: ProviderSession, *, environment: str) -> None:
        self.client, self.session, self.environment = client, session, environment

    async def validate(self) -> None:
        """One cheap authenticated call (account summary, scope ``account``), without retries:
        a person waits for the answer, and a refused connection will not be back in seconds."""
        await self.client.account_summary(retries=0)

    async def fetch_accounts(self) -> list[ProviderAccount]:
        summary = await self.client.account_summary()
        return [mappers.map_account(summary, environment=self.environment)]

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        positions = await self.client.positions()
        return [mappers.map_position(p, account.currency) for p in positions if p.get("quantity") != 0]

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        marks = {ep: Watermark.load(self.session.state.get(ep)) for ep in HISTORY}
        # Each endpoint has its own 6/min budget: fetch them side by side.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {
                    ep: group.create_task(self.client.history(ep, m.stop_rule(ep) if m else None))
                    for ep, m in marks.items()
                }
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        batch = TransactionBatch()
        new_state: dict[str, Any] = {}
        for endpoint, task in tasks.items():
            items = task.result()
            for item in items:
                record = _MAPPERS[endpoint](item, account.currency)
                if record is not None:
                    batch.transactions.append(record)
            new_state[endpoint] = Watermark.after(marks[endpoint], endpoint, items)
        self.session.state.update({k: v for k, v in new_state.items() if v is not None})
        return batch

    async def aclose(self) -> None:
        await self.client.http.aclose()


def create_adapter(
    session: ProviderSession,
    settings: Settings,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Trading212Adapter:
    """Key + secret → HTTP Basic (current scheme); a bare key → legacy ``Authorization: <key>``."""
    environment = session.environment or "live"
    if environment not in ENVIRONMENTS:
        raise InvalidInput(f"Trading 212 environment must be one of {', '.join(ENVIRONMENTS)}")
    key = str(session.credentials.get("api_key") or "").strip()
    secret = str(session.credentials.get("api_secret") or "").strip()
    if not key:
        raise AuthError("Trading 212 credentials lack an API key")
    base_url = settings.trading212_demo_url if environment == "demo" else settings.trading212_live_url
    http = ProviderHttp(
        provider=PROVIDER,
        base_url=base_url,
        auth=httpx.BasicAuth(key, secret) if secret else None,
        headers=None if secret else {"Authorization": key},
        limits=LIMITS,
        clock=clock,
        transport=transport,
        timeout=settings.provider_timeout_seconds,
        secrets=(key, secret),
        account=key,
    )
    return Trading212Adapter(Trading212Client(http), session, environment=environment)
