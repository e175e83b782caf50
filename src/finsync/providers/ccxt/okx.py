"""OKX. Needs the API passphrase besides key and secret; the key's permissions come from
``account/config`` (``perm``: ``read_only``, ``trade``, ``withdraw``). Every history endpoint
answers its newest 100 first: it is walked backwards (``until``) down to the cursor. Earn
rewards are not read (see ``ledger`` below)."""

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
    # the funding account (``asset/balances``) beside the trading account: deposits land there
    extra_balances=({"type": "funding"},),
    # Fills and transfers come newest first, 100 at most, whatever ``begin`` says.
    backwards=frozenset({"trades", "deposits", "withdrawals"}),
    # fills' ``end`` is inclusive; the transfers' ``after`` is "earlier than"
    until_exclusive=frozenset({"deposits", "withdrawals"}),
    # ccxt's OKX ledger is the trading account's bills: no earn rewards there (they are paid to
    # the funding account), and ccxt names an auto token conversion (type 4) "rebate", which
    # would read as income.
    ledger=False,
)
METADATA = metadata(EXCHANGE, factory)
