"""Cash flow (income and spending) and investment income (dividends, interest, withholding tax).

Every amount is converted at the rate of its own day (the last ECB fixing on or before
it). Cash flow leaves out trades, cancelled rows, rows the user excluded, and transfers
between the user's own accounts (both legs of a live transfer link).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from finsync.application.valuation import all_accounts, base_currency, load_book, rounded
from finsync.domain.analytics_ports import CashFlowGroup, DailyRates, IncomeGroup, Interval, PeriodSum
from finsync.domain.entities import User
from finsync.domain.enums import TransactionSubtype, TransactionType
from finsync.domain.errors import InvalidInput
from finsync.domain.fx import RateBook
from finsync.domain.market import every_day
from finsync.domain.ports import UnitOfWork

MAX_DAYS = 366 * 30
_LOOKBACK = timedelta(days=14)


@dataclass(slots=True)
class Sums:
    values: dict[str, Decimal] = field(default_factory=dict)
    count: int = 0

    def add(self, name: str, amount: Decimal) -> None:
        self.values[name] = self.values.get(name, Decimal(0)) + amount


@dataclass(slots=True)
class Period:
    start: date
    totals: Sums = field(default_factory=Sums)
    groups: dict[str | None, Sums] = field(default_factory=dict)


@dataclass(slots=True)
class Report:
    currency: str
    interval: Interval
    group_by: str | None
    periods: list[Period]
    unconverted: int  # transactions left out: no rate for their currency on their day
    figures: tuple[str, ...]


def period_start(day: date, interval: Interval) -> date:
    if interval is Interval.WEEK:
        return day - timedelta(days=day.weekday())
    if interval is Interval.MONTH:
        return day.replace(day=1)
    if interval is Interval.YEAR:
        return date(day.year, 1, 1)
    return day


def daily_rates(book: RateBook, currencies: set[str], target: str, start: date, end: date) -> DailyRates:
    """Each currency's rate to ``target`` on every day of the range (days before its first fixing: none)."""
    rates = DailyRates(base=target)
    days = every_day(start, end)
    for currency in sorted(currencies - {target}):  # one division per fixing, not per day
        for day, rate in zip(days, book.series(currency, target, days), strict=True):
            if rate is not None:
                rates.currencies.append(currency)
                rates.days.append(day)
                rates.rates.append(rate.value)
    return rates


def _check_range(start: date, end: date) -> None:
    if start > end:
        raise InvalidInput("from is after to")
    if (end - start).days > MAX_DAYS:
        raise InvalidInput("the range is longer than 30 years")


def _rounded_report(report: Report) -> Report:
    for period in report.periods:
        for sums in (period.totals, *period.groups.values()):
            sums.values = {k: rounded(v, report.currency) for k, v in sums.values.items()}
    return report


class CashFlowService:
    def __init__(self, default_base: str) -> None:
        self._default = default_base

    async def cash_flow(
        self,
        uow: UnitOfWork,
        user: User,
        start: date,
        end: date,
        interval: Interval,
        group_by: CashFlowGroup | None,
        currency: str | None,
    ) -> Report:
        _check_range(start, end)
        target = currency or base_currency(user, self._default)
        currencies = {a.currency for a in await all_accounts(uow, user.id)} | {target}
        rows = await self._sums(uow, user, start, end, interval, group_by, target, currencies)
        if any(r.unconverted for r in rows):  # transactions in currencies none of the accounts has
            extra = await uow.analytics.currencies_in(user.id, start, end, currencies)
            if extra:
                rows = await self._sums(uow, user, start, end, interval, group_by, target, currencies | extra)
        periods: dict[date, Period] = {}
        unconverted = 0
        for row in rows:
            period = periods.setdefault(row.period, Period(row.period))
            _add(period, row, group_by is not None)
            unconverted += row.unconverted
        report = Report(
            target,
            interval,
            None if group_by is None else group_by.value,
            [periods[k] for k in sorted(periods)],
            unconverted,
            ("income", "spending", "net"),
        )
        return _rounded_report(report)

    async def _sums(
        self,
        uow: UnitOfWork,
        user: User,
        start: date,
        end: date,
        interval: Interval,
        group_by: CashFlowGroup | None,
        target: str,
        currencies: set[str],
    ) -> list[PeriodSum]:
        book = await load_book(uow, end, start - _LOOKBACK, currencies)
        rates = daily_rates(book, currencies, target, start, end)
        return await uow.analytics.period_sums(user.id, start, end, interval, group_by, rates)

    async def income(
        self,
        uow: UnitOfWork,
        user: User,
        start: date,
        end: date,
        interval: Interval,
        group_by: IncomeGroup | None,
        currency: str | None,
    ) -> Report:
        """Dividends and interest (gross, as booked), withholding tax (tax rows), and net."""
        _check_range(start, end)
        target = currency or base_currency(user, self._default)
        rows = await uow.analytics.transactions_of(
            user.id, None, end, [TransactionType.INCOME, TransactionType.TAX], start, counted_only=True
        )
        currencies = {t.currency for t in rows} | {target}
        book = await load_book(uow, end, start - _LOOKBACK, currencies)
        periods: dict[date, Period] = {}
        unconverted = 0
        for t in rows:
            is_tax = t.type is TransactionType.TAX
            if not is_tax and t.subtype not in (TransactionSubtype.DIVIDEND, TransactionSubtype.INTEREST):
                continue
            rate = book.rate(t.currency, target, t.transaction_date)
            if rate is None:
                unconverted += 1
                continue
            amount = t.amount * rate.value
            key = (
                (t.symbol or None)
                if group_by is IncomeGroup.SYMBOL
                else (str(t.account_id) if group_by is IncomeGroup.ACCOUNT else None)
            )
            start_of = period_start(t.transaction_date, interval)
            period = periods.setdefault(start_of, Period(start_of))
            for sums in (
                (period.totals, period.groups.setdefault(key, Sums())) if group_by else (period.totals,)
            ):
                sums.add("withholding_tax" if is_tax else "gross", amount)
                sums.add("gross" if is_tax else "withholding_tax", Decimal(0))
                sums.add("net", amount)
                sums.count += 1
        report = Report(
            target,
            interval,
            None if group_by is None else group_by.value,
            [periods[k] for k in sorted(periods)],
            unconverted,
            ("gross", "withholding_tax", "net"),
        )
        return _rounded_report(report)


def _add(period: Period, row: PeriodSum, grouped: bool) -> None:
    income, spending = row.values["income"], row.values["spending"]
    targets = [period.totals, period.groups.setdefault(row.group, Sums())] if grouped else [period.totals]
    for sums in targets:
        sums.add("income", income)
        sums.add("spending", spending)
        sums.add("net", income + spending)
        sums.count += row.count - row.unconverted
