"""What one exchange module declares, and the ``ProviderMetadata`` built from it.

Adding an exchange ccxt supports is one small module: an ``Exchange`` (ccxt id, the
credentials as ccxt names them, ccxt options, and how its history pages) and
``METADATA = metadata(EXCHANGE)``. Everything else is the shared adapter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_settings import SettingsConfigDict

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.providers.spec import (
    Ability,
    AdapterFactory,
    CredentialField,
    ProviderMetadata,
    ProviderSettings,
)

__all__ = [
    "AccountHistory",
    "Exchange",
    "ExchangeSettings",
    "Permissions",
    "api_key",
    "metadata",
    "passphrase",
    "secret",
]

Permissions = Callable[[Any], Awaitable[set[str] | None]]
"""(the ccxt exchange) → what the key may do beyond reading ({"trade", "withdraw"}), or None
when the exchange cannot tell."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountHistory:
    """How an exchange whose history is kept per account is read (Coinbase).

    ``accounts(balance)`` → {account id: asset code} from ``fetch_balance()["info"]``;
    ``page(ex, account_id, cursor)`` → one page of ccxt ledger entries, newest first, and the
    cursor of the next (older) page or None; ``transfer(ex, entry)`` → a ccxt transaction
    (type ``deposit``/``withdrawal``) for an entry that moves funds in or out, else None.
    Rewards are the entries whose type is in ``Exchange.income_types``."""

    accounts: Callable[[Mapping[str, Any]], dict[str, str]]
    page: Callable[[Any, str, str | None], Awaitable[tuple[list[dict[str, Any]], str | None]]]
    transfer: Callable[[Any, Mapping[str, Any]], dict[str, Any] | None]


