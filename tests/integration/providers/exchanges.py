"""What every exchange test builds: the adapter of a ccxt exchange module pointed at its fake."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

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
