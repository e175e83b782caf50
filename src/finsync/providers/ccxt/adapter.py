"""The one adapter every exchange shares: ccxt's unified API (``ccxt.async_support``) with
``enableRateLimit``, paced by the exchange's shared budget (``limits.py``) on the host clock.

One connection (one API key) is one account: its holdings are the non-zero balances, valued
in the connection's quote currency from the exchange's own tickers at sync time. An asset the
exchange cannot price in that currency (Binance has no USD markets, and USDT is not USD) is
priced in a fiat currency it does quote (EUR first) and converted at the stored ECB reference
rate of the sync's day, which the sync hands in (``ProviderSession.rates``): the adapter reads
no database. History is
read incrementally per endpoint from ``session.state["cursors"][account]`` with an overlap
(the store de-duplicates by id), so a sync after a failure re-reads what it missed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, Unpack

from finsync.domain.enums import AccountType
from finsync.domain.errors import (
    BadData,
    InvalidInput,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    Unavailable,
)
from finsync.domain.market import ECB_CURRENCIES, EUR
from finsync.domain.money import is_iso_currency
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction, TransactionBatch
from finsync.providers.ccxt import mappers
from finsync.providers.ccxt.exchange import AccountHistory, Exchange, ExchangeSettings
from finsync.providers.ccxt.limits import ExchangeBudget, banned_until, budget
from finsync.providers.common import HostOptions, Wire, credential
from finsync.providers.http import SystemClock, tls_context
from finsync.providers.spec import AdapterFactory

__all__ = ["ExchangeAdapter", "factory"]

T = TypeVar("T")
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
ID_PAGE = 100  # items per page where paged by record id (HTX: at most 100 transfers a call)
SECOND_MS = 1000
TRANSFER_PAGE = 1000  # Binance: at most 1,000 deposits (or withdrawals) per answer, its default too
OVERLAP_MS = DAY_MS  # re-read a day before each cursor: late-settling items are not missed
BRIDGES = ("USDT", "USDC", "BTC", "ETH", "EUR", "USD")  # priced through one of these when no direct pair
QUOTE_ASSETS = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "USD", "TRY"})
MAX_PAGES = 200  # per endpoint per sync: a bound, never reached by a sane account
MAX_SYMBOLS_KEPT = 300
EPOCH_MS = 1_498_867_200_000  # 2017-07-01: before any of these exchanges' spot history APIs
_QUERY = re.compile(r"https?://\S+")


def _ccxt() -> Any:
    """``ccxt.async_support``, imported when an exchange is first used: it defines hundreds of
    exchanges and costs about a second of CPU to import, which every ``finsync`` command and
    worker would otherwise pay at start-up (the registry imports every provider package)."""
    import ccxt.async_support

    return ccxt.async_support


class ExchangeAdapter:
    def __init__(
        self,
        exchange: Exchange,
        session: ProviderSession,
        settings: ExchangeSettings,
        **host: Unpack[HostOptions],
    ) -> None:
        self.exchange, self.session = exchange, session
        name = exchange.display_name
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(settings.timeout_seconds * 1000),
            "options": {**exchange.options},
        }
        self._secrets: list[str] = []
        for field in exchange.credentials:
            value = credential(session, field.name, required_by=name if field.required else "")
            config[field.name] = value
            if value:
                self._secrets.append(value)
        self.ex: Any = getattr(_ccxt(), exchange.ccxt_id)(config)
        self.ex.number = str  # exact: numbers stay the exchange's text, Decimals in the mappers
        self.ex.ssl_context = tls_context()  # ccxt would load the CA bundle per instance (per sync)
        # ccxt sleeps this long in close() for aiohttp's TLS transports to finish closing; the
        # aiohttp we run awaits them in the connector's close() itself, so it only added 250 ms
        # to every key check and every sync.
        self.ex.timeout_on_exit = 0
        if settings.api_urls:
            urls: dict[str, Any] = dict(self.ex.urls["api"])
            for group, url in settings.api_urls.items():
                current = urls.get(group)
                urls[group] = (
                    {**current, **url} if isinstance(url, dict) and isinstance(current, dict) else url
                )
            self.ex.urls["api"] = urls
        self.clock = host.get("clock") or SystemClock()
        self.budget: ExchangeBudget = budget(exchange.slug, name, float(self.ex.rateLimit), self.clock)
        self.ex.throttle = self.budget.spend  # the exchange's one budget instead of ccxt's per instance
        self._ccxt_nonce, self._last_nonce = self.ex.nonce, 0
        self.ex.nonce = self._nonce
        self.wire = Wire(exchange.slug)
        self._balance: dict[str, Any] | None = None
        self._holdings: list[ProviderHolding] = []

    # --- the contract -------------------------------------------------------------------

    async def preflight(self) -> None:
        self.budget.check()

    async def validate(self) -> list[str]:
        """One balance call; a key that may trade or withdraw is accepted with a warning."""
        self._quote()
        balance = await self._call(self.ex.fetch_balance)
        if self.exchange.permissions is not None:
            try:
                allowed = await self._call(self.exchange.permissions, self.ex)
            except RateLimited:
                raise
            except ProviderError:  # the key works (the balance answered); its permissions stay unknown
                allowed = None
            extra = sorted((allowed or set()) & {"trade", "withdraw"})
            if extra:
                self.session.warnings.append(
                    f"This {self.exchange.display_name} key may {' and '.join(extra)}: finsync only reads, "
                    "so a read-only key is enough (and safer). Consider replacing it."
                )
        return [self._account_id(balance)]

    async def fetch_accounts(self) -> list[ProviderAccount]:
        quote = self._quote()
        self.budget.check()
        await self._call(self.ex.load_markets)
        balance = await self._call(self.ex.fetch_balance)
        for params in self.exchange.extra_balances:
            more = await self._call(self.ex.fetch_balance, dict(params))
            total = dict(balance.get("total") or {})
            for code, amount in (more.get("total") or {}).items():
                if amount not in (None, "") and Decimal(amount):
                    total[code] = str(Decimal(total.get(code) or 0) + Decimal(amount))
            balance = {**balance, "total": total}
        totals = {k: v for k, v in (balance.get("total") or {}).items() if v not in (None, "") and Decimal(v)}
        prices, in_fiat = await self._prices(set(totals), quote)
        converted = await self._convert(in_fiat, quote)
        held, cash, value, unpriced = mappers.holdings(self.wire, totals, quote, prices, converted)
        if unpriced:
            self.session.warnings.append(
                f"{self.exchange.display_name} lists no {quote} price for {', '.join(unpriced)}: "
                "those holdings carry no value"
            )
        self._holdings = held
        self._balance = balance
        # Assets priced in another fiat but with no rate to convert yet: the balance is unknown
        # (net worth leaves it out and says so) rather than a total that silently lacks them.
        known = all(price.rate is not None for price in converted.values())
        return [
            ProviderAccount(
                provider_account_id=self._account_id(balance),
                name=self.exchange.display_name,
                type=AccountType.CRYPTO_WALLET,
                currency=quote,
                institution=self.exchange.display_name,
                balance=cash + value if known else None,
                cash_value=cash,
                holdings_value=value if known else None,
                balance_at=datetime.fromtimestamp(self.clock.now(), UTC),
                raw={"assets": sorted(totals), "quote_currency": quote},
            )
        ]

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        return list(self._holdings)

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        cursors: dict[str, Any] = self.session.state.setdefault("cursors", {}).setdefault(
            account.provider_account_id, {}
        )
        found: dict[str, ProviderTransaction] = {}
        trades = await self._trades(cursors)
        for item in trades:
            record = mappers.trade(self.wire, item)
            found[record.provider_transaction_id] = record
        if self.exchange.account_history is not None:
            traded = {a for t in trades for a in str(t["symbol"]).split(":")[0].split("/")}
            for record in await self._account_history(self.exchange.account_history, cursors, traded):
                found[record.provider_transaction_id] = record
            return TransactionBatch(transactions=list(found.values()))
        for kind, fetch in (("deposits", self.ex.fetch_deposits), ("withdrawals", self.ex.fetch_withdrawals)):
            if self.ex.has.get("fetchDeposits" if kind == "deposits" else "fetchWithdrawals"):
                for item in await self._transfers(kind, fetch, cursors):
                    record = mappers.transfer(self.wire, item)
                    found[record.provider_transaction_id] = record
        if self.exchange.ledger and self.ex.has.get("fetchLedger"):
            fees_in_ledger = self.exchange.trade_fees_in_ledger and bool(trades)
            earliest = min(int(t["timestamp"]) for t in trades) if fees_in_ledger else None
            ledger = await self._ledger(cursors, earliest)
            for item in ledger:
                income = mappers.ledger_income(self.wire, item, self.exchange.income_types)
                if income is not None:
                    found[income.provider_transaction_id] = income
            if fees_in_ledger:
                for item in mappers.charged_fees(self.wire, trades, ledger):
                    record = mappers.trade(self.wire, item)
                    found[record.provider_transaction_id] = record
        return TransactionBatch(transactions=list(found.values()))

    async def aclose(self) -> None:
        await self.ex.close()

    # --- history --------------------------------------------------------------------------

    async def _trades(self, cursors: dict[str, Any]) -> list[dict[str, Any]]:
        if self.exchange.trade_cursor_param:
            return await self._by_cursor(
                "trades", self.exchange.trade_cursor_param, self.ex.fetch_my_trades, cursors
            )
        if self.exchange.trade_window_hours is not None:
            return await self._windows(
                "trades", self.ex.fetch_my_trades, cursors, self.exchange.trade_window_hours * HOUR_MS
            )
        if not self.exchange.trades_need_symbol:
            return await self._by_time("trades", self.ex.fetch_my_trades, cursors)
        # Binance: one call (or more) per symbol; symbols from balances and past trades.
        per_symbol: dict[str, Any] = cursors.setdefault("trades", {})
        items: list[dict[str, Any]] = []
        for symbol in self._symbols(per_symbol):
            last = per_symbol.get(symbol)
            from_id = int(last) if last is not None else 0
            for _ in range(MAX_PAGES):
                page = await self._call(
                    self.ex.fetch_my_trades, symbol, None, 1000, {self.exchange.trade_id_param: from_id}
                )
                items += page
                if page:
                    last = max(int(t["id"]) for t in page)
                    from_id = last + 1
                if len(page) < 1000:
                    break
            # the next sync reads from this id on (it overlaps one); a pair asked with nothing
            # found yet is kept too (None): once its asset is sold out it is held no more, and
            # only this says that its sale is to be read
            per_symbol[symbol] = last
        return items

    async def _by_cursor(
        self,
        endpoint: str,
        param: str,
        fetch: Callable[..., Awaitable[list[dict[str, Any]]]],
        cursors: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Everything since the endpoint's cursor (minus the overlap), page after page by the
        opaque cursor each answer carries (ccxt leaves it in one item's ``info``): the pages
        are linked by the exchange, so their order (Coinbase: newest first) does not matter."""
        since = max(EPOCH_MS, int(cursors.get(endpoint, EPOCH_MS)) - OVERLAP_MS)
        items: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {}
        for _ in range(MAX_PAGES):
            page = await self._call(fetch, None, since, None, params)
            for item in page:
                items[str(item.get("id"))] = item
            following = next(
                (
                    str(i["info"][param])
                    for i in page
                    if isinstance(i.get("info"), dict) and i["info"].get(param)
                ),
                None,
            )
            if not page or following is None or following == params.get(param):
                break
            params = {param: following}
        if items:
            cursors[endpoint] = max(int(i["timestamp"]) for i in items.values())
        return list(items.values())

    async def _account_history(
        self, history: AccountHistory, cursors: dict[str, Any], traded: set[str]
    ) -> list[ProviderTransaction]:
        """Deposits, withdrawals and rewards read account by account (Coinbase keeps one
        history per wallet, i.e. per currency, and ccxt will not read it without one).

        Walked: the accounts holding something, those of an asset traded in this sync's fills,
        and every account read before (an asset sold out since still gets its withdrawal).
        Each is read newest first, page by page (the exchange's ``starting_after`` cursor),
        down to its own cursor in ``session.state`` minus the overlap; all share the
        exchange's one rate budget (every call goes through ``_call``)."""
        per_account: dict[str, Any] = cursors.setdefault("accounts", {})
        balance = self._balance
        if balance is None:
            fetched: dict[str, Any] = await self._call(self.ex.fetch_balance)
            balance = self._balance = fetched
        held = {k for k, v in (balance.get("total") or {}).items() if v not in (None, "") and Decimal(v)}
        info = balance.get("info") if isinstance(balance.get("info"), dict) else {}
        accounts = history.accounts(info or {})
        wanted = sorted(
            i for i, code in accounts.items() if code in held or code in traded or i in per_account
        )
        found: list[ProviderTransaction] = []
        for account_id in wanted[:MAX_SYMBOLS_KEPT]:
            since = max(EPOCH_MS, int(per_account.get(account_id, EPOCH_MS)) - OVERLAP_MS)
            after: str | None = None
            newest: int | None = None
            for _ in range(MAX_PAGES):
                try:
                    page, following = await self._call(history.page, self.ex, account_id, after)
                except ProviderError as exc:
                    if type(exc) is not ProviderError:  # refused key, rate limit, outage: as they are
                        raise
                    raise ProviderError(
                        f"reading the history of the {accounts[account_id] or '?'} account "
                        f"({account_id}): {exc}"
                    ) from None
                stamps = [int(e["timestamp"]) for e in page if e.get("timestamp") is not None]
                for entry in page:
                    if entry.get("timestamp") is None or int(entry["timestamp"]) < since:
                        continue
                    moved = history.transfer(self.ex, entry)
                    if moved is not None:
                        found.append(mappers.transfer(self.wire, moved))
                    elif (
                        income := mappers.ledger_income(self.wire, entry, self.exchange.income_types)
                    ) is not None:
                        found.append(income)
                if stamps:
                    newest = max(newest or 0, *stamps)
                if not page or following is None or following == after or (stamps and min(stamps) < since):
                    break
                after = following
            if newest is not None:
                per_account[account_id] = newest
        return found

    def _symbols(self, known: dict[str, Any]) -> list[str]:
        """Spot symbols worth asking: a held asset against a common quote or another held asset,
        plus every symbol asked before (an asset sold out since is still read)."""
        held = {k for k, v in ((self._balance or {}).get("total") or {}).items() if v and Decimal(v)}
        quotes = QUOTE_ASSETS | held
        wanted = {
            symbol
            for symbol, market in (self.ex.markets or {}).items()
            if market.get("spot") and market.get("base") in held and market.get("quote") in quotes
        }
        # the held ones first: where more than the bound are kept, the pairs of held assets stay
        return [*sorted(wanted), *sorted(set(known) - wanted)][:MAX_SYMBOLS_KEPT]

    async def _by_time(
        self,
        endpoint: str,
        fetch: Callable[..., Awaitable[list[dict[str, Any]]]],
        cursors: dict[str, Any],
        earliest: int | None = None,
    ) -> list[dict[str, Any]]:
        """Everything since the endpoint's cursor, or ``earliest`` if that is older (minus the
        overlap either way: Kraken's ``start`` is exclusive): by offset where the exchange pages
        so (Kraken ``ofs``), else by moving ``since`` past the newest item until a page brings
        nothing new; backwards where the exchange answers the newest first (OKX)."""
        if endpoint in self.exchange.backwards:
            return await self._backwards(endpoint, fetch, cursors)
        since = max(EPOCH_MS, int(cursors.get(endpoint, EPOCH_MS)) - OVERLAP_MS)
        if earliest is not None:
            since = max(EPOCH_MS, min(since, earliest - OVERLAP_MS))
        items: dict[str, dict[str, Any]] = {}
        offset, cursor = 0, since
        for _ in range(MAX_PAGES):
            params = {self.exchange.offset_param: offset} if self.exchange.offset_param else {}
            page = await self._call(fetch, None, cursor, None, params)
            fresh = [i for i in page if str(i.get("id")) not in items]
            for item in fresh:
                items[str(item.get("id"))] = item
            if not fresh:
                break
            if self.exchange.offset_param:
                offset += len(page)
            else:
                cursor = max(int(i["timestamp"]) for i in page) + 1
        if items:
            cursors[endpoint] = max(int(i["timestamp"]) for i in items.values())
        return list(items.values())

    async def _transfers(
        self, endpoint: str, fetch: Callable[..., Awaitable[list[dict[str, Any]]]], cursors: dict[str, Any]
    ) -> list[dict[str, Any]]:
        window = self.exchange.transfer_window_days
        if endpoint in self.exchange.backwards:
            return await self._backwards(endpoint, fetch, cursors)
        if self.exchange.id_page_param:
            since = max(EPOCH_MS, int(cursors.get(endpoint, EPOCH_MS)) - OVERLAP_MS)
            found = await self._by_id(fetch, since, {})
            if found:
                cursors[endpoint] = max(int(i["timestamp"]) for i in found)
            return found
        if window is None:
            return await self._by_time(endpoint, fetch, cursors)
        # Binance: a query spans at most 90 days from ``since``: walk the windows up to now.
        start = max(EPOCH_MS, int(cursors.get(endpoint, EPOCH_MS)) - OVERLAP_MS)
        paged = endpoint in self.exchange.page_params
        if not paged:
            start -= start % SECOND_MS  # windows (and their halves) begin on a whole second
        now = int(self.clock.now() * 1000)
        step = window * DAY_MS
        items: list[dict[str, Any]] = []
        while start <= now:
            end = min(start + step - 1, now)
            if paged:
                items += await self._pages(endpoint, fetch, start, {self.exchange.window_end_param: end})
            else:
                items += await self._window(endpoint, fetch, start, end)
            start += step
        cursors[endpoint] = max([int(i["timestamp"]) for i in items] + [now - OVERLAP_MS])
        return items

    async def _window(
        self,
        endpoint: str,
        fetch: Callable[..., Awaitable[list[dict[str, Any]]]],
        start: int,
        end: int,
    ) -> list[dict[str, Any]]:
        """Every transfer from ``start`` to ``end`` (milliseconds, both included; ``start`` on a
        whole second). An answer of ``TRANSFER_PAGE`` items (Binance's most, and it says nothing
        of the rest) may be only part of its window: that window is asked again as two halves
        meeting on a whole second, ``[start, middle - 1]`` and ``[middle, end]``, until every
        answer is short. The bounds are inclusive and disjoint, so an item stamped at a split
        is in exactly one half (none lost, none read twice), whatever order the answer is in.
        Whole seconds, because ccxt dates a withdrawal by its ``applyTime`` in seconds and
        drops what it dates before ``since``: a half starting within a second would lose the
        items of that second (and a full answer would look short). A single second holding a
        full page cannot be split: what it answered is kept, with a warning."""
        items: list[dict[str, Any]] = []
        pending = [(start, end)]
        while pending:
            low, high = pending.pop()
            page = await self._call(fetch, None, low, TRANSFER_PAGE, {self.exchange.window_end_param: high})
            seconds = (high - low) // SECOND_MS
            if len(page) < TRANSFER_PAGE or seconds == 0:
                items += page
                if len(page) >= TRANSFER_PAGE:
                    at = datetime.fromtimestamp(low / 1000, UTC).isoformat()
                    self.session.warnings.append(
                        f"{self.exchange.display_name} has {TRANSFER_PAGE} or more {endpoint} "
                        f"in the one second at {at}: only the {len(page)} it answered were read"
                    )
                continue
            middle = low + (seconds + 1) // 2 * SECOND_MS
            pending += [(middle, high), (low, middle - 1)]  # the older half first
        return items

    async def _ledger(self, cursors: dict[str, Any], earliest: int | None = None) -> list[dict[str, Any]]:
        """The ledger since its cursor (or since ``earliest``, the oldest trade read, where trade
        fees are taken from the ledger: Kraken): window by window where a query may span only so long
        (Gate.io: 30 days), with the window's bounds in the exchange's own parameters, in
        seconds, where ccxt would send milliseconds the exchange refuses (Gate's account book:
        ``from``/``to``; ccxt's ``since`` stays empty, and no ``until`` is passed, which ccxt
        would turn into a ``to`` in milliseconds over ours)."""
        days = self.exchange.ledger_window_days
        if days is None:
            return await self._by_time("ledger", self.ex.fetch_ledger, cursors, earliest)
        seconds = self.exchange.ledger_seconds_params

        def in_seconds(start: int, end: int) -> tuple[int | None, dict[str, Any]]:
            assert seconds is not None
            return None, {seconds[0]: start // 1000, seconds[1]: end // 1000}

        bounds = in_seconds if seconds is not None else None
        return await self._windows("ledger", self.ex.fetch_ledger, cursors, days * DAY_MS, bounds)

    async def _windows(
        self,
        endpoint: str,
        fetch: Callable[..., Awaitable[list[dict[str, Any]]]],
        cursors: dict[str, Any],
        step: int,
        bounds: Callable[[int, int], tuple[int | None, dict[str, Any]]] | None = None,
    ) -> list[dict[str, Any]]:
        """HTX: one query spans at most ``trade_window_hours`` (``step``, in milliseconds) and
        reaches back at most ``trade_history_days`` (older trades are out of reach): walk the
        windows from the cursor up to now, each one paged. Asked with ``since`` alone, HTX
        refuses the whole sync (``invalid-start-date``). ``bounds(start, end)`` → the ``since``
        and parameters that ask one window (default: ``since`` and ccxt's ``until``)."""
        now = int(self.clock.now() * 1000)
        start = max(EPOCH_MS, int(cursors.get(endpoint, EPOCH_MS)) - OVERLAP_MS)
        if endpoint == "trades" and self.exchange.trade_history_days is not None:
            # an hour inside the limit: the exchange's clock reads it a little later than ours
            start = max(start, now - self.exchange.trade_history_days * DAY_MS + HOUR_MS)
        items: list[dict[str, Any]] = []
        while start <= now:
            end = min(start + step - 1, now)
            since, params = bounds(start, end) if bounds is not None else (start, {"until": end})
            items += await self._pages(endpoint, fetch, since, params)
            start = end + 1
        cursors[endpoint] = max([int(i["timestamp"]) for i in items] + [now - OVERLAP_MS])
        return items

    async def _pages(
        self,
        endpoint: str,
        fetch: Callable[..., Awaitable[list[dict[str, Any]]]],
        since: int | None,
        params: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Every page of one window: by record id (HTX), by page number or offset (Gate.io),
        ``ID_PAGE`` at a time until a page is short or brings nothing new; else one call."""
        param = self.exchange.page_params.get(endpoint)
        if param is None:
            return await self._by_id(fetch, since, params)
        items: dict[str, dict[str, Any]] = {}
        for n in range(MAX_PAGES):
            at = n + 1 if param == "page" else n * ID_PAGE
            page = await self._call(fetch, None, since, ID_PAGE, params | {param: at})
            fresh = [i for i in page if f"{i.get('symbol')}:{i.get('id')}" not in items]
            for item in fresh:
                items[f"{item.get('symbol')}:{item.get('id')}"] = item
            if len(page) < ID_PAGE or not fresh:
                break
        return list(items.values())

    async def _by_id(
        self,
        fetch: Callable[..., Awaitable[list[dict[str, Any]]]],
        since: int | None,
        params: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Newest first, ``ID_PAGE`` at a time: the next page is asked from the oldest record id
        seen (in ``id_page_param``) until a page is short (ccxt drops items older than ``since``,
        so a short page also means the walk reached the cursor) or brings nothing new."""
        if self.exchange.id_page_param is None:  # one page of the exchange's default size
            return await self._call(fetch, None, since, None, params)
        items: dict[str, dict[str, Any]] = {}
        extra: dict[str, Any] = {}
        for _ in range(MAX_PAGES):
            page = await self._call(fetch, None, since, ID_PAGE, params | extra)
            fresh = [i for i in page if str(i["info"]["id"]) not in items]
            for item in fresh:
                items[str(item["info"]["id"])] = item
            if len(page) < ID_PAGE or not fresh:
                break
            extra = {self.exchange.id_page_param: min(int(i["info"]["id"]) for i in page)}
        return list(items.values())

    async def _backwards(
        self, endpoint: str, fetch: Callable[..., Awaitable[list[dict[str, Any]]]], cursors: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Newest first: ask again ``until`` the oldest item seen, down to the cursor. That item's
        own instant is asked again (several fills share a millisecond, and a page may end among
        them): what was seen is skipped, and a page with nothing new ends the walk."""
        since = max(EPOCH_MS, int(cursors.get(endpoint, EPOCH_MS)) - OVERLAP_MS)
        items: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {}
        for _ in range(MAX_PAGES):
            page = await self._call(fetch, None, since, None, params)
            fresh = [i for i in page if str(i.get("id")) not in items]
            for item in fresh:
                items[str(item.get("id"))] = item
            if not fresh:
                break
            oldest = min(int(i["timestamp"]) for i in page)
            if oldest < since:
                break
            # the oldest instant is asked again: ``until`` itself where it is inclusive
            params = {"until": oldest + (1 if endpoint in self.exchange.until_exclusive else 0)}
        if items:
            cursors[endpoint] = max(int(i["timestamp"]) for i in items.values())
        return list(items.values())

    # --- prices ---------------------------------------------------------------------------

    async def _prices(
        self, assets: set[str], quote: str
    ) -> tuple[dict[str, Decimal], dict[str, tuple[str, Decimal]]]:
        """Each asset's price in ``quote`` from the exchange's tickers: a direct pair, its
        inverse, or through one bridge asset (USDT, BTC…). An asset with no route to ``quote``
        is priced instead in a fiat currency the ECB fixes and the exchange quotes (EUR first;
        a fiat balance is its own price, 1): returned as asset → (that currency, price), for
        ``_convert``. One tickers call."""
        markets = self.ex.markets or {}
        fiats = _fiats(markets, quote)
        routes: dict[str, tuple[str, list[tuple[str, bool]]]] = {}
        for asset in assets - {quote}:
            if route := _route(markets, asset, quote):
                routes[asset] = (quote, route)
            elif asset in ECB_CURRENCIES:
                routes[asset] = (asset, [])  # fiat cash: converted at the reference rate itself
            else:
                for fiat in fiats:
                    if route := _route(markets, asset, fiat):
                        routes[asset] = (fiat, route)
                        break
        symbols = sorted({symbol for _, route in routes.values() for symbol, _ in route})
        tickers = await self._call(self.ex.fetch_tickers, symbols) if symbols else {}
        prices: dict[str, Decimal] = {}
        in_fiat: dict[str, tuple[str, Decimal]] = {}
        for asset, (currency, route) in routes.items():
            price: Decimal | None = Decimal(1)
            for symbol, inverse in route:
                last = (tickers.get(symbol) or {}).get("last")
                if price is None or last in (None, "") or Decimal(last) == 0:
                    price = None
                    break
                price = price / Decimal(last) if inverse else price * Decimal(last)
            if price is not None and currency == quote:
                prices[asset] = price
            elif price is not None:
                in_fiat[asset] = (currency, price)
        return prices, in_fiat

    async def _convert(
        self, in_fiat: dict[str, tuple[str, Decimal]], quote: str
    ) -> dict[str, mappers.FiatPrice]:
        """Prices in another fiat currency with the reference rate to ``quote`` of the sync's
        day, and a message saying so (or saying why there is no value: no rate stored yet)."""
        name, rates = self.exchange.display_name, self.session.rates
        converted: dict[str, mappers.FiatPrice] = {}
        for fiat in sorted({currency for currency, _ in in_fiat.values()}):
            assets = sorted(a for a, (currency, _) in in_fiat.items() if currency == fiat)
            rate = None if rates is None else await rates.rate(fiat, quote)
            converted |= {a: mappers.FiatPrice(in_fiat[a][1], fiat, rate) for a in assets}
            which = ", ".join(assets)
            if rate is None:
                self.session.warnings.append(
                    f"{name} has no {quote} price for {which}: they are priced in {fiat}, and no "
                    f"{fiat}→{quote} ECB reference rate is stored yet (finsync stores them with its "
                    "daily market data refresh), so they keep their quantities without a value and "
                    "the account's balance is unknown until then"
                )
            else:
                self.session.warnings.append(
                    f"{name} has no {quote} price for {which}: valued at {name}'s {fiat} prices, "
                    f"converted at the ECB reference rate of {rate.day} "
                    f"(1 {fiat} = {rate.value.normalize():f} {quote})"
                )
        return converted

    # --- plumbing ---------------------------------------------------------------------------

    def _nonce(self) -> int:
        """ccxt's nonce (milliseconds), strictly increasing even for two calls in one millisecond."""
        self._last_nonce = max(int(self._ccxt_nonce()), self._last_nonce + 1)
        return self._last_nonce

    def _quote(self) -> str:
        quote = credential(self.session, "quote_currency").upper() or "USD"
        if not is_iso_currency(quote):
            raise InvalidInput(
                f"quote_currency must be an ISO-4217 currency such as USD or EUR, not {quote!r}"
            )
        return quote

    def _account_id(self, balance: dict[str, Any]) -> str:
        info: dict[str, Any] = balance["info"] if isinstance(balance.get("info"), dict) else {}
        if self.exchange.uid_field and info.get(self.exchange.uid_field) not in (None, ""):
            return f"uid:{info[self.exchange.uid_field]}"
        return "key:" + hashlib.sha256(str(self.ex.apiKey).encode()).hexdigest()[:24]

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """One ccxt call, its errors as finsync's; an invalid nonce is retried once."""
        ccxt = _ccxt()
        for attempt in (1, 2):
            try:
                return await fn(*args)
            except ccxt.InvalidNonce as exc:
                if attempt == 2:
                    raise Unavailable(
                        f"{self.exchange.display_name} refused the request's nonce twice "
                        f"({self._text(exc)}): this server's clock may be wrong, or another "
                        "application uses the same API key; give finsync a key of its own"
                    ) from None
                if self.exchange.adjusts_clock:
                    await self.ex.load_time_difference()
            except ccxt.BaseError as exc:
                raise await self._translate(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _translate(self, exc: Exception) -> ProviderError:
        ccxt, name, text = _ccxt(), self.exchange.display_name, self._text(exc)
        now = self.clock.now()
        # 429, 418 and the exchanges' "too many requests" (OKX's 50011 is RateLimitExceeded, which
        # is not a DDoSProtection in ccxt 4.5)
        if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
            until = banned_until(str(exc))
            if until is not None or " 418 " in str(exc):
                until = until or now + 3600
                await self.budget.ban(until)
                at = datetime.fromtimestamp(until, UTC)
                return RateLimited(
                    f"{name} has banned this server's IP address until {at.isoformat()} "
                    "(too many requests); finsync waits until then",
                    retry_after=until - now,
                    retry_at=at,
                )
            headers = getattr(self.ex, "last_response_headers", None) or {}
            wait = _seconds(headers.get("Retry-After") or headers.get("retry-after")) or 60.0
            await self.budget.ban(now + wait)  # every connection of this exchange waits: no 418
            return RateLimited(
                f"{name} rate limit reached; retry after {int(wait)} s",
                retry_after=wait,
                retry_at=datetime.fromtimestamp(now + wait, UTC),
            )
        if isinstance(exc, ccxt.OnMaintenance):
            return Unavailable(f"{name} is under maintenance ({text}); finsync retries later")
        if isinstance(exc, ccxt.ExchangeNotAvailable):
            return Unavailable(f"{name} is unavailable ({text}); finsync retries later")
        if isinstance(exc, (ccxt.ExchangeNotAvailable, ccxt.RequestTimeout, ccxt.NetworkError)):
            return Unavailable(f"{name} is not answering ({type(exc).__name__}); finsync retries later")
        if isinstance(exc, ccxt.AuthenticationError) or any(m in str(exc) for m in self.exchange.auth_errors):
            return ProviderAuthError(f"{name} refused the API key: {text}")
        if isinstance(exc, ccxt.BadSymbol):
            return BadData(f"{name} does not know a symbol finsync asked for: {text}")
        return ProviderError(f"{name} answered with an error: {text}")

    def _text(self, exc: Exception) -> str:
        """The exchange's own words without URLs (some carry the key) or any secret."""
        text = _QUERY.sub("<url>", str(exc)).removeprefix(f"{self.ex.id} ").strip()
        for value in self._secrets:
            text = text.replace(value, "<redacted>")
        return text[:300]


def _route(markets: dict[str, Any], asset: str, quote: str) -> list[tuple[str, bool]]:
    """Symbols (and whether to invert each) that price ``asset`` in ``quote``."""
    if f"{asset}/{quote}" in markets:
        return [(f"{asset}/{quote}", False)]
    if f"{quote}/{asset}" in markets:
        return [(f"{quote}/{asset}", True)]
    for bridge in BRIDGES:
        if bridge in (asset, quote) or f"{asset}/{bridge}" not in markets:
            continue
        if f"{bridge}/{quote}" in markets:
            return [(f"{asset}/{bridge}", False), (f"{bridge}/{quote}", False)]
        if f"{quote}/{bridge}" in markets:
            return [(f"{asset}/{bridge}", False), (f"{quote}/{bridge}", True)]
    return []


def _fiats(markets: dict[str, Any], quote: str) -> list[str]:
    """Fiat currencies (fixed by the ECB) the exchange has markets in, other than ``quote``:
    EUR first (every ECB rate is per euro: one fixing, no cross), then by number of markets."""
    count: dict[str, int] = {}
    for market in markets.values():
        for side in (market.get("base"), market.get("quote")):
            if side in ECB_CURRENCIES and side != quote:
                count[side] = count.get(side, 0) + 1
    return sorted(count, key=lambda c: (c != EUR, -count[c], c))


def _seconds(value: Any) -> float | None:
    try:
        return max(1.0, float(value))
    except (TypeError, ValueError):
        return None


def factory(exchange: Exchange) -> AdapterFactory:
    """The registry's adapter factory for one exchange."""

    def create_adapter(
        session: ProviderSession, settings: ExchangeSettings, *_: Any, **host: Unpack[HostOptions]
    ) -> ExchangeAdapter:
        return ExchangeAdapter(exchange, session, settings, **host)

    return create_adapter
