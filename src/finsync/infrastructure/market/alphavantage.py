"""Alpha Vantage daily series (API key). A rate-limited answer is HTTP 200 with a ``Note`` or
``Information`` body instead of data: that is a rate limit, never an empty series."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from finsync.domain.errors import BadData, RateLimited
from finsync.domain.market import Instrument, PriceBar, us_dollar_listing
from finsync.providers.http import SHARED_BUCKET, ProviderHttp, RateLimit

NAME = "alphavantage"
LIMITS = {SHARED_BUCKET: RateLimit(5, 60.0)}  # free tier: 25 a day, bursts of 5 a minute
_SERIES = "Time Series (Daily)"


def parse_daily(body: Any, currency: str, source: str = NAME) -> list[PriceBar]:
    if not isinstance(body, dict):
        raise BadData("Alpha Vantage: expected an object")
    for key in ("Note", "Information"):
        if key in body:
            raise RateLimited("alphavantage rate limit reached (answered with a note)", retry_after=60.0)
    if "Error Message" in body:
        return []  # unknown symbol
    series = body.get(_SERIES)
    if not isinstance(series, dict):
        raise BadData("Alpha Vantage: no daily series in the answer")
    bars = []
    for day_text, values in series.items():
        try:
            bars.append(
                PriceBar(date.fromisoformat(day_text), Decimal(str(values["4. close"])), currency, source)
            )
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise BadData(f"Alpha Vantage: unreadable day {str(day_text)[:20]!r}") from None
    return sorted(bars, key=lambda b: b.day)


class AlphaVantageSource:
    name = NAME

    def __init__(self, base_url: str, api_key: str, today: date, **http: Any) -> None:
        self._key = api_key
        self._today = today
        self._http = ProviderHttp(
            provider=NAME, base_url=base_url, limits=LIMITS, secrets=[api_key], account=api_key, **http
        )

    def handles(self, instrument: Instrument) -> bool:
        """USD listings only: the daily series states no currency (a London series is in pence),
        so anything else is left to a source that says what it quotes in."""
        return us_dollar_listing(instrument)

    async def symbol_for(self, instrument: Instrument) -> str | None:
        return instrument.symbols.get(NAME) or instrument.symbol

    async def history(self, symbol: str, start: date, end: date) -> list[PriceBar]:
        full = start < self._today - timedelta(days=140)  # compact = the last 100 trading days
        params = {
            "function": "TIME_SERIES_DAILY",
            "symbol": symbol,
            "outputsize": "full" if full else "compact",
            "apikey": self._key,
        }
        body = await self._http.get_json("/query", endpoint="daily", params=params)
        return [b for b in parse_daily(body, "USD") if start <= b.day <= end]

    async def aclose(self) -> None:
        await self._http.aclose()
