"""Trading 212 sync adapter: one account per key, history read incrementally.

History endpoints are limited to 6 pages a minute each, so a re-sync must not walk the
whole history again; ``history.py`` decides how far to read and what to remember in
``session.state``. The sync service persists the state only when the sync succeeds, so
a failed sync simply reads again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic_settings import SettingsConfigDict

from finsync.domain.errors import BrokerOrderNotFound, ProviderAuthError
from finsync.domain.ports import ProviderSession, SendSlot
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction, TransactionBatch
from finsync.domain.trading import BrokerOrder, OrderRequest
from finsync.providers import common
from finsync.providers.http import Clock
from finsync.providers.spec import ProviderSettings
from finsync.providers.trading212 import mappers, orders
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

    def order_problem(self, order: OrderRequest) -> str | None:
        return orders.problem(order, self.environment)

    async def reserve_send(self, order: OrderRequest) -> SendSlot | None:
        return await self.client.http.reserve(orders.ENDPOINT[order.type])

    async def place_order(
        self, order: OrderRequest, client_order_id: str, slot: SendSlot | None = None
    ) -> BrokerOrder:
        """Trading 212 has no client order id: ``client_order_id`` stays finsync's."""
        endpoint = orders.ENDPOINT[order.type]
        return orders.to_order(await self.client.post_order(endpoint, orders.body(order), slot))

    async def find_orders(
        self, order: OrderRequest, client_order_id: str, sent_at: datetime
    ) -> list[BrokerOrder]:
        """Open orders, then history newest first until it is older than the send."""
        opened = [
            orders.to_order(o) for o in await self.client.open_orders() if orders.matches(o, order, sent_at)
        ]
        found: list[BrokerOrder] = []
        path: str | None = None
        for _ in range(orders.HISTORY_PAGES):
            items, path = await self.client.page("history_orders", path)
            older = False
            for item in items:
                entry = item.get("order") or {}
                if orders.matches(entry, order, sent_at):
                    found.append(orders.to_order(entry, item.get("fill")))
                elif (
                    entry.get("createdAt") and mappers.parse_time(entry["createdAt"]) < sent_at - orders.SKEW
                ):
                    older = True
            if path is None or older:
                break
        unique = {o.broker_order_id: o for o in reversed(found)}  # the newest history entry
        for o in opened:  # history (with fills) wins over the open order
            unique.setdefault(o.broker_order_id, o)
        return sorted(unique.values(), key=lambda o: (o.created_at is None, o.created_at, o.broker_order_id))

    async def get_order(self, broker_order_id: str) -> BrokerOrder:
        """Open orders answer from ``orders/{id}``; done ones only from history (with fills)."""
        try:
            return orders.to_order(await self.client.order(broker_order_id))
        except BrokerOrderNotFound:
            pass
        path: str | None = None
        for _ in range(orders.HISTORY_PAGES):
            items, path = await self.client.page("history_orders", path)
            for item in items:
                if str((item.get("order") or {}).get("id")) == broker_order_id:
                    return orders.to_order(item["order"], item.get("fill"))
            if path is None:
                break
        raise BrokerOrderNotFound(f"Trading 212 does not know order {broker_order_id}")

    async def cancel_order(self, broker_order_id: str) -> None:
        await self.client.cancel(broker_order_id)

    async def open_orders(self) -> list[BrokerOrder]:
        return [orders.to_order(o) for o in await self.client.open_orders()]

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
        error_type=orders.error_type,
        timeout=settings.timeout_seconds,
        clock=clock,
        transport=transport,
    )
    return Trading212Adapter(Trading212Client(http), session, environment=environment)
