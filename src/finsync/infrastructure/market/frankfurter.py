"""Frankfurter: the ECB's reference rates as JSON, an optional second FX source."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from finsync.domain.errors import BadData
from finsync.domain.market import EUR, FxFixing
from finsync.providers.http import SHARED_BUCKET, ProviderHttp, RateLimit

NAME = "frankfurter"
LIMITS = {SHARED_BUCKET: RateLimit(30, 60.0)}


def parse_range(body: Any, source: str = NAME) -> list[FxFixing]:
    """``{"base":"EUR","rates":{"2024-01-02":{"USD":1.0956}}}`` (a single day has ``date`` + flat rates)."""
    if not isinstance(body, dict) or body.get("base") != EUR:
        raise BadData("Frankfurter: expected rates with base EUR")
    rates = body.get("rates")
    if isinstance(rates, dict) and "date" in body and all(not isinstance(v, dict) for v in rates.values()):
        rates = {body["date"]: rates}
    if not isinstance(rates, dict):
        raise BadData("Frankfurter: no rates in the answer")
    fixings: list[FxFixing] = []
    for day_text, per_day in rates.items():
        try:
            day = date.fromisoformat(day_text)
        except (TypeError, ValueError):
            raise BadData(f"Frankfurter: bad date {str(day_text)[:20]!r}") from None
        if not isinstance(per_day, dict):
            raise BadData("Frankfurter: rates of a day must be an object")
        for currency, value in per_day.items():
            rate = Decimal(str(value))
            if rate.is_finite() and rate > 0:
                fixings.append(FxFixing(str(currency).upper(), day, rate, source))
    return fixings


class FrankfurterSource:
    name = NAME

    def __init__(self, base_url: str, **http: Any) -> None:
        self._http = ProviderHttp(provider=NAME, base_url=base_url, limits=LIMITS, **http)

    async def fixings(self, start: date, end: date) -> list[FxFixing]:
        path = f"/{start.isoformat()}..{end.isoformat()}" if start < end else f"/{start.isoformat()}"
        body = await self._http.get_json(path, endpoint="rates", params={"from": EUR})
        return [f for f in parse_range(body) if start <= f.day <= end]

    async def aclose(self) -> None:
        await self._http.aclose()
