"""Performance of one account (in its currency) or all accounts (in the base currency).

Valuations are each day's last balance snapshot; external flows are transfer-type
transactions (deposits, withdrawals, transfers in and out). Dividends, interest, fees and
trades stay inside the account and are part of the return.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from finsync.application.valuation import (
    Prices,
    all_accounts,
    base_currency,
    duplicates,
    held_on,
    load_book,
    rounded,
    signed,
)
from finsync.domain.analytics_ports import Movement
from finsync.domain.entities import Account, Holding, User, utcnow
from finsync.domain.enums import TransactionType
from finsync.domain.errors import InvalidInput, NotFound
from finsync.domain.fx import RateBook
from finsync.domain.gains import Ledger, Trade
from finsync.domain.market import instrument_key
from finsync.domain.ports import Now, PageRequest, UnitOfWork
from finsync.domain.returns import TWR_METHOD, Figure, time_weighted_return, xirr

_LOOKBACK = timedelta(days=14)


@dataclass(slots=True)
class Performance:
    currency: str
    start: date
    end: date
    start_value: Decimal | None
    end_value: Decimal | None
    net_flows: Decimal
    twr: Figure
    mwr: Figure
    total_gain: Decimal | None
    realised_gain: Decimal
    unrealised_gain: Figure
    valuations: int
    method: str = TWR_METHOD


def _day_values(
    accounts: list[Account], series: list[tuple[UUID, date, Decimal | None]], book: RateBook, target: str
) -> list[tuple[date, Decimal]]:
    """Total value per day with a snapshot: every account's last known balance, signed as net
    worth signs it (cards and loans ``-|balance|``), each currency's sum converted at that day's
    rate (a currency without one is left out)."""
    currency = {a.id: a.currency for a in accounts}
    kind = {a.id: a.type for a in accounts}
    last: dict[UUID, Decimal] = {}
    by_day: dict[date, list[tuple[UUID, Decimal]]] = defaultdict(list)
    for account_id, day, balance in series:
        if balance is not None:
            by_day[day].append((account_id, signed(kind[account_id], balance)))
    days = sorted(by_day)
    rates = {c: book.series(c, target, days) for c in set(currency.values())}
    running: dict[str, Decimal] = defaultdict(Decimal)
    values = []
    for i, day in enumerate(days):
        for account_id, balance in by_day[day]:
            running[currency[account_id]] += balance - last.get(account_id, Decimal(0))
            last[account_id] = balance
        total = Decimal(0)
        for cur, amount in running.items():
            rate = rates[cur][i]
            if rate is not None:
                total += amount * rate.value
        values.append((day, total))
    return values


class PerformanceService:
    def __init__(self, default_base: str, clock: Now = utcnow) -> None:
        self._default = default_base
        self._clock = clock

    async def performance(
        self,
        uow: UnitOfWork,
        user: User,
        account_id: UUID | None,
        start: date,
        end: date,
        currency: str | None,
    ) -> Performance:
        if start >= end:
            raise InvalidInput("from must be before to")
        if account_id is not None:
            account = await uow.accounts.get(account_id, user.id)
            if account is None:
                raise NotFound("account")
            accounts = [account]
            target = currency or account.currency
        else:  # an account counted through another connection too is counted once (reach.py)
            shadowed = (await duplicates(uow, user.id, self._clock())).shadowed
            accounts = [a for a in await all_accounts(uow, user.id) if a.id not in shadowed]
            target = currency or base_currency(user, self._default)
        ids = [a.id for a in accounts]
        snaps = await uow.analytics.snapshot_values(user.id, ids, end, start)
        # The period opens at the last valuation on or before `from`: its flows count from then.
        opens = max((s.day for s in snaps if s.balance is not None and s.day <= start), default=start)
        flows_tx = await uow.analytics.transactions_of(user.id, ids, end, [TransactionType.TRANSFER], opens)
        trades = await uow.analytics.transactions_of(user.id, ids, end, [TransactionType.TRADE])
        currencies = {a.currency for a in accounts} | {t.currency for t in (*flows_tx, *trades)} | {target}
        book = await load_book(uow, end, None, currencies)
        values = _day_values(accounts, [(s.account_id, s.day, s.balance) for s in snaps], book, target)
        before = [v for v in values if v[0] <= start]
        window = ([before[-1]] if before else []) + [v for v in values if start < v[0] <= end]
        flows = []
        for t in flows_tx:
            rate = book.rate(t.currency, target, t.transaction_date)
            if rate is not None:
                flows.append((t.transaction_date, t.amount * rate.value))
        first_day = window[0][0] if window else start
        last_day = window[-1][0] if window else end
        # Only flows between the first and the last valuation are in the values compared.
        in_window = [f for f in flows if first_day < f[0] <= last_day]
        twr = time_weighted_return(window, in_window)
        start_value = window[0][1] if window else None
        end_value = window[-1][1] if window else None
        net = sum((a for _, a in in_window), Decimal(0))
        investor = [(first_day, -start_value)] if start_value else []
        investor += [(day, -amount) for day, amount in in_window]
        if end_value is not None and window:
            investor.append((window[-1][0], end_value))
        mwr = xirr(investor) if window else Figure(None, "no valuations in the period")
        ledgers = _ledgers(trades, book, target, start)
        realised = sum((ledger.realised for ledger in ledgers.values()), Decimal(0))
        unrealised = await self._unrealised(uow, user, accounts, ledgers, end, target)
        total = None if start_value is None or end_value is None else end_value - start_value - net
        return Performance(
            currency=target,
            start=start,
            end=end,
            start_value=None if start_value is None else rounded(start_value, target),
            end_value=None if end_value is None else rounded(end_value, target),
            net_flows=rounded(net, target),
            twr=twr,
            mwr=mwr,
            total_gain=None if total is None else rounded(total, target),
            realised_gain=rounded(realised, target),
            unrealised_gain=unrealised,
            valuations=len(window),
        )

    async def _unrealised(
        self,
        uow: UnitOfWork,
        user: User,
        accounts: list[Account],
        ledgers: dict[UUID, Ledger],
        end: date,
        target: str,
    ) -> Figure:
        """Market value of the positions held on ``end`` minus their average cost: from recorded
        holding history when it covers ``end``, else from current holdings when ``end`` is today.
        A position without the provider's cost takes its own account's cost (``ledgers``)."""
        ids = [a.id for a in accounts]
        positions: list[tuple[UUID, str, str, Decimal, Holding | None]]
        if end >= self._clock().date():  # today: current holdings, provider values as fallback
            holdings = [
                h for a in ids for h in (await uow.holdings.find(user.id, a, PageRequest(limit=500))).items
            ]
            positions = [
                (h.account_id, instrument_key(h.isin, h.cusip, h.symbol), h.symbol, h.quantity, h)
                for h in holdings
            ]
        else:
            spans = held_on(await uow.positions.spans(user.id, ids), end)
            if not spans:
                return Figure(None, "no recorded holdings on that day: unrealised gain is known from then on")
            positions = [(s.account_id, s.instrument_key, s.symbol, s.quantity, None) for s in spans]
        prices = await Prices.load(uow, {key for _, key, *_ in positions}, end, end - _LOOKBACK)
        # The rates of ``end`` for every currency a position is quoted or held in (a USD listing
        # in a EUR account is valued in USD: the accounts' currencies are not enough).
        quoted = {bar.currency for bars in prices.bars.values() for bar in bars}
        held = {h.currency for *_, h in positions if h is not None}
        book = await load_book(uow, end, end - _LOOKBACK, quoted | held | {target})
        total = Decimal(0)
        for account_id, key, symbol, quantity, holding in positions:
            bar = prices.close(key, end)
            if bar is not None:
                rate = book.rate(bar.currency, target, end)
                value = None if rate is None else quantity * bar.close * rate.value
            elif holding is not None and holding.market_value is not None:
                rate = book.rate(holding.currency, target, end)
                value = None if rate is None else holding.market_value * rate.value
            else:
                value = None
            if holding is not None and holding.average_cost is not None:
                rate = book.rate(holding.currency, target, end)
                cost = None if rate is None else holding.average_cost * quantity * rate.value
            else:
                ledger = ledgers.get(account_id)
                cost = None if ledger is None else ledger.cost_of(symbol)
            if value is None or cost is None:
                return Figure(None, f"no price or no cost basis for {symbol}")
            total += value - cost
        return Figure(rounded(total, target))


def _ledgers(rows: list[Movement], book: RateBook, target: str, count_from: date) -> dict[UUID, Ledger]:
    """One average-cost ledger per account: the same symbol held in two accounts has two costs
    (pooled, each account's position would be charged the cost of both). Trades with a
    quantity only, their cash amounts converted at each trade's day rate."""
    trades: dict[UUID, list[Trade]] = defaultdict(list)
    for t in rows:
        if t.symbol is None or t.quantity is None:
            continue
        rate = book.rate(t.currency, target, t.transaction_date)
        if rate is None:
            continue
        trades[t.account_id].append(
            Trade(t.transaction_date, t.symbol, t.subtype, t.quantity, t.amount * rate.value)
        )
    ledgers: dict[UUID, Ledger] = {}
    for account_id, booked in trades.items():
        ledgers[account_id] = ledger = Ledger()
        ledger.apply(booked, count_from=count_from)
    return ledgers
