"""Coinbase Advanced Trade (CDP API keys: the key name and its private key, signed as an
ES256 JWT by ccxt). The key's permissions come from ``brokerage/key_permissions``.

Balances are the Advanced Trade accounts (``brokerage/accounts``, one per currency, paged
by ccxt); trades are the fills (``brokerage/orders/historical/fills``), paged by their
``cursor``. Deposits, withdrawals and rewards are not in any account-wide list: Coinbase
keeps them in each account's v2 history (``/v2/accounts/{id}/transactions``, newest first,
paged by ``starting_after``), the same id as the Advanced Trade account's ``uuid`` (ccxt's
own ``find_account_id`` relies on it). ccxt refuses those calls without an account, so they
are read account by account (``AccountHistory``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic_settings import SettingsConfigDict

from finsync.providers.ccxt.adapter import factory
from finsync.providers.ccxt.exchange import (
    AccountHistory,
    Exchange,
    ExchangeSettings,
    api_key,
    metadata,
    secret,
)

PAGE = 100  # the v2 list's largest page
# v2 transaction types that move funds into or out of Coinbase (the sign of ``amount`` says
# which). Buys, sells and advanced-trade fills are trades (read from the fills); staking and
# own-account transfers move nothing in or out.
TRANSFER_TYPES = frozenset(
    {
        "send",
        "receive",
        "fiat_deposit",
        "fiat_withdrawal",
        "exchange_deposit",
        "exchange_withdrawal",
        "pro_deposit",
        "pro_withdrawal",
        "intx_deposit",
        "intx_withdrawal",
    }
)
# v2 transaction types that are income: staking and earn rewards, campaign payouts.
INCOME_TYPES = frozenset(
    {"staking_reward", "inflation_reward", "interest", "earn_payout", "incentives_rewards_payout"}
)
_ACCOUNT_TYPES = frozenset({"ACCOUNT_TYPE_CRYPTO", "ACCOUNT_TYPE_FIAT"})


class CoinbaseSettings(ExchangeSettings):
    model_config = SettingsConfigDict(env_prefix="FINSYNC_COINBASE_")


async def permissions(ex: Any) -> set[str]:
    found = await ex.v3_private_get_brokerage_key_permissions()
    return {name for name, flag in (("trade", "can_trade"), ("withdraw", "can_transfer")) if found.get(flag)}


def accounts(info: Mapping[str, Any]) -> dict[str, str]:
    """Account uuid → currency, from the ``brokerage/accounts`` answer ccxt's balance keeps."""
    found: dict[str, str] = {}
    for account in info.get("accounts") or []:
        if isinstance(account, Mapping) and account.get("uuid") and account.get("type") in _ACCOUNT_TYPES:
            found[str(account["uuid"])] = str(account.get("currency") or "")
    return found


async def history_page(
    ex: Any, account_id: str, after: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of an account's v2 history (ccxt's ledger entries) and the next page's cursor
    (``pagination.next_starting_after``, which ccxt leaves in one entry's ``info``)."""
    params: dict[str, Any] = {"account_id": account_id}
    if after:
        params["starting_after"] = after
    entries: list[dict[str, Any]] = await ex.fetch_ledger(None, None, PAGE, params)
    following = next(
        (
            str(e["info"]["next_starting_after"])
            for e in entries
            if isinstance(e.get("info"), dict) and e["info"].get("next_starting_after")
        ),
        None,
    )
    return entries, following


def transfer(ex: Any, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """A v2 history entry that moves funds in or out, as ccxt's transaction; else None.
    The direction is the sign of the entry's ``amount`` (ccxt reads a ``send``'s network
    amount, which is never negative, and would call every send a deposit)."""
    info = entry.get("info")
    if not isinstance(info, Mapping) or info.get("type") not in TRANSFER_TYPES:
        return None
    amount = (info.get("amount") or {}).get("amount")
    if amount in (None, "") or Decimal(str(amount)) == 0:
        return None
    parsed: dict[str, Any] = ex.parse_transaction(dict(info))
    parsed["type"] = "withdrawal" if Decimal(str(amount)) < 0 else "deposit"
    return parsed


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
    # Balances from the Advanced Trade accounts (paged by ccxt, with what is on hold) rather
    # than ccxt's default single page of v2 accounts.
    options={"fetchBalance": "v3PrivateGetBrokerageAccounts"},
    trade_cursor_param="cursor",
    account_history=AccountHistory(accounts=accounts, page=history_page, transfer=transfer),
    income_types=INCOME_TYPES,
    description="Coinbase (Advanced Trade) balances, trades, deposits, withdrawals, rewards (ccxt).",
)
METADATA = metadata(EXCHANGE, factory)
