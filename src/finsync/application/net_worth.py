"""Net worth in one currency: today (with its breakdowns) and over time.

History sums, per currency, every account's last known balance on each day (the database
adds balance deltas), then converts each currency's total at that day's rate. Accounts
whose value is not their plain balance (holdings revalued at market prices, liabilities
counted negative) are valued one by one on top.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from uuid import UUID

from finsync.application.valuation import (
    ACCOUNT_CATEGORY,
    Converted,
    Prices,
    all_accounts,
    base_currency,
    convert,
    duplicates,
    held_on,
    load_book,
    revalue,
    rounded,
    signed,
)
from finsync.domain.analytics_ports import Interval, PositionSpan, SnapshotValue
from finsync.domain.entities import Account, User, utcnow
from finsync.domain.errors import InvalidInput
from finsync.domain.fx import Rate, RateBook, minor_places
from finsync.domain.market import every_day
from finsync.domain.ports import Now, UnitOfWork

MAX_POINTS = 20_000
_LOOKBACK = timedelta(days=14)


@dataclass(slots=True)
class AccountWorth:
    account: Account
    category: str
    value: Converted
    valued_by: str  # "balance" or "holdings"


@dataclass(slots=True)
class NetWorth:
    currency: str
    as_of: date
    total: Decimal = Decimal(0)
    assets: Decimal = Decimal(0)
    liabilities: Decimal = Decimal(0)
    accounts: list[AccountWorth] = field(default_factory=list)
    by_category: dict[str, Decimal] = field(default_factory=dict)
    by_provider: dict[str, Decimal] = field(default_factory=dict)
    without_balance: list[Account] = field(default_factory=list)
    without_rate: list[Account] = field(default_factory=list)
    # Shadows: the same money counted through another connection's account (its id alongside).
    counted_elsewhere: list[tuple[Account, UUID]] = field(default_factory=list)


@dataclass(slots=True)
class History:
    currency: str
    interval: Interval
    points: list[tuple[date, Decimal]]
    missing_rates: list[str]
    revalued_accounts: list[UUID]


def period_ends(start: date, end: date, interval: Interval) -> list[date]:
    """The last day of each period from ``start`` to ``end`` (the current period ends at ``end``)."""
    if interval is Interval.DAY:  # every day: no calendar to walk
        if (end - start).days + 1 > MAX_POINTS:
            raise InvalidInput(f"more than {MAX_POINTS} points: choose a longer interval or a shorter range")
        return every_day(start, end)
    points, day = [], start
    while day <= end:
        if interval is Interval.WEEK:
            last = day + timedelta(days=6 - day.weekday())
        elif interval is Interval.MONTH:
            following = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
            last = following - timedelta(days=1)
        else:
            last = date(day.year, 12, 31)
        points.append(min(last, end))
        day = last + timedelta(days=1)
        if len(points) > MAX_POINTS:
            raise InvalidInput(f"more than {MAX_POINTS} points: choose a longer interval or a shorter range")
    return points


class NetWorthService:
    def __init__(self, default_base: str, clock: Now = utcnow) -> None:
        self._default = default_base
        self._clock = clock

    async def current(self, uow: UnitOfWork, user: User, currency: str | None = None) -> NetWorth:
        day = self._clock().date()
        target = currency or base_currency(user, self._default)
        live_of = (await duplicates(uow, user.id, self._clock())).live_of
        everything = await all_accounts(uow, user.id)
        accounts = [a for a in everything if a.id not in live_of]
        spans = await uow.positions.spans(user.id, [a.id for a in accounts])
        open_spans: dict[UUID, list[PositionSpan]] = defaultdict(list)
        for span in held_on(spans, day):
            open_spans[span.account_id].append(span)
        prices = await Prices.load(uow, {s.instrument_key for s in spans}, day, day - _LOOKBACK)
        book = await load_book(uow, day, day - _LOOKBACK, _currencies(accounts, prices, target))
        worth = NetWorth(currency=target, as_of=day)
        worth.counted_elsewhere = [(a, live_of[a.id]) for a in everything if a.id in live_of]
        for account in accounts:
            valued = _current_value(account, open_spans.get(account.id), prices, book, target, day)
            if valued is None:
                (worth.without_balance if account.balance is None else worth.without_rate).append(account)
                continue
            converted, how = valued
            category = ACCOUNT_CATEGORY.get(account.type, "other")
            worth.accounts.append(AccountWorth(account, category, converted, how))
            worth.total += converted.amount
            if converted.amount >= 0:
                worth.assets += converted.amount
            else:
                worth.liabilities += converted.amount
            worth.by_category[category] = worth.by_category.get(category, Decimal(0)) + converted.amount
            worth.by_provider[account.provider] = (
                worth.by_provider.get(account.provider, Decimal(0)) + converted.amount
            )
        return worth

    async def history(
        self, uow: UnitOfWork, user: User, start: date, end: date, interval: Interval, currency: str | None
    ) -> History:
        if start > end:
            raise InvalidInput("from is after to")
        target = currency or base_currency(user, self._default)
        points = period_ends(start, end, interval)
        live_of = (await duplicates(uow, user.id, self._clock())).live_of
        shadows = await _shadows(uow, user.id, live_of, end) if live_of else _Shadows()
        # PostgreSQL: one statement, one row per point (rates, sums and revaluation in SQL).
        found = await uow.analytics.history_points(
            user.id, start, end, points, interval is Interval.DAY, target, shadows.cut
        )
        if found is None:  # SQLite (TEXT money): the same figures, computed here
            return await _history_in_python(uow, user.id, start, end, interval, target, points, shadows)
        totals = found.totals
        if shadows.corrections:
            met = found.currencies | {target}
            book = await load_book(uow, end, start - _LOOKBACK, met)
            _take_out(shadows, points, {c: book.series(c, target, points) for c in met}, totals)
        unit = minor_places(target)  # ``rounded``, for thousands of points
        values_out = [(p, t.quantize(unit, ROUND_HALF_EVEN)) for p, t in zip(points, totals, strict=True)]
        return History(target, interval, values_out, sorted(found.missing), found.revalued)


@dataclass(slots=True)
class _Shadows:
    """Accounts counted elsewhere: the day each stops counting (``cut``) and the moves that take
    its carried value out of the stored deltas from that day on (currency, day, amount)."""

    cut: dict[UUID, date] = field(default_factory=dict)
    corrections: list[tuple[str, date, Decimal]] = field(default_factory=list)


async def _history_in_python(
    uow: UnitOfWork,
    user_id: UUID,
    start: date,
    end: date,
    interval: Interval,
    target: str,
    points: list[date],
    shadows: _Shadows,
) -> History:
    """The history from the deltas, fixings and closes read into Python (SQLite, whose money
    is TEXT; and the reference the PostgreSQL statement is tested against)."""
    spans = await uow.positions.spans(user_id)
    by_account: dict[UUID, list[PositionSpan]] = defaultdict(list)
    for span in spans:
        by_account[span.account_id].append(span)
    first_held = min((s.valid_from for s in spans), default=end + timedelta(days=1))
    revalue_from = max(first_held, start)
    keys = sorted({s.instrument_key for s in spans})
    currencies = await uow.analytics.net_worth_currencies(user_id) | {target}
    currencies |= await uow.analytics.price_currencies(keys, end)
    book = await load_book(uow, end, start - _LOOKBACK, currencies | {s.currency for s in spans})
    rates = {c: book.series(c, target, points) for c in currencies}
    missing: set[str] = set()
    deltas = await uow.analytics.net_worth_deltas(user_id, end)
    totals = _currency_totals(deltas, points, rates, missing)
    _take_out(shadows, points, rates, totals)
    if by_account and revalue_from <= end:
        accounts = {a.id: a for a in await all_accounts(uow, user_id) if a.id in by_account}
        series = await uow.analytics.snapshot_values(user_id, list(accounts), end, revalue_from)
        prices = await Prices.load(uow, set(keys), end, revalue_from - _LOOKBACK)
        values = _position_values(by_account, points, prices, book, target)
        _revalue(accounts, series, by_account, points, values, book, target, totals, shadows.cut)
    values_out = [(p, rounded(totals[i], target)) for i, p in enumerate(points)]
    return History(target, interval, values_out, sorted(missing), sorted(by_account, key=str))


async def _shadows(uow: UnitOfWork, user_id: UUID, live_of: dict[UUID, UUID], end: date) -> _Shadows:
    """Take each shadowed account out of the totals from the first day its live twin has a
    balance (the stored deltas count every account): before that day the shadow is the only
    record of that money, so a move from one provider to another keeps its history. The cut
    day per shadow is absent when the live twin has no balance yet (the shadow counts)."""
    kinds = {a.id: a.type for a in await all_accounts(uow, user_id)}
    ids = sorted(set(live_of) | set(live_of.values()), key=str)
    series = await uow.analytics.snapshot_values(user_id, ids, end)
    first: dict[UUID, date] = {}
    for value in series:  # oldest first
        first.setdefault(value.account_id, value.day)
    cut = {s: first[live] for s, live in live_of.items() if live in first}
    corrections: list[tuple[str, date, Decimal]] = []
    carried: dict[tuple[UUID, str], Decimal] = {}  # each shadow's value, day by day
    before: dict[tuple[UUID, str], Decimal] = {}  # ... and its last value before the cut
    for value in series:
        if value.account_id not in cut or value.balance is None:
            continue
        key, day = (value.account_id, value.currency), cut[value.account_id]
        amount = signed(kinds[value.account_id], value.balance)
        if value.day >= day:  # from the cut on, every move of the shadow is undone
            corrections.append((value.currency, value.day, carried.get(key, Decimal(0)) - amount))
        carried[key] = amount
        if value.day < day:
            before[key] = amount
    # ... and so is the value it carried into the cut day.
    corrections += [(c, cut[a], -v) for (a, c), v in before.items() if v]
    return _Shadows(cut, corrections)


def _take_out(
    shadows: _Shadows, points: Sequence[date], rates: dict[str, list[Rate | None]], totals: list[Decimal]
) -> None:
    """Add the shadows' corrections to ``totals`` (converted at each point's rate)."""
    # A currency the stored deltas never met nets to zero there: nothing to take out.
    corrections = sorted((d for d in shadows.corrections if d[0] in rates), key=lambda d: d[1])
    if not corrections:
        return
    for i, amount in enumerate(_currency_totals(corrections, points, rates, set())):
        totals[i] += amount


def _currencies(accounts: Sequence[Account], prices: Prices, target: str) -> set[str]:
    found = {a.currency for a in accounts} | {target}
    for bars in prices.bars.values():
        found |= {b.currency for b in bars[-1:]}
    return found


def _current_value(
    account: Account,
    spans: list[PositionSpan] | None,
    prices: Prices,
    book: RateBook,
    target: str,
    day: date,
) -> tuple[Converted, str] | None:
    if spans:
        value = revalue(spans, account.cash_value, account.currency, day, prices, book, target)
        rate = book.rate(account.currency, target, day)
        if value is not None and rate is not None:
            return Converted(rounded(value, target), target, rate.value, rate.day), "holdings"
    if account.balance is None:
        return None
    converted = convert(book, signed(account.type, account.balance), account.currency, target, day)
    return None if converted is None else (converted, "balance")


def _currency_totals(
    deltas: Sequence[tuple[str, date, Decimal]],
    points: Sequence[date],
    rates: dict[str, list[Rate | None]],
    missing: set[str],
) -> list[Decimal]:
    """Running sums of the daily deltas per currency, each converted at its point's rate."""
    running: dict[str, Decimal] = {}
    out, at = [], 0
    for i, point in enumerate(points):
        while at < len(deltas) and deltas[at][1] <= point:
            currency, _, delta = deltas[at]
            running[currency] = running.get(currency, Decimal(0)) + delta
            at += 1
        total = Decimal(0)
        for currency, amount in running.items():
            if not amount:
                continue
            rate = rates[currency][i]
            if rate is None:
                missing.add(currency)
                continue
            total += amount * rate.value
        out.append(total)
    return out


