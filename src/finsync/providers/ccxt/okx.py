"""OKX. Needs the API passphrase besides key and secret; the key's permissions come from
``account/config`` (``perm``: ``read_only``, ``trade``, ``withdraw``). Every history endpoint
answers its newest 100 first: it is walked backwards (``until``) down to the cursor."""

from __future__ import annotations

from typing import Any

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import Exchange, ExchangeSettings, api_key, metadata, passphrase, secret


class OkxSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_OKX_")


async def permissions(ex: Any) -> set[str]:
    answer = await ex.private_get_account_config()
    rows = answer.get("data") or [{}]
    return {p.strip() for p in str(rows[0].get("perm") or "").split(",")} & {"trade", "withdraw"}


EXCHANGE = Exchange(
    slug="okx",
    ccxt_id="okx",
    display_name="OKX",
    credentials=(api_key("OKX → API; choose the Read permission."), secret(), passphrase()),
    settings=OkxSettings,
    permissions=permissions,
    options={"fetchMarkets": {"types": ["spot"]}},  # one instruments call instead of five
    # Fills, transfers and bills come newest first, 100 at most, whatever ``begin`` says; the
    # bills ignore it altogether (ccxt filters them after the call).
    backwards=frozenset({"trades", "deposits", "withdrawals", "ledger"}),
)
METADATA = metadata(EXCHANGE, factory)
