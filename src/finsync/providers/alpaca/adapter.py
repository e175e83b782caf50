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

from finsync.config import Settings
from finsync.domain.errors import AuthError, InvalidInput
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch
from finsync.providers.alpaca import mappers
from finsync.providers.alpaca.client import LIMITS, PROVIDER, AlpacaClient, alpaca_error_type
from finsync.providers.http import Clock, ProviderHttp
from finsync.providers.incremental import KnownItems, fingerprint

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

    async def aclose(self) -> None:
        await self.client.http.aclose()


def create_adapter(
    session: ProviderSession,
    settings: Settings,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AlpacaAdapter:
    """Credentials ``key_id`` + ``secret_key``; ``session.environment`` is ``paper`` (default) or ``live``."""
    environment = session.environment or "paper"
    if environment not in ENVIRONMENTS:
        raise InvalidInput(f"Alpaca environment must be one of {', '.join(ENVIRONMENTS)}")
    key_id = str(session.credentials.get("key_id") or "").strip()
    secret = str(session.credentials.get("secret_key") or "").strip()
    if not key_id or not secret:
        raise AuthError("Alpaca credentials need both a key id and a secret key")
    base_url = settings.alpaca_paper_url if environment == "paper" else settings.alpaca_live_url
    http = ProviderHttp(
        provider=PROVIDER,
        base_url=base_url,
        headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret},
        limits=LIMITS,
        clock=clock,
        transport=transport,
        timeout=settings.provider_timeout_seconds,
        secrets=(key_id, secret),
        account=key_id,
        error_type=alpaca_error_type,
    )
    return AlpacaAdapter(AlpacaClient(http), session, environment=environment)
