"""Kraken. Trades and the ledger page by offset (``ofs``, 50 a page); staking rewards are
ledger entries, and a trade's fee is in the asset its ledger entries say (ccxt labels it in the
pair's quote asset whatever was charged); a bad key or signature comes as a plain ``EAPI:``
error, mapped to a refused key here. Staked balances are separate assets (``SOL.S``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, secret

# Ledger entries that are income. ``earn`` is every Earn movement ("allocation, deallocation,
# rewards, and other transactions", Kraken's ledger field guide): moving funds into or out of
# Earn is a pair of ``earn`` entries (``allocation``, ``deallocation``, ``autoallocation``,
# ``migration``) between ``DOT`` and ``DOT.B``; only its ``reward`` subtype is income. The
# legacy ``staking`` type is its rewards.
INCOME_TYPES = frozenset({"staking", "reward", "earn/reward", "rebate", "airdrop", "cashback"})


class KrakenSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_KRAKEN_")


EXCHANGE = Exchange(
    slug="kraken",
    ccxt_id="kraken",
    display_name="Kraken",
    credentials=(api_key("Kraken → Settings → API; grant Query Funds and Query Ledger Entries."), secret()),
    settings=KrakenSettings,
    offset_param="ofs",
    backwards=frozenset({"deposits", "withdrawals"}),
    trade_fees_in_ledger=True,
    income_types=INCOME_TYPES,
    auth_errors=("EAPI:Invalid key", "EAPI:Invalid signature", "EGeneral:Permission denied"),
)
METADATA = metadata(EXCHANGE, factory)
