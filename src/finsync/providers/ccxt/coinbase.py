"""Coinbase Advanced Trade (CDP API keys: the key name and its private key). The key's
permissions come from ``brokerage/key_permissions``."""

from __future__ import annotations

from typing import Any

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, secret


class CoinbaseSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_COINBASE_")


async def permissions(ex: Any) -> set[str]:
    found = await ex.v3_private_get_brokerage_key_permissions()
    return {name for name, flag in (("trade", "can_trade"), ("withdraw", "can_transfer")) if found.get(flag)}


EXCHANGE = Exchange(
    slug="coinbase",
    ccxt_id="coinbase",
    display_name="Coinbase",
    credentials=(
        api_key("Coinbase Developer Platform → API key name (organizations/…/apiKeys/…); View only."),
        secret("The key's private key (-----BEGIN EC PRIVATE KEY-----…)."),
    ),
    settings=CoinbaseSettings,
    permissions=permissions,
    description="Coinbase (Advanced Trade) balances, trades, deposits, withdrawals, rewards (ccxt).",
)
METADATA = metadata(EXCHANGE, factory)
