"""Valuation in a chosen currency: rates with their dates, holdings at market prices, net worth.

An account's value on a day is its holdings at that day's closes plus its cash, when its
holdings were recorded that day and every position has a close; otherwise its last known
balance. Credit cards and loans count as liabilities (negative, whatever sign the provider
reports); any other negative balance (an overdraft) is a liability too.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from finsync.domain.analytics_ports import PositionSpan
from finsync.domain.entities import Account, Holding, User
from finsync.domain.enums import AccountType
from finsync.domain.fx import Rate, RateBook, in_minor_units
from finsync.domain.market import Instrument, PriceBar, instrument_key
from finsync.domain.ports import AccountFilter, PageRequest, UnitOfWork, UnitOfWorkFactory
from finsync.domain.reach import Duplicates, resolve
from finsync.domain.worth import LIABILITY_TYPES, signed

__all__ = ["LIABILITY_TYPES", "signed"]

ACCOUNT_CATEGORY = {
    AccountType.CHECKING: "cash",
    AccountType.SAVINGS: "cash",
    AccountType.CREDIT_CARD: "credit",
    AccountType.LOAN: "loans",
    AccountType.BROKERAGE: "investments",
    AccountType.ISA: "investments",
    AccountType.RETIREMENT: "retirement",
    AccountType.CRYPTO_WALLET: "crypto",
    AccountType.OTHER: "other",
}
_FX_LOOKBACK = timedelta(days=14)  # enough to find the last fixing before any day (holidays)


def base_currency(user: User, default: str) -> str:
    return user.base_currency or default


async def all_accounts(uow: UnitOfWork, user_id: UUID) -> list[Account]:
    found: list[Account] = []
    page = PageRequest(limit=500)
    while True:
        result = await uow.accounts.find(user_id, AccountFilter(), page)
        found += result.items
        if result.next_key is None:
            return found
        page = PageRequest(limit=500, after=result.next_key)


async def duplicates(uow: UnitOfWork, user_id: UUID, now: datetime) -> Duplicates:
    """Accounts reached through two connections, and which of each pair counts (domain/reach.py)."""
    return resolve(await uow.accounts.reaches(user_id), now)


async def load_book(
    uow: UnitOfWork, until: date, since: date | None = None, currencies: Collection[str] | None = None
) -> RateBook:
    """Fixings up to ``until`` (from ``since`` on, plus the last before it) as a RateBook."""
    return RateBook.of(await uow.market.fixings(until, since, currencies))


class StoredRates:
    """``ReferenceRates`` over the stored fixings, for one day (a sync's): read only when an
    adapter asks (most never do), each pair once, in a short transaction of its own, so the
    provider calls around it hold no database connection."""

    def __init__(self, uow: UnitOfWorkFactory, day: date) -> None:
        self._uow, self.day = uow, day
        self._known: dict[tuple[str, str], Rate | None] = {}

    async def rate(self, base: str, quote: str) -> Rate | None:
        key = (base.upper(), quote.upper())
        if key not in self._known:
            async with self._uow() as uow:
                book = await load_book(uow, self.day, self.day, set(key))
            self._known[key] = book.rate(*key, self.day)
        return self._known[key]


@dataclass(frozen=True, slots=True)
class Converted:
    """An amount in the target currency with the rate used and the fixing day it came from."""

    amount: Decimal
    currency: str
    rate: Decimal
    rate_date: date | None


def convert(book: RateBook, amount: Decimal, base: str, target: str, day: date) -> Converted | None:
    result = book.convert(amount, base, target, day)
    if result is None:
        return None
    value, rate = result
    return Converted(value, target, rate.value, rate.day)


@dataclass(slots=True)
class Prices:
    """Closes per instrument key, looked up as the last close on or before a day."""

    instruments: dict[str, Instrument] = field(default_factory=dict)
    days: dict[str, list[date]] = field(default_factory=dict)
    bars: dict[str, list[PriceBar]] = field(default_factory=dict)

    @classmethod
    async def load(
        cls, uow: UnitOfWork, keys: Collection[str], until: date, since: date | None = None
    ) -> Prices:
        wanted = {i.id: i for i in await uow.market.instruments() if i.key in keys}
        closes = await uow.market.closes(list(wanted), until, since)
        prices = cls()
        for iid, bars in closes.items():
            key = wanted[iid].key
            prices.instruments[key] = wanted[iid]
            prices.days[key] = [b.day for b in bars]
            prices.bars[key] = bars
        return prices

    def close(self, key: str, day: date) -> PriceBar | None:
        days = self.days.get(key)
        if not days:
            return None
        at = bisect.bisect_right(days, day) - 1
        return self.bars[key][at] if at >= 0 else None


def held_on(spans: Sequence[PositionSpan], day: date) -> list[PositionSpan]:
    return [s for s in spans if s.valid_from <= day and (s.valid_to is None or s.valid_to > day)]


def revalue(
    spans: Sequence[PositionSpan],
    cash: Decimal | None,
    account_currency: str,
    day: date,
    prices: Prices,
    book: RateBook,
    target: str,
) -> Decimal | None:
    """Cash plus each position at its close, in ``target`` (unrounded); None when the cash or
    any position's close or rate is unknown (the caller then uses the stored balance)."""
    if cash is None:
        return None
    rate = book.rate(account_currency, target, day)
    if rate is None:
        return None
    total = cash * rate.value
    for span in spans:
        bar = prices.close(span.instrument_key, day)
        if bar is None:
            return None
        price_rate = book.rate(bar.currency, target, day)
        if price_rate is None:
            return None
        total += span.quantity * bar.close * price_rate.value
    return total


@dataclass(slots=True)
class HoldingValue:
    holding: Holding
    price: Decimal | None
    price_currency: str | None
    price_date: date | None
    price_source: str  # "market:<source>" or "provider"
    value: Converted | None


def value_holdings(
    holdings: Sequence[Holding], prices: Prices, book: RateBook, target: str, day: date
) -> list[HoldingValue]:
    """Each holding at our latest close when its instrument is priced, else at the provider's price."""
    out = []
    for h in holdings:
        bar = prices.close(instrument_key(h.isin, h.cusip, h.symbol), day)
        if bar is not None:
            at_market = h.quantity * bar.close
            out.append(
                HoldingValue(
                    h,
                    bar.close,
                    bar.currency,
                    bar.day,
                    f"market:{bar.source}",
                    convert(book, at_market, bar.currency, target, day),
                )
            )
            continue
        amount = h.market_value
        if amount is None and h.current_price is not None:
            amount = h.quantity * h.current_price
        value = None if amount is None else convert(book, amount, h.currency, target, day)
        out.append(HoldingValue(h, h.current_price, h.currency, None, "provider", value))
    return out


def rounded(amount: Decimal, currency: str) -> Decimal:
    return in_minor_units(amount, currency)
