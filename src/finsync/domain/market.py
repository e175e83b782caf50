"""Market data: instruments, daily closes, euro reference fixings, and the ports that fetch them.

Sources quote in their own conventions; everything here is normalised before it is stored:
prices in the major currency unit (London quotes pence), FX as units of a currency per euro
(the ECB's convention, so every cross rate goes through EUR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Protocol
from uuid import UUID

import holidays

from finsync.domain.entities import new_id
from finsync.domain.enums import AssetType

EUR = "EUR"

# Exchanges quote some listings in the currency's minor unit. The case matters: "GBp" is
# pence, "GBP" pounds; sources spell pence "GBp" or "GBX", South African cents "ZAc", and
# Israeli agorot "ILA".
MINOR_UNITS: dict[str, tuple[str, int]] = {
    "GBp": ("GBP", 100),
    "GBX": ("GBP", 100),
    "GBx": ("GBP", 100),
    "ZAc": ("ZAR", 100),
    "ZAC": ("ZAR", 100),
    "ILA": ("ILS", 100),
    "ILa": ("ILS", 100),
}


def to_major_unit(amount: Decimal, currency: str) -> tuple[Decimal, str]:
    """``(amount, currency)`` in the major unit: 1234.5 GBp → 12.345 GBP. Exact (division by 100)."""
    minor = MINOR_UNITS.get(currency.strip())
    if minor is None:
        return amount, currency.strip().upper()
    major, per_unit = minor
    return amount / per_unit, major


@lru_cache(maxsize=64)
def _target_closed(year: int) -> frozenset[date]:
    return frozenset(holidays.financial_holidays("XECB", years=year))


def is_target_holiday(day: date) -> bool:
    """TARGET closing days (1 Jan, Good Friday, Easter Monday, 1 May, 25-26 Dec): no ECB fixing."""
    return day in _target_closed(day.year)


def is_fixing_day(day: date) -> bool:
    """Whether the ECB publishes reference rates on ``day`` (TARGET working days only)."""
    return day.weekday() < 5 and not is_target_holiday(day)


def every_day(start: date, end: date) -> list[date]:
    """The days of ``start..end``, both included (none when ``end`` is before ``start``)."""
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def fixing_days(start: date, end: date) -> list[date]:
    """The days of ``start..end`` (inclusive) that have an ECB fixing."""
    return [day for day in every_day(start, end) if is_fixing_day(day)]


def last_fixing_day(day: date) -> date:
    """The latest day on or before ``day`` that has an ECB fixing."""
    while not is_fixing_day(day):
        day -= timedelta(days=1)
    return day


@dataclass(frozen=True, slots=True)
class FxFixing:
    """Units of ``currency`` per 1 EUR on ``day`` (ECB convention)."""

    currency: str
    day: date
    rate: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class PriceBar:
    """A day's close in the major currency unit. ``adjusted`` is True when the source only gave
    a split/dividend-adjusted close (then past closes change when a split happens)."""

    day: date
    close: Decimal
    currency: str
    source: str
    adjusted: bool = False


@dataclass(slots=True, kw_only=True)
class Instrument:
    """A priced security, shared by every user holding it. ``symbols`` maps a source name to
    the source's own identifier (Yahoo ``VOD.L``, CoinGecko ``bitcoin``, ...)."""

    key: str  # "isin:…", "cusip:…" or "ticker:…": how holdings are matched to it
    symbol: str
    id: UUID = field(default_factory=new_id)
    isin: str | None = None
    cusip: str | None = None
    exchange: str | None = None
    name: str | None = None
    asset_type: AssetType = AssetType.OTHER
    currency: str | None = None
    symbols: dict[str, str] = field(default_factory=dict)
    backfilled_from: date | None = None  # history is stored from this day on


def us_dollar_listing(instrument: Instrument) -> bool:
    """Not crypto and held in USD (or no stated currency): what a source whose series state no
    currency (Tiingo, Alpha Vantage's daily series, which are US listings in USD) may price."""
    return instrument.asset_type is not AssetType.CRYPTO and (instrument.currency or "USD") == "USD"


def instrument_key(isin: str | None, cusip: str | None, symbol: str, exchange: str | None = None) -> str:
    """Holdings are matched by ISIN, else CUSIP, else ticker (+ exchange when the provider gives one)."""
    if isin:
        return f"isin:{isin.strip().upper()}"
    if cusip:
        return f"cusip:{cusip.strip().upper()}"
    ticker = symbol.strip().upper()
    return f"ticker:{ticker}@{exchange.strip().upper()}" if exchange else f"ticker:{ticker}"


class FxSource(Protocol):
    """Euro reference rates for a range of days (inclusive)."""

    name: str

    async def fixings(self, start: date, end: date) -> list[FxFixing]: ...
    async def aclose(self) -> None: ...


class PriceSource(Protocol):
    """Daily closes of one instrument. ``symbol_for`` names it in the source's terms (None: the
    source cannot price it); ``history`` returns closes as traded on each day."""

    name: str

    def handles(self, instrument: Instrument) -> bool: ...
    async def symbol_for(self, instrument: Instrument) -> str | None: ...
    async def history(self, symbol: str, start: date, end: date) -> list[PriceBar]: ...
    async def aclose(self) -> None: ...


@dataclass(slots=True)
class MarketSources:
    """The sources one refresh run uses, in fallback order (built per run, closed after it)."""

    fx: list[FxSource] = field(default_factory=list)
    prices: list[PriceSource] = field(default_factory=list)

    async def aclose(self) -> None:
        for fx in self.fx:
            await fx.aclose()
        for prices in self.prices:
            await prices.aclose()


# Currencies the ECB publishes reference rates for (and EUR): what totals can be converted into.
ECB_CURRENCIES = frozenset(
    [
        "EUR",
        "USD",
        "JPY",
        "BGN",
        "CZK",
        "DKK",
        "GBP",
        "HUF",
        "PLN",
        "RON",
        "SEK",
        "CHF",
        "ISK",
        "NOK",
        "TRY",
        "AUD",
        "BRL",
        "CAD",
        "CNY",
        "HKD",
        "IDR",
        "ILS",
        "INR",
        "KRW",
        "MXN",
        "MYR",
        "NZD",
        "PHP",
        "SGD",
        "THB",
        "ZAR",
    ]
)
