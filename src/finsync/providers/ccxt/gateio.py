"""Gate.io (ccxt id ``gate``). Cannot report a key's permissions. Trades, deposits and
withdrawals are asked at most 30 days at a time (``from``/``to``; asked from an older ``since``
alone, Gate refuses the trades and ccxt's 30-day transfer window finds nothing), each window
paged (trades by ``page``, transfers by ``offset``). The spot account book (rewards) is not read:
ccxt sends its ``from`` in milliseconds where Gate expects seconds."""

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
    # spot markets only: two calls instead of six (no futures, delivery, options)
    options={"fetchMarkets": {"types": ["spot"]}},
    trade_window_hours=30 * 24,
    transfer_window_days=30,
    window_end_param="until",
    page_params={"trades": "page", "deposits": "offset", "withdrawals": "offset"},
    ledger=False,
)
METADATA = metadata(EXCHANGE, factory)
