"""Tiingo end-of-day prices (API key): ``close`` is as traded, ``adjClose`` adjusted."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from finsync.domain.errors import BadData, ProviderError
from finsync.domain.market import Instrument, PriceBar, us_dollar_listing
from finsync.providers.http import SHARED_BUCKET, ProviderHttp, RateLimit

NAME = "tiingo"
LIMITS = {SHARED_BUCKET: RateLimit(50, 3600.0)}  # free tier: 50 an hour (1,000 a day)


def parse_prices(body: Any, currency: str, source: str = NAME) -> list[PriceBar]:
    if not isinstance(body, list):
        raise BadData("Tiingo prices: expected an array")
    bars = []
    for item in body:
        try:
            day = datetime.fromisoformat(str(item["date"]).replace("Z", "+00:00")).date()
            close = Decimal(str(item["close"]))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise BadData("Tiingo prices: unreadable item") from None
        bars.append(PriceBar(day, close, currency, source))
    return bars


class TiingoSource:
    name = NAME

    def __init__(self, base_url: str, api_key: str, **http: Any) -> None:
        headers = {"Authorization": f"Token {api_key}", "Content-Type": "application/json"}
        self._http = ProviderHttp(
            provider=NAME, base_url=base_url, limits=LIMITS, headers=headers, account=api_key, **http
        )
        self._currency: dict[str, str] = {}

    def handles(self, instrument: Instrument) -> bool:
        """US-listed tickers (Tiingo's end-of-day coverage), never crypto here."""
        return us_dollar_listing(instrument)

    async def symbol_for(self, instrument: Instrument) -> str | None:
        return instrument.symbols.get(NAME) or instrument.symbol.split(".")[0].lower()

    async def history(self, symbol: str, start: date, end: date) -> list[PriceBar]:
        params = {"startDate": start.isoformat(), "endDate": end.isoformat()}
        try:
            body = await self._http.get_json(
                f"/tiingo/daily/{symbol}/prices", endpoint="prices", params=params
            )
        except ProviderError as exc:
            if type(exc) is ProviderError:  # 404: unknown ticker
                return []
            raise
        return [b for b in parse_prices(body, "USD") if start <= b.day <= end]

    async def aclose(self) -> None:
        await self._http.aclose()
