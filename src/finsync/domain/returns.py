"""Return figures: time-weighted (Modified Dietz chained between valuations) and money-weighted (XIRR).

Exact Decimal arithmetic throughout, except XIRR, whose root is found by ``pyxirr`` in
floating point; its result is converted to a Decimal rounded to ``RETURN_PLACES``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise

import pyxirr

RETURN_PLACES = Decimal("1e-9")
TWR_METHOD = "modified-dietz-chained"


@dataclass(frozen=True, slots=True)
class Figure:
    """A return as a fraction (0.0834 = 8.34 %), or None with the reason it does not exist."""

    value: Decimal | None
    reason: str | None = None


def _rounded(value: Decimal) -> Decimal:
    return value.quantize(RETURN_PLACES, rounding=ROUND_HALF_EVEN)


def modified_dietz(
    start: date, start_value: Decimal, end: date, end_value: Decimal, flows: Sequence[tuple[date, Decimal]]
) -> Decimal | None:
    """Return of one period (start, end] with external flows weighted by the time they were invested.

    A flow on day t (start < t <= end) counts (end - t) / (end - start) of the period: flows are
    at the end of their day, so one on ``end`` is already in ``end_value`` and weighs nothing.
    None when no capital was at work (the weighted denominator is not positive).
    """
    length = (end - start).days
    if length <= 0:
        raise ValueError("a period must end after it starts")
    net = sum((amount for _, amount in flows), Decimal(0))
    weighted = sum((amount * (end - day).days / length for day, amount in flows), Decimal(0))
    base = start_value + weighted
    if base <= 0:
        return None
    return (end_value - start_value - net) / base


def time_weighted_return(
    values: Sequence[tuple[date, Decimal]], flows: Sequence[tuple[date, Decimal]]
) -> Figure:
    """Chain Modified Dietz returns between consecutive valuations: prod(1 + r_i) - 1.

    ``values`` are end-of-day account values (one per day, sorted); ``flows`` external money
    in (+) and out (-) of the account. Flows on or before the first valuation are ignored:
    they are part of it. Periods without capital at work are skipped.
    """
    if len(values) < 2:
        return Figure(None, "at least two valuations are needed in the period")
    growth, counted = Decimal(1), 0
    pending = sorted(flows)
    at = 0
    while at < len(pending) and pending[at][0] <= values[0][0]:
        at += 1
    for (start, v0), (end, v1) in pairwise(values):
        period: list[tuple[date, Decimal]] = []
        while at < len(pending) and pending[at][0] <= end:
            period.append(pending[at])
            at += 1
        r = modified_dietz(start, v0, end, v1, period)
        if r is not None:
            growth *= 1 + r
            counted += 1
    if not counted:
        return Figure(None, "no capital was invested between the valuations")
    return Figure(_rounded(growth - 1))


def xirr(flows: Sequence[tuple[date, Decimal]]) -> Figure:
    """Money-weighted return: the annual rate r with sum(a / (1 + r) ** (days / 365)) = 0.

    Days count actual/365 (as spreadsheets do). Amounts are from the investor's side: money
    put in is negative, money taken out (and the final value) positive.
    """
    cleaned = [(day, amount) for day, amount in flows if amount != 0]
    if not any(a < 0 for _, a in cleaned) or not any(a > 0 for _, a in cleaned):
        return Figure(None, "money-weighted return needs money both paid in and taken out (or held)")
    if len({day for day, _ in cleaned}) < 2:
        return Figure(None, "money-weighted return needs flows on at least two different days")
    try:
        result = pyxirr.xirr([d for d, _ in cleaned], [float(a) for _, a in cleaned])
    except (pyxirr.InvalidPaymentsError, ValueError) as exc:
        return Figure(None, f"no rate solves these flows ({exc})")
    if result is None or not math.isfinite(result):
        return Figure(None, "no rate solves these flows (the solver did not converge)")
    return Figure(_rounded(Decimal(repr(result))))
