"""What every exchange test builds: the adapter of a ccxt exchange module pointed at its fake."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from finsync.domain.entities import Transaction
from finsync.domain.ports import ProviderSession
from finsync.providers.ccxt.adapter import ExchangeAdapter
from tests.fakes.clock import VirtualClock


def build_exchange(
    exchange: ModuleType, api_urls: Mapping[str, Any], session: ProviderSession, clock: VirtualClock
) -> ExchangeAdapter:
    """``exchange`` is a module of ``finsync.providers.ccxt`` (``EXCHANGE``, ``METADATA``)."""
    settings = exchange.EXCHANGE.settings(_env_file=None, api_urls=api_urls, timeout_seconds=2.0)
    made = exchange.METADATA.adapter_factory(session, settings, clock=clock)
    assert isinstance(made, ExchangeAdapter)
    return made


def exchange_session(credentials: dict[str, str], state: dict[str, Any] | None = None) -> ProviderSession:
    """A connection's session holding ``credentials`` (and its saved ``state``)."""
    return ProviderSession(connection_id=uuid.uuid4(), credentials=credentials, state=state or {})


async def synced(adapter: ExchangeAdapter) -> list[Transaction]:
    """The transactions one sync of the exchange's single account reads."""
    [account] = await adapter.fetch_accounts()
    return list((await adapter.fetch_transactions(account)).transactions)
