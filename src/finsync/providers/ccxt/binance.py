"""Binance (spot wallet). Trade history needs a symbol per call and pages by ``fromId``;
deposit and withdrawal history span at most 90 days per query; markets are loaded for
spot only (one call instead of six). The key's permissions come from ``apiRestrictions``."""

from __future__ import annotations

from typing import Any

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, secret


class BinanceSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_BINANCE_")


async def permissions(ex: Any) -> set[str]:
    found = await ex.sapi_get_account_apirestrictions()
    return {
        name
        for name, flags in (
            ("trade", ("enableSpotAndMarginTrading", "enableFutures", "enableMargin")),
            ("withdraw", ("enableWithdrawals", "enableInternalTransfer")),
        )
        if any(found.get(flag) in (True, "true") for flag in flags)
    }


EXCHANGE = Exchange(
    slug="binance",
    ccxt_id="binance",
    display_name="Binance",
    credentials=(api_key("Binance → API Management; enable reading only."), secret()),
    settings=BinanceSettings,
    options={"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False},
    trades_need_symbol=True,
    trade_id_param="fromId",
    transfer_window_days=90,
    permissions=permissions,
    ledger=False,
    uid_field="uid",
    adjusts_clock=True,
)
METADATA = metadata(EXCHANGE, factory)
