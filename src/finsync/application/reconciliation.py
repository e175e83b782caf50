"""Does an account's balance history add up with its transactions?

Between two consecutive days with a balance snapshot, the balance should move by the sum
of the settled transactions dated after the first day and up to the second. A period that
does not add up is listed with the difference: the provider skipped (or duplicated)
something. Accounts with recorded holdings are checked the same way on quantities:
the change of each position versus the quantities its trades moved.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import pairwise
from uuid import UUID

from finsync.application.valuation import held_on, signed
from finsync.domain.entities import Account, User
from finsync.domain.enums import TransactionSubtype, TransactionType
from finsync.domain.errors import InvalidInput, NotFound
from finsync.domain.ports import UnitOfWork

_IN = frozenset({TransactionSubtype.BUY, TransactionSubtype.REINVEST, TransactionSubtype.TRANSFER_IN})
_OUT = frozenset({TransactionSubtype.SELL, TransactionSubtype.TRANSFER_OUT})


@dataclass(slots=True)
class BalanceGap:
    start: date
    end: date
    start_balance: Decimal
    end_balance: Decimal
    transactions_total: Decimal
    transactions: int

    @property
    def difference(self) -> Decimal:
        """What the transactions do not explain: positive = money arrived that no transaction shows."""
        return (self.end_balance - self.start_balance) - self.transactions_total


@dataclass(slots=True)
class QuantityGap:
    symbol: str
    start: date
    end: date
    quantity_change: Decimal
    trades_quantity: Decimal

    @property
    def difference(self) -> Decimal:
        return self.quantity_change - self.trades_quantity


@dataclass(slots=True)
class Reconciliation:
    account: Account
    periods_checked: int = 0
    gaps: list[BalanceGap] = field(default_factory=list)
    quantity_periods_checked: int = 0
    quantity_gaps: list[QuantityGap] = field(default_factory=list)


def _signed_quantity(subtype: TransactionSubtype, quantity: Decimal) -> Decimal:
    if subtype in _IN:
        return abs(quantity)
    if subtype in _OUT:
        return -abs(quantity)
    return quantity if subtype is TransactionSubtype.SPLIT else Decimal(0)


async def reconcile(uow: UnitOfWork, user: User, account_id: UUID, start: date, end: date) -> Reconciliation:
    if start > end:
        raise InvalidInput("from is after to")
    account = await uow.accounts.get(account_id, user.id)
    if account is None:
        raise NotFound("account")
    result = Reconciliation(account)
    values = [
        v
        for v in await uow.analytics.snapshot_values(user.id, [account.id], end, start)
        if v.balance is not None
    ]
    before = [v for v in values if v.day <= start]
    checked = ([before[-1]] if before else []) + [v for v in values if v.day > start]
    if len(checked) >= 2:
        sums = await uow.analytics.daily_sums(account.id, checked[0].day, end)
        at = 0
        for first, second in pairwise(checked):
            while at < len(sums) and sums[at][0] <= first.day:
                at += 1
            total, count = Decimal(0), 0
            while at < len(sums) and sums[at][0] <= second.day:
                total += sums[at][1]
                count += sums[at][2]
                at += 1
            assert first.balance is not None
            assert second.balance is not None
            # Signed as net worth signs it: a card's debits then lower its balance whichever
            # sign its provider reports the amount owed with.
            opening, closing = signed(account.type, first.balance), signed(account.type, second.balance)
            gap = BalanceGap(first.day, second.day, opening, closing, total, count)
            result.periods_checked += 1
            if gap.difference != 0:
                result.gaps.append(gap)
    await _quantities(uow, user, account, start, end, result)
    return result


async def _quantities(
    uow: UnitOfWork, user: User, account: Account, start: date, end: date, result: Reconciliation
) -> None:
    spans = await uow.positions.spans(user.id, [account.id])
    if not spans:
        return
    change_days = sorted(
        {s.valid_from for s in spans} | {s.valid_to for s in spans if s.valid_to is not None}
    )
    days = [d for d in change_days if start <= d <= end]
    earlier = [d for d in change_days if d < start]
    days = earlier[-1:] + days
    if len(days) < 2:
        return
    trades = await uow.analytics.transactions_of(
        user.id,
        [account.id],
        end,
        [TransactionType.TRADE, TransactionType.TRANSFER, TransactionType.OTHER],
        days[0],
    )
    moved: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for t in trades:
        if t.symbol and t.quantity is not None:
            moved[t.symbol].append((t.transaction_date, _signed_quantity(t.subtype, t.quantity)))
    for first, second in pairwise(days):
        held_before = _by_symbol(held_on(spans, first))
        held_after = _by_symbol(held_on(spans, second))
        result.quantity_periods_checked += 1
        for symbol in sorted(set(held_before) | set(held_after)):
            change = held_after.get(symbol, Decimal(0)) - held_before.get(symbol, Decimal(0))
            traded = sum((q for day, q in moved.get(symbol, []) if first < day <= second), Decimal(0))
            if change != traded:
                result.quantity_gaps.append(QuantityGap(symbol, first, second, change, traded))


def _by_symbol(spans: list) -> dict[str, Decimal]:  # type: ignore[type-arg]
    out: dict[str, Decimal] = {}
    for span in spans:
        out[span.symbol] = out.get(span.symbol, Decimal(0)) + span.quantity
    return out