def _unit_values(
    keys: set[str], points: Sequence[date], start: int, prices: Prices, book: RateBook, target: str
) -> dict[str, list[Decimal | None]]:
    """Per instrument and point (from index ``start``): its close times the rate to ``target``,
    None before its first close."""
    out: dict[str, list[Decimal | None]] = {}
    tail = points[start:]
    by_currency: dict[str, list[Rate | None]] = {}
    for key in keys:
        bars = prices.bars.get(key, [])
        values: list[Decimal | None] = [None] * len(points)
        if bars:
            currency = bars[-1].currency
            if currency not in by_currency:
                by_currency[currency] = book.series(currency, target, tail)
            rates = by_currency[currency]
            at = -1
            for i, point in enumerate(tail):
                while at + 1 < len(bars) and bars[at + 1].day <= point:
                    at += 1
                rate = rates[i]
                if at >= 0 and rate is not None:
                    values[start + i] = bars[at].close * rate.value
        out[key] = values
    return out


def _position_values(
    spans: dict[UUID, list[PositionSpan]],
    points: Sequence[date],
    prices: Prices,
    book: RateBook,
    target: str,
) -> dict[UUID, dict[int, Decimal | None]]:
    """Per account and point index where a position is held: the positions' value in
    ``target`` (None when one of them has no close or rate there). What PostgreSQL computes in
    ``history_points``, in Python for SQLite."""
    first = min(s.valid_from for held in spans.values() for s in held)
    start = bisect.bisect_left(points, first)
    units = _unit_values(
        {s.instrument_key for held in spans.values() for s in held}, points, start, prices, book, target
    )
    out: dict[UUID, dict[int, Decimal | None]] = {}
    for account_id, held in spans.items():
        values: dict[int, Decimal | None] = {}
        for span in held:
            low = bisect.bisect_left(points, span.valid_from)
            high = len(points) if span.valid_to is None else bisect.bisect_left(points, span.valid_to)
            unit = units[span.instrument_key]
            for i in range(max(low, start), high):
                value, so_far = unit[i], values.get(i, Decimal(0))
                values[i] = None if value is None or so_far is None else so_far + span.quantity * value
        out[account_id] = values
    return out


