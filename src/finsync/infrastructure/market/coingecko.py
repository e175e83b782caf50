"""CoinGecko crypto prices: ids are slugs (``bitcoin``) found from symbols via ``/coins/list``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from finsync.domain.enums import AssetType
from finsync.domain.errors import BadData
from finsync.domain.market import Instrument, PriceBar
from finsync.providers.http import SHARED_BUCKET, ProviderHttp, RateLimit

NAME = "coingecko"
LIMITS = {SHARED_BUCKET: RateLimit(30, 60.0)}


def parse_market_chart(body: Any, currency: str, source: str = NAME) -> list[PriceBar]:
    """``{"prices": [[ms, price], …]}`` → the last price of each UTC day."""
    prices = body.get("prices") if isinstance(body, dict) else None
    if not isinstance(prices, list):
        raise BadData("CoinGecko: no prices in the answer")
    last: dict[date, PriceBar] = {}
    for point in prices:
        try:
            stamp, value = point
            day = datetime.fromtimestamp(int(stamp) / 1000, UTC).date()
            last[day] = PriceBar(day, Decimal(str(value)), currency, source)
        except (TypeError, ValueError, ArithmeticError):
            raise BadData("CoinGecko: unreadable price point") from None
    return sorted(last.values(), key=lambda b: b.day)


class CoinGeckoSource:
    name = NAME

    def __init__(self, base_url: str, api_key: str | None = None, quote: str = "usd", **http: Any) -> None:
        headers = {"x-cg-demo-api-key": api_key} if api_key else None
        self._quote = quote.lower()
        self._ids: dict[str, list[str]] | None = None
        self._http = ProviderHttp(
            provider=NAME, base_url=base_url, limits=LIMITS, headers=headers, account=api_key, **http
        )

    def handles(self, instrument: Instrument) -> bool:
        return instrument.asset_type is AssetType.CRYPTO

    async def symbol_for(self, instrument: Instrument) -> str | None:
        """The coin id for the symbol; symbols are not unique, so an ambiguous one stays unmatched
        unless an id equals the name (``bitcoin``)."""
        if NAME in instrument.symbols:
            return instrument.symbols[NAME]
        if self._ids is None:
            body = await self._http.get_json("/coins/list", endpoint="coins-list")
            ids: dict[str, list[str]] = {}
            for coin in body if isinstance(body, list) else []:
                if isinstance(coin, dict) and coin.get("symbol") and coin.get("id"):
                    ids.setdefault(str(coin["symbol"]).lower(), []).append(str(coin["id"]))
            self._ids = ids
        found = self._ids.get(instrument.symbol.lower(), [])
        if len(found) == 1:
            return found[0]
        name = (instrument.name or "").lower().replace(" ", "-")
        return name if name in found else None

    async def history(self, symbol: str, start: date, end: date) -> list[PriceBar]:
        params = {
            "vs_currency": self._quote,
            "from": int(datetime.combine(start, time(), UTC).timestamp()),
            "to": int(datetime.combine(end + timedelta(days=1), time(), UTC).timestamp()),
        }
        body = await self._http.get_json(
            f"/coins/{symbol}/market_chart/range", endpoint="range", params=params
        )
        bars = parse_market_chart(body, self._quote.upper())
        return [b for b in bars if start <= b.day <= end]

    async def aclose(self) -> None:
        await self._http.aclose()
