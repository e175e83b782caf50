"""Currency conversion over stored euro fixings: cross rates through EUR, last fixing carried forward."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from finsync.domain.market import EUR

RATE_PLACES = Decimal("1e-10")  # cross rates are rounded here, and conversions use the rounded rate
_ZERO_DECIMALS = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "PYG", "UGX", "XAF", "XOF"})
_THREE_DECIMALS = frozenset({"BHD", "KWD", "OMR", "JOD", "TND", "IQD", "LYD"})


def minor_places(currency: str) -> Decimal:
    """The quantum of ``currency``'s smallest unit (ISO 4217 minor units)."""
    if currency in _ZERO_DECIMALS:
        return Decimal(1)
    if currency in _THREE_DECIMALS:
        return Decimal("0.001")
    return Decimal("0.01")


def in_minor_units(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_places(currency), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Rate:
    """``value`` units of ``quote`` per 1 ``base``, from the fixing(s) of ``day``."""

    base: str
    quote: str
    value: Decimal
    day: date | None  # None: same currency, no fixing needed


@dataclass(slots=True)
class RateBook:
    """Euro fixings per currency, sorted by day. A day without a fixing (weekend, TARGET holiday,
    not yet published) uses the last earlier one, and the rate says which day that was."""

    _days: dict[str, list[date]] = field(default_factory=dict)
    _rates: dict[str, list[Decimal]] = field(default_factory=dict)

    @classmethod
    def of(cls, fixings: Iterable[tuple[str, date, Decimal]]) -> RateBook:
        book = cls()
        rows = sorted(fixings, key=lambda f: (f[0], f[1]))
        for currency, day, rate in rows:
            book._days.setdefault(currency, []).append(day)
            book._rates.setdefault(currency, []).append(rate)
        return book

    def currencies(self) -> set[str]:
        return {EUR, *self._days}

    def per_euro(self, currency: str, day: date) -> tuple[Decimal, date | None] | None:
        """Units of ``currency`` per EUR on ``day`` and the fixing day used; None before any fixing."""
        if currency == EUR:
            return Decimal(1), None
        days = self._days.get(currency)
        if not days:
            return None
        at = bisect.bisect_right(days, day) - 1
        if at < 0:
            return None
        return self._rates[currency][at], days[at]

    def rate(self, base: str, quote: str, day: date) -> Rate | None:
        """``quote`` per ``base`` on ``day`` (cross through EUR); None when either has no fixing yet."""
        if base == quote:
            return Rate(base, quote, Decimal(1), None)
        b, q = self.per_euro(base, day), self.per_euro(quote, day)
        if b is None or q is None:
            return None
        used = [d for d in (b[1], q[1]) if d is not None]
        value = (q[0] / b[0]).quantize(RATE_PLACES, rounding=ROUND_HALF_EVEN)
        return Rate(base, quote, value, min(used) if used else None)

    def _walk(self, currency: str, days: Sequence[date]) -> list[int]:
        """For each sorted day, the index of ``currency``'s last fixing on or before it (-1: none)."""
        fixed = self._days.get(currency, [])
        out, at = [], -1
        for day in days:
            while at + 1 < len(fixed) and fixed[at + 1] <= day:
                at += 1
            out.append(at)
        return out

    def series(self, base: str, quote: str, days: Sequence[date]) -> list[Rate | None]:
        """``rate(base, quote, day)`` for many sorted days at once: one division per fixing
        change, not per day (history charts ask for thousands of days)."""
        if base == quote:
            return [Rate(base, quote, Decimal(1), None)] * len(days)
        b = [0] * len(days) if base == EUR else self._walk(base, days)
        q = [0] * len(days) if quote == EUR else self._walk(quote, days)
        b_days, b_rates = self._days.get(base, []), self._rates.get(base, [])
        q_days, q_rates = self._days.get(quote, []), self._rates.get(quote, [])
        one = Decimal(1)
        out: list[Rate | None] = []
        last_key: tuple[int, int] | None = None
        last: Rate | None = None
        for bi, qi in zip(b, q, strict=True):
            if (bi, qi) != last_key:
                last_key = (bi, qi)
                if bi < 0 or qi < 0:
                    last = None
                else:
                    b_rate, b_day = (one, None) if base == EUR else (b_rates[bi], b_days[bi])
                    q_rate, q_day = (one, None) if quote == EUR else (q_rates[qi], q_days[qi])
                    used = [d for d in (b_day, q_day) if d is not None]
                    value = (q_rate / b_rate).quantize(RATE_PLACES, rounding=ROUND_HALF_EVEN)
                    last = Rate(base, quote, value, min(used) if used else None)
            out.append(last)
        return out

    def convert(self, amount: Decimal, base: str, quote: str, day: date) -> tuple[Decimal, Rate] | None:
        """``amount`` of ``base`` in ``quote``, rounded to its minor unit, with the rate used."""
        rate = self.rate(base, quote, day)
        if rate is None:
            return None
        return in_minor_units(amount * rate.value, quote), rate
