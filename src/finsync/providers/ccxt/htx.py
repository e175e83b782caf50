"""HTX (formerly Huobi). The key's permissions come from ``/v2/user/api-key`` (``permission``:
``readOnly``, ``trade``, ``withdraw``). Trade history is kept 120 days and asked 48 hours at a
time; deposits and withdrawals come newest first by id whatever the time asked: both are paged
by record id (``from``). HTX's ledger holds only transfers between the user's own accounts (no
rewards) and is not read."""

from __future__ import annotations

from typing import Any

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, secret


class HtxSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_HTX_")


async def permissions(ex: Any) -> set[str]:
    uid = (await ex.v2PrivateGetUserUid()).get("data")
    answer = await ex.v2PrivateGetUserApiKey({"uid": uid, "accessKey": ex.apiKey})
    rows = answer.get("data") or [{}]
    return {p.strip() for p in str(rows[0].get("permission") or "").split(",")} & {"trade", "withdraw"}


EXCHANGE = Exchange(
    slug="htx",
    ccxt_id="htx",
    display_name="HTX",
    credentials=(api_key("HTX → API Management; Read-only permission."), secret()),
    settings=HtxSettings,
    # spot markets only: one call instead of four (the contract ones live on another host)
    options={"fetchMarkets": {"types": {"spot": True, "linear": False, "inverse": False}}},
    permissions=permissions,
    trade_window_hours=48,
    trade_history_days=120,
    id_page_param="from",
    ledger=False,
)
METADATA = metadata(EXCHANGE, factory)
