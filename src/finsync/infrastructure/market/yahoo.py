"""Yahoo Finance's chart endpoint (unofficial, no key): daily closes, splits, exchange time zone.

Traps handled here: closes of listings quoted in pence (``GBp``) are divided into pounds;
bars are stamped at the session's start in UTC, so the day is read in the exchange's own
time zone (an FX bar at 23:00 UTC is the next calendar day in London); ``close`` is
split-adjusted retroactively, so each close is multiplied back by the splits that came
after it: a past day is valued with the price as traded that day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from finsync.domain.enums import AssetType
from finsync.domain.errors import BadData, ProviderError
from finsync.domain.market import Instrument, PriceBar, to_major_unit
from finsync.providers.http import ProviderHttp, RateLimit

NAME = "yahoo"
# Unofficial and unpublished: keep well below what gets a 429.
LIMITS = {"chart": RateLimit(60, 60.0), "search": RateLimit(30, 60.0)}
HEADERS = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) finsync"}


def _zone(meta: dict[str, Any]) -> timezone | ZoneInfo:
    name = meta.get("exchangeTimezoneName")
    if isinstance(name, str):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    offset = meta.get("gmtoffset")
    return timezone(timedelta(seconds=int(offset))) if isinstance(offset, int | Decimal) else UTC


def _splits(result: dict[str, Any], zone: timezone | ZoneInfo) -> list[tuple[date, Decimal]]:
    events = (result.get("events") or {}).get("splits") or {}
    splits = []
    for event in events.values():
        try:
            ratio = Decimal(str(event["numerator"])) / Decimal(str(event["denominator"]))
            day = datetime.fromtimestamp(int(event["date"]), UTC).astimezone(zone).date()
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise BadData("Yahoo chart: unreadable split event") from None
        if ratio > 0:
            splits.append((day, ratio))
    return splits


def parse_chart(body: Any, source: str = NAME) -> list[PriceBar]:
    """Daily closes as traded, in the major currency unit; null closes (no trading) are skipped."""
    chart = body.get("chart") if isinstance(body, dict) else None
    results = chart.get("result") if isinstance(chart, dict) else None
    if not results:
        raise BadData("Yahoo chart: no result")
    result = results[0]
    meta = result.get("meta") or {}
    currency = meta.get("currency")
    if not isinstance(currency, str) or not currency:
        raise BadData("Yahoo chart: no currency in meta")
    zone = _zone(meta)
    stamps = result.get("timestamp") or []
    quotes = (result.get("indicators") or {}).get("quote") or [{}]
    closes = quotes[0].get("close") or []
    if len(closes) != len(stamps):
        raise BadData("Yahoo chart: timestamps and closes differ in length")
    splits = _splits(result, zone)
    bars: dict[date, PriceBar] = {}
    for stamp, close in zip(stamps, closes, strict=True):
        if close is None:
            continue
        day = datetime.fromtimestamp(int(stamp), UTC).astimezone(zone).date()
        value = Decimal(str(close))
        for split_day, ratio in splits:  # undo the retroactive split adjustment
            if day < split_day:
                value *= ratio
        amount, major = to_major_unit(value, currency)
        bars[day] = PriceBar(day, amount, major, source)
    return sorted(bars.values(), key=lambda b: b.day)


def _unix(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp())


class YahooSource:
    name = NAME

    def __init__(self, base_url: str, **http: Any) -> None:
        self._http = ProviderHttp(provider=NAME, base_url=base_url, limits=LIMITS, headers=HEADERS, **http)

    def handles(self, instrument: Instrument) -> bool:
        return True

    async def symbol_for(self, instrument: Instrument) -> str | None:
        """The instrument's Yahoo symbol: known, found by ISIN, crypto as ``BTC-USD``, else the ticker."""
        if NAME in instrument.symbols:
            return instrument.symbols[NAME]
        if instrument.asset_type is AssetType.CRYPTO:
            return f"{instrument.symbol.upper()}-{instrument.currency or 'USD'}"
        if instrument.isin:
            body = await self._http.get_json(
                "/v1/finance/search", endpoint="search", params={"q": instrument.isin, "quotesCount": 5}
            )
            quotes = body.get("quotes") if isinstance(body, dict) else None
            for quote in quotes or []:
                if isinstance(quote, dict) and isinstance(quote.get("symbol"), str):
                    return str(quote["symbol"])
            return None
        return instrument.symbol

    async def history(self, symbol: str, start: date, end: date) -> list[PriceBar]:
        params = {
            "period1": _unix(start),
            "period2": _unix(end + timedelta(days=1)),
            "interval": "1d",
            "events": "div,splits",
        }
        try:
            body = await self._http.get_json(f"/v8/finance/chart/{symbol}", endpoint="chart", params=params)
        except ProviderError as exc:
            if type(exc) is ProviderError:  # a plain 4xx (404 for an unknown symbol): not here
                return []
            raise
        return [b for b in parse_chart(body) if start <= b.day <= end]

    async def aclose(self) -> None:
        await self._http.aclose()
