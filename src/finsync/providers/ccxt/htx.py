"""HTX (formerly Huobi). Cannot report a key's permissions through ccxt."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, secret


class HtxSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_HTX_")


EXCHANGE = Exchange(
    slug="htx",
    ccxt_id="htx",
    display_name="HTX",
    credentials=(api_key("HTX → API Management; Read-only permission."), secret()),
    settings=HtxSettings,
)
METADATA = metadata(EXCHANGE, factory)
