"""Gate.io (ccxt id ``gate``). Cannot report a key's permissions through ccxt."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, secret


class GateioSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_GATEIO_")


EXCHANGE = Exchange(
    slug="gateio",
    ccxt_id="gate",
    display_name="Gate.io",
    credentials=(api_key("Gate.io → API Management; read-only permissions."), secret()),
    settings=GateioSettings,
)
METADATA = metadata(EXCHANGE, factory)