def _revalue(
    accounts: dict[UUID, Account],
    series: Sequence[SnapshotValue],
    spans: dict[UUID, list[PositionSpan]],
    points: Sequence[date],
    values: dict[UUID, dict[int, Decimal | None]],
    book: RateBook,
    target: str,
    totals: list[Decimal],
    cut: dict[UUID, date] | None = None,
) -> None:
    """Accounts with recorded holdings: from their first recorded day, swap the carried
    balance (in ``totals`` already) for cash + positions at each day's close, on the points
    where every position has a close and a rate; a shadowed account only before its ``cut``."""
    per_account: dict[UUID, list[SnapshotValue]] = defaultdict(list)
    for snapshot in series:
        per_account[snapshot.account_id].append(snapshot)
    cash_series: dict[str, list[Rate | None]] = {}
    zero = Decimal(0)
    for account_id, account in accounts.items():
        first = bisect.bisect_left(points, min(s.valid_from for s in spans[account_id]))
        held = values.get(account_id, {})
        history = per_account.get(account_id, [])
        if account.currency not in cash_series:
            cash_series[account.currency] = book.series(account.currency, target, points)
        cash_rates = cash_series[account.currency]
        at, last = 0, None
        for i, point in enumerate(points):
            while at < len(history) and history[at].day <= point:
                last = history[at]
                at += 1
            if i < first or (cut and point >= cut.get(account_id, date.max)):
                continue
            positions = held.get(i, zero)
            rate = cash_rates[i]
            if (
                positions is None
                or last is None
                or last.balance is None
                or last.cash_value is None
                or rate is None
            ):
                continue
            totals[i] += (last.cash_value - signed(account.type, last.balance)) * rate.value + positions
