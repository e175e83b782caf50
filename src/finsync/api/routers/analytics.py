"""Net worth history, cash flow, income, performance, reconciliation, FX rates, base currency."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from finsync.api.analytics_schemas import (
    FigureOut,
    GapOut,
    GroupOut,
    HistoryOut,
    MeOut,
    PerformanceOut,
    PeriodOut,
    PointOut,
    PreferencesIn,
    QuantityGapOut,
    RateOut,
    ReconciliationOut,
    ReportOut,
)
from finsync.api.deps import ContainerDep, CurrentUser, UowDep
from finsync.api.errors import responses
from finsync.api.wire import QueryDate
from finsync.application.cash_flow import Report
from finsync.application.preferences import check_currency, set_base_currency
from finsync.application.reconciliation import reconcile
from finsync.application.valuation import base_currency, load_book
from finsync.domain.analytics_ports import CashFlowGroup, IncomeGroup, Interval
from finsync.domain.errors import InvalidInput, NotFound
from finsync.domain.ports import UnitOfWork

router = APIRouter(tags=["analytics"])

CurrencyQuery = Annotated[
    str | None, Query(min_length=3, max_length=3, description="ISO-4217 code; default: your base currency")
]
FromQuery = Annotated[
    QueryDate | None, Query(alias="from", description="First day (default: a year before `to`)")
]
ToQuery = Annotated[QueryDate | None, Query(alias="to", description="Last day (default: today, UTC)")]


async def currency_or_none(uow: UnitOfWork, currency: str | None) -> str | None:
    return None if currency is None else await check_currency(uow, currency)


def _range(container: ContainerDep, start: date | None, end: date | None) -> tuple[date, date]:
    end = end or container.clock().date()
    start = start or end - timedelta(days=365)
    if start > end:
        raise InvalidInput("from is after to")
    return start, end


@router.patch("/users/me", response_model=MeOut, responses=responses(InvalidInput))
async def update_me(body: PreferencesIn, user: CurrentUser, container: ContainerDep) -> MeOut:
    """Set your base currency: net worth and analytics are given in it unless ?currency= says otherwise."""
    updated = await set_base_currency(container.uow, user.id, body.base_currency)
    return MeOut(
        id=updated.id,
        email=updated.email,
        base_currency=base_currency(updated, container.settings.base_currency),
        created_at=updated.created_at,
    )


@router.get("/fx/rate", response_model=RateOut, responses=responses(InvalidInput, NotFound))
async def fx_rate(
    user: CurrentUser,
    uow: UowDep,
    container: ContainerDep,
    base: Annotated[str, Query(min_length=3, max_length=3)],
    quote: Annotated[str, Query(min_length=3, max_length=3)],
    day: Annotated[QueryDate | None, Query(alias="date", description="Default: today")] = None,
) -> RateOut:
    """The rate of a currency pair on a day (cross rates through EUR) and the fixing day it came from."""
    base, quote = await check_currency(uow, base), await check_currency(uow, quote)
    day = day or container.clock().date()
    book = await load_book(uow, day, day - timedelta(days=14), {base, quote})
    rate = book.rate(base, quote, day)
    if rate is None:
        raise NotFound(f"an exchange rate for {base}/{quote} on or before {day}")
    return RateOut(base=base, quote=quote, rate=rate.value, date=day, rate_date=rate.day)


@router.get("/net-worth/history", response_model=HistoryOut, responses=responses(InvalidInput))
async def net_worth_history(
    user: CurrentUser,
    uow: UowDep,
    container: ContainerDep,
    start: FromQuery = None,
    end: ToQuery = None,
    interval: Interval = Interval.DAY,
    currency: CurrencyQuery = None,
) -> HistoryOut:
    """Net worth over time: each account's last known value carried forward, converted at each day's rate."""
    start, end = _range(container, start, end)
    history = await container.net_worth.history(
        uow, user, start, end, interval, await currency_or_none(uow, currency)
    )
    return HistoryOut(
        currency=history.currency,
        interval=history.interval,
        points=[PointOut(date=d, value=v) for d, v in history.points],
        missing_rates=history.missing_rates,
        revalued_accounts=history.revalued_accounts,
    )


def _report(report: Report, names: dict[str, str] | None = None) -> ReportOut:
    names = names or {}
    return ReportOut(
        currency=report.currency,
        interval=report.interval,
        group_by=report.group_by,
        unconverted_transactions=report.unconverted,
        periods=[
            PeriodOut(
                period=p.start,
                values=p.totals.values,
                count=p.totals.count,
                groups=[
                    GroupOut(key=k, name=names.get(k) if k else None, values=g.values, count=g.count)
                    for k, g in sorted(p.groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
                ],
            )
            for p in report.periods
        ],
    )


async def _names(
    uow: UnitOfWork, container: ContainerDep, user_id: UUID, group: str | None
) -> dict[str, str]:
    if group == CashFlowGroup.CATEGORY.value:
        return {str(c.id): c.name for c in await container.labels.categories(user_id)}
    if group == CashFlowGroup.ACCOUNT.value:
        from finsync.application.valuation import all_accounts

        return {str(a.id): a.name for a in await all_accounts(uow, user_id)}
    return {}


@router.get("/analytics/cash-flow", response_model=ReportOut, responses=responses(InvalidInput))
async def cash_flow(
    user: CurrentUser,
    uow: UowDep,
    container: ContainerDep,
    start: FromQuery = None,
    end: ToQuery = None,
    interval: Interval = Interval.MONTH,
    group_by: CashFlowGroup | None = None,
    currency: CurrencyQuery = None,
) -> ReportOut:
    """Income and spending per period, without trades and transfers between your own accounts."""
    start, end = _range(container, start, end)
    report = await container.cash_flow.cash_flow(
        uow, user, start, end, interval, group_by, await currency_or_none(uow, currency)
    )
    return _report(report, await _names(uow, container, user.id, report.group_by))


@router.get("/analytics/income", response_model=ReportOut, responses=responses(InvalidInput))
async def income(
    user: CurrentUser,
    uow: UowDep,
    container: ContainerDep,
    start: FromQuery = None,
    end: ToQuery = None,
    interval: Annotated[Interval, Query(description="month or year")] = Interval.MONTH,
    group_by: IncomeGroup | None = None,
    currency: CurrencyQuery = None,
) -> ReportOut:
    """Dividends and interest: gross, withholding tax and net, per period."""
    if interval not in (Interval.MONTH, Interval.YEAR):
        raise InvalidInput("interval must be month or year")
    start, end = _range(container, start, end)
    report = await container.cash_flow.income(
        uow, user, start, end, interval, group_by, await currency_or_none(uow, currency)
    )
    return _report(report, await _names(uow, container, user.id, report.group_by))


@router.get(
    "/analytics/performance", response_model=PerformanceOut, responses=responses(InvalidInput, NotFound)
)
async def performance(
    user: CurrentUser,
    uow: UowDep,
    container: ContainerDep,
    account_id: UUID | None = None,
    start: FromQuery = None,
    end: ToQuery = None,
    currency: CurrencyQuery = None,
) -> PerformanceOut:
    """Time- and money-weighted return, total, realised and unrealised gain of an account (or all)."""
    start, end = _range(container, start, end)
    p = await container.performance.performance(
        uow, user, account_id, start, end, await currency_or_none(uow, currency)
    )
    return PerformanceOut(
        account_id=account_id,
        currency=p.currency,
        start=p.start,
        end=p.end,
        start_value=p.start_value,
        end_value=p.end_value,
        net_flows=p.net_flows,
        time_weighted_return=FigureOut(value=p.twr.value, reason=p.twr.reason),
        method=p.method,
        money_weighted_return=FigureOut(value=p.mwr.value, reason=p.mwr.reason),
        total_gain=p.total_gain,
        realised_gain=p.realised_gain,
        unrealised_gain=FigureOut(value=p.unrealised_gain.value, reason=p.unrealised_gain.reason),
        valuations=p.valuations,
    )


@router.get(
    "/accounts/{account_id}/reconciliation",
    response_model=ReconciliationOut,
    responses=responses(InvalidInput, NotFound),
)
async def reconciliation(
    account_id: UUID,
    user: CurrentUser,
    uow: UowDep,
    container: ContainerDep,
    start: FromQuery = None,
    end: ToQuery = None,
) -> ReconciliationOut:
    """Balance changes between snapshots versus the transactions booked in between; gaps listed."""
    start, end = _range(container, start, end)
    r = await reconcile(uow, user, account_id, start, end)
    return ReconciliationOut(
        account_id=r.account.id,
        currency=r.account.currency,
        periods_checked=r.periods_checked,
        gaps=[GapOut.model_validate(g) for g in r.gaps],
        quantity_periods_checked=r.quantity_periods_checked,
        quantity_gaps=[QuantityGapOut.model_validate(g) for g in r.quantity_gaps],
    )
