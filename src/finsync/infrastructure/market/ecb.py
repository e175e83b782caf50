"""ECB euro foreign exchange reference rates (free, no key): daily, 90-day and full-history XML."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from finsync.domain.errors import BadData
from finsync.domain.market import FxFixing, fixing_days, last_fixing_day
from finsync.providers.http import SHARED_BUCKET, ProviderHttp, RateLimit

NAME = "ecb"
# A static file behind a CDN: no published limit; stay polite.
LIMITS = {SHARED_BUCKET: RateLimit(10, 60.0)}
_RECENT_DAYS = 85  # the 90-day file covers ranges starting this recently
_FILES = ("eurofxref-daily.xml", "eurofxref-hist-90d.xml", "eurofxref-hist.xml")  # smallest first


def parse_fixings(xml: bytes, source: str = NAME) -> list[FxFixing]:
    """``Cube time=… / Cube currency=… rate=…`` → fixings (units per EUR). Entity expansion is off."""
    try:
        root = ElementTree.fromstring(xml, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise BadData(f"ECB reference rates are not readable XML ({type(exc).__name__})") from None
    fixings: list[FxFixing] = []
    for cube in root.iter():
        if not cube.tag.endswith("Cube") or "time" not in cube.attrib:
            continue
        try:
            day = date.fromisoformat(cube.attrib["time"])
        except ValueError:
            raise BadData(f"ECB reference rates: bad date {cube.attrib['time'][:20]!r}") from None
        for entry in cube:
            currency, rate = entry.attrib.get("currency"), entry.attrib.get("rate")
            if not currency or not rate:
                continue
            try:
                value = Decimal(rate)
            except InvalidOperation:
                raise BadData(f"ECB reference rates: bad rate for {currency} on {day}") from None
            if value.is_finite() and value > 0:
                fixings.append(FxFixing(currency.upper(), day, value, source))
    return fixings


class EcbSource:
    """Picks the smallest file that holds every fixing day of the range: the daily file (the
    latest fixing only), the last 90 days, or the full history."""

    name = NAME

    def __init__(self, base_url: str, today: date, **http: Any) -> None:
        self._today = today
        self._http = ProviderHttp(provider=NAME, base_url=base_url, limits=LIMITS, **http)

    def _first_file(self, needed: list[date]) -> int:
        if needed == [last_fixing_day(self._today)]:
            return 0
        return 1 if needed[0] >= self._today - timedelta(days=_RECENT_DAYS) else 2

    async def fixings(self, start: date, end: date) -> list[FxFixing]:
        """Fixings of ``start..end``. ``today`` is the refresh's day, not necessarily the
        publication's: a file that holds later days but starts after the first day needed (the
        daily file asked for a past day, the 90-day file for an old one) gives way to the next."""
        needed = fixing_days(start, end)
        if not needed:
            return []
        fixings: list[FxFixing] = []
        for name in _FILES[self._first_file(needed) :]:
            response = await self._http.request("GET", f"/{name}", endpoint=name)
            fixings = parse_fixings(response.content)
            days = {f.day for f in fixings}
            if not days or min(days) <= needed[0] or max(days) < needed[0]:
                break  # it covers the range, or nothing that recent is published yet
        return [f for f in fixings if start <= f.day <= end]

    async def aclose(self) -> None:
        await self._http.aclose()
