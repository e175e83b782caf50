"""Alpaca sync adapter: one account per key pair; activities fetched incrementally.

``session.state["activities_newest"]`` is the newest activity time seen; the next
sync asks for activities ``after`` it minus an overlap (non-trade activities carry
only a date and may post late). Overlapping items come back with the same ids, so
the sync service's upsert leaves them unchanged. Paging does not rely on the server
honouring ``after``: ``session.state["activities_known"]`` remembers the ids and
fingerprints of the newest activities, and paging stops at a page holding nothing new.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic_settings import SettingsConfigDict

from finsync.domain.errors import BrokerOrderNotFound, ProviderAuthError
from finsync.domain.ports import ProviderSession, SendSlot
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch
from finsync.domain.trading import BrokerOrder, OrderRequest
from finsync.providers import common
from finsync.providers.alpaca import mappers, orders
from finsync.providers.alpaca.client import LIMITS, PROVIDER, AlpacaClient
from finsync.providers.http import Clock
from finsync.providers.incremental import KnownItems, fingerprint
from finsync.providers.spec import ProviderSettings

ENVIRONMENTS = ("paper", "live")
OVERLAP = timedelta(days=2)  # re-read window: dated activities may post late
STATE_KEY = "activities_newest"
KNOWN_KEY = "activities_known"
KNOWN_CAP = 200  # two pages: the newest page of a server that ignores ``after`` is always known


def _keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(item.get("id")), fingerprint(item)) for item in items]


class AlpacaAdapter:
    def __init__(self, client: AlpacaClient, session: ProviderSession, *, environment: str) -> None:
        self.client, self.session, self.environment = client, session, environment

    async def validate(self) -> list[str]:
        """One cheap authenticated call: ``GET /v2/account``, without retries (a person waits);
        the key's account."""
        account = mappers.map_account(await self.client.account(retries=0), environment=self.environment)
        return [account.provider_account_id]

    async def fetch_accounts(self) -> list[ProviderAccount]:
        return [mappers.map_account(await self.client.account(), environment=self.environment)]

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        return [mappers.map_position(p, account.currency) for p in await self.client.positions()]

    def _since(self) -> datetime | None:
        try:
            return datetime.fromisoformat(str(self.session.state[STATE_KEY]))
        except (KeyError, ValueError):
            return None

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        newest = self._since()
        after = None if newest is None else (newest - OVERLAP).isoformat()
        known = KnownItems.load(self.session.state.get(KNOWN_KEY))
        items = await self.client.activities(after, stop=lambda page: known.nothing_new(_keys(page)))
        batch = TransactionBatch(transactions=[mappers.map_activity(i, account.currency) for i in items])
        for item in items:
            when = mappers.parse_time(item.get("transaction_time") or item.get("date"))
            newest = when if newest is None else max(newest, when)
        if newest is not None:
            self.session.state[STATE_KEY] = newest.isoformat()
        self.session.state[KNOWN_KEY] = known.after(_keys(items), KNOWN_CAP)
        return batch

    def order_problem(self, order: OrderRequest) -> str | None:
        return orders.problem(order)

    async def reserve_send(self, order: OrderRequest) -> SendSlot | None:
        return await self.client.http.reserve("orders")

    async def place_order(
        self, order: OrderRequest, client_order_id: str, slot: SendSlot | None = None
    ) -> BrokerOrder:
        return orders.to_order(await self.client.post_order(orders.body(order, client_order_id), slot))

    async def find_orders(
        self, order: OrderRequest, client_order_id: str, sent_at: datetime
    ) -> list[BrokerOrder]:
        """Alpaca keeps our ``client_order_id``: the order is there, or it was never placed."""
        try:
            return [orders.to_order(await self.client.order_by_client_id(client_order_id))]
        except BrokerOrderNotFound:
            return []

    async def get_order(self, broker_order_id: str) -> BrokerOrder:
        return orders.to_order(await self.client.order(broker_order_id))

    async def cancel_order(self, broker_order_id: str) -> None:
        await self.client.cancel(broker_order_id)

    async def open_orders(self) -> list[BrokerOrder]:
        return [orders.to_order(o) for o in await self.client.open_orders()]

    async def aclose(self) -> None:
        await self.client.http.aclose()


class AlpacaSettings(ProviderSettings):
    """``FINSYNC_ALPACA_PAPER_URL`` / ``_LIVE_URL``: real hosts by default (or a proxy)."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_ALPACA_")

    paper_url: str = "https://paper-api.alpaca.markets"
    live_url: str = "https://api.alpaca.markets"


def create_adapter(
    session: ProviderSession,
    settings: AlpacaSettings,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AlpacaAdapter:
    """Credentials ``key_id`` + ``secret_key``; ``session.environment`` is ``paper`` (default) or ``live``."""
    environment = common.environment(session, ENVIRONMENTS, "Alpaca")
    key_id, secret = common.credential(session, "key_id"), common.credential(session, "secret_key")
    if not key_id or not secret:
        raise ProviderAuthError("Alpaca credentials need both a key id and a secret key")
    http = common.key_http(
        provider=PROVIDER,
        base_url=settings.paper_url if environment == "paper" else settings.live_url,
        key=key_id,
        secrets=(secret,),
        headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret},
        limits=LIMITS,
        error_type=orders.error_type,
        timeout=settings.timeout_seconds,
        clock=clock,
        transport=transport,
    )
    return AlpacaAdapter(AlpacaClient(http), session, environment=environment)