class ExchangeSettings(ProviderSettings):
    """``FINSYNC_<SLUG>_API_URLS``: ccxt API groups to base URLs, overriding the real hosts
    (a proxy; tests point them at a loopback fake). Empty: ccxt's own hosts. A group ccxt nests
    (Gate.io: ``{"private": {"spot": …, "wallet": …}}``) takes a mapping, merged into ccxt's."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    api_urls: dict[str, str | dict[str, str]] = {}


def api_key(help: str = "") -> CredentialField:
    return CredentialField(name="apiKey", label="API key", secret=False, help=help)


def secret(help: str = "") -> CredentialField:
    return CredentialField(name="secret", label="API secret", help=help)


def passphrase(help: str = "") -> CredentialField:
    return CredentialField(name="password", label="API passphrase", help=help)


QUOTE_FIELD = CredentialField(
    name="quote_currency",
    label="Value in currency",
    secret=False,
    required=False,
    help="ISO-4217 code the account is valued in, from the exchange's own prices (default USD).",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    slug: str
    ccxt_id: str
    display_name: str
    credentials: tuple[CredentialField, ...]
    settings: type[ExchangeSettings]
    # ccxt options: e.g. Binance loads only spot markets (one call instead of six).
    options: Mapping[str, Any] = field(default_factory=dict)
    # History needs a symbol per call (Binance): symbols come from balances and past trades.
    trades_need_symbol: bool = False
    # Trades page by the exchange's own id (Binance ``fromId``) instead of by time.
    trade_id_param: str | None = None
    # Offset paging (Kraken ``ofs``) for trades and the ledger instead of ``since`` windows.
    offset_param: str | None = None
    # Endpoints ("trades", "deposits", "withdrawals", "ledger") that answer the newest page first
    # whatever ``since`` says (Kraken's transfers; every OKX history): walk them backwards with
    # ``until`` from now down to the cursor, as moving ``since`` past the newest item would skip
    # every older one.
    backwards: frozenset[str] = frozenset()
    # Of those, the endpoints whose ``until`` is exclusive (OKX's transfers: ``after`` is
    # "earlier than"): the walk asks again until just after the oldest instant seen, so that the
    # items of that instant a full page left out are not skipped.
    until_exclusive: frozenset[str] = frozenset()
    # More ``fetch_balance`` calls (their params) whose totals add to the default one's: accounts
    # of the same key the default balance leaves out (OKX: the funding account, where deposits
    # land, beside the trading account).
    extra_balances: tuple[Mapping[str, Any], ...] = ()
    # Longest window a deposit/withdrawal query may span, in days (Binance: 90); None: no limit.
    transfer_window_days: int | None = None
    # Trades page by an opaque cursor the answer carries (Coinbase fills: ``cursor``), asked
    # again with that parameter until the answer has none; ``since`` bounds the first page.
    trade_cursor_param: str | None = None
    # Deposits, withdrawals and rewards live in one history per account (one wallet per
    # currency: Coinbase's v2 ``accounts/{id}/transactions``), which ccxt refuses to read
    # without an account: ``AccountHistory`` lists the accounts and classifies their entries.
    account_history: AccountHistory | None = None
    # Longest window a trade-history query may span, in hours (HTX: 48), and how far back the
    # exchange keeps trades, in days (HTX: 120): trades are read window by window from the cursor
    # (or from as far back as the exchange keeps) up to now. None: one ``since`` walk.
    trade_window_hours: int | None = None
    trade_history_days: int | None = None
    # Newest-first paging by the exchange's record id (``info["id"]``), passed back in this
    # parameter for the older page (HTX ``from`` with ``direct=next``): trades within a window,
    # and deposits and withdrawals, which HTX answers by id whatever the time asked.
    id_page_param: str | None = None
    # Endpoints paged within a window by page number ("page", from 1) or item offset ("offset")
    # (Gate.io: trades by ``page``, deposits and withdrawals by ``offset``).
    page_params: Mapping[str, str] = field(default_factory=dict)
    # The ccxt parameter that ends a transfer window (Binance ``endTime``; ``until`` where ccxt
    # turns it into the exchange's own, as Gate.io's ``to`` in seconds).
    window_end_param: str = "endTime"
    # Error texts ccxt raises as plain ExchangeError that mean a refused key (Kraken).
    auth_errors: tuple[str, ...] = ()
    permissions: Permissions | None = None
    # Read the ledger for rewards (off where ccxt's ledger is not the spot wallet's: Binance).
    ledger: bool = True
    # Longest window a ledger query may span, in days (Gate.io: 30): the ledger is read window by
    # window from the cursor up to now (paged within a window as ``page_params["ledger"]`` says).
    ledger_window_days: int | None = None
    # The exchange's own start and end parameters of a ledger window, sent in Unix seconds with
    # ccxt's ``since`` left empty, where ccxt would send them in milliseconds and the exchange
    # refuses them (Gate.io's account book: ``("from", "to")``). None: ccxt's ``since``/``until``.
    ledger_seconds_params: tuple[str, str] | None = None
    # A trade's fee as ccxt labels it is not in the asset charged (Kraken: always the pair's
    # quote asset): the fee and its asset come from the trade's ledger entries instead (the
    # entry whose reference is the trade id and that carries a fee; the ledger is read back to
    # the oldest trade read).
    trade_fees_in_ledger: bool = False
    # Ledger entry types that are income (staking and earn rewards).
    income_types: frozenset[str] = frozenset({"staking", "reward", "earn", "rebate", "airdrop", "cashback"})
    # After a refused timestamp, ask the exchange's clock before the retry (Binance recvWindow).
    adjusts_clock: bool = False
    # Where the account's stable key comes from in fetch_balance()["info"] (Binance: "uid").
    uid_field: str | None = None
    description: str = ""


def metadata(exchange: Exchange, factory: Callable[[Exchange], AdapterFactory]) -> ProviderMetadata:
    """The registry entry of one exchange; ``factory`` is ``adapter.factory``."""
    return ProviderMetadata(
        slug=exchange.slug,
        display_name=exchange.display_name,
        category=ProviderCategory.CRYPTO,
        auth_type=AuthType.API_KEY,
        capabilities=frozenset(
            {Capability.ACCOUNTS, Capability.BALANCES, Capability.HOLDINGS, Capability.TRANSACTIONS}
        ),
        description=exchange.description
        or f"{exchange.display_name} spot balances, trades, deposits, withdrawals, rewards (ccxt).",
        docs_url=f"docs/providers/{exchange.slug}.md",
        institutions=(exchange.display_name,),
        account_key=(
            f"{exchange.display_name}'s user id where the balance answer has one, else a digest of "
            "the API key (one account per key)"
        ),
        credential_fields=(*exchange.credentials, QUOTE_FIELD),
        abilities=frozenset({Ability.KEY_VALIDATION, Ability.PREFLIGHT}),
        settings=exchange.settings,
        adapter_factory=factory(exchange),
    )
