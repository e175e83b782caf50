"""Gate.io (ccxt id ``gate``). Cannot report a key's permissions. Trades, deposits and
withdrawals are asked at most 30 days at a time (``from``/``to``; asked from an older ``since``
alone, Gate refuses the trades and ccxt's 30-day transfer window finds nothing), each window
paged (trades by ``page``, transfers by ``offset``). The spot account book (rewards → income) is
read the same way, 30 days a time by ``page``; ccxt would send its ``from``/``to`` in milliseconds
where Gate expects seconds, so the adapter passes them itself, in seconds."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, secret

# Spot account book ``type`` values that are income (Gate API v4, "AccountBook type"): the
# Reward group and the Finance group's interest (earn, HODL, staking). Rebates, trades, fees,
# transfers, lending principal (``lend``/``redeem``) and Startup sales are not.
INCOME_TYPES = frozenset(
    {
        "airdrop",  # Airdrop
        "award",  # Award
        "deposit_bonus",  # Deposit Bonus
        "purchase_bonus",  # Purchase Bonus
        "trading_rewards",  # Trading Rewards
        "mining_rewards",  # Mining Rewards
        "interest_in",  # Interest Income (lending / simple earn)
        "hodl_int",  # HODL Interest
        "slot_int_in",  # Slot Auction Staking Interest Income
        "str_int_in",  # Structured Products Staking Interest Income
    }
)


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
    page_params={"trades": "page", "deposits": "offset", "withdrawals": "offset", "ledger": "page"},
    ledger_window_days=30,
    ledger_seconds_params=("from", "to"),
    income_types=INCOME_TYPES,
)
METADATA = metadata(EXCHANGE, factory)
