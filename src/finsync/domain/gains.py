"""Realised and unrealised gains by the average-cost method, from trades."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from finsync.domain.enums import TransactionSubtype


@dataclass(frozen=True, slots=True)
class Trade:
    """A buy (cash out, ``amount`` < 0) or sell (cash in) of ``quantity`` units of ``symbol``."""

    day: date
    symbol: str
    subtype: TransactionSubtype
    quantity: Decimal
    amount: Decimal


@dataclass(slots=True)
class Position:
    quantity: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # cost basis of what is held, fees included


@dataclass(slots=True)
class Ledger:
    """Average cost per symbol: a sale realises proceeds minus its share of the cost basis."""

    positions: dict[str, Position] = field(default_factory=dict)
    realised: Decimal = Decimal(0)
    unmatched_sales: list[str] = field(default_factory=list)  # sold more than was bought

    def apply(self, trades: Iterable[Trade], count_from: date | None = None) -> None:
        """Book ``trades`` in date order, a day's buys before its sales (trades carry a date only,
        and providers list a day's rows in either order: a day trade listed newest first would
        otherwise sell what it has not bought yet); only sales on or after ``count_from`` add
        to ``realised``."""
        for trade in sorted(trades, key=lambda t: (t.day, t.subtype is TransactionSubtype.SELL)):
            position = self.positions.setdefault(trade.symbol, Position())
            quantity = abs(trade.quantity)
            if trade.subtype in (TransactionSubtype.BUY, TransactionSubtype.REINVEST):
                position.quantity += quantity
                position.cost += -trade.amount if trade.amount < 0 else Decimal(0)
            elif trade.subtype is TransactionSubtype.SELL:
                if position.quantity <= 0:
                    self.unmatched_sales.append(trade.symbol)
                    continue
                sold = min(quantity, position.quantity)
                if sold < quantity:
                    self.unmatched_sales.append(trade.symbol)
                cost = position.cost * sold / position.quantity
                position.quantity -= sold
                position.cost -= cost
                if count_from is None or trade.day >= count_from:
                    # Only the matched part of the sale realises anything: its share of the proceeds.
                    self.realised += trade.amount * sold / quantity - cost

    def cost_of(self, symbol: str) -> Decimal | None:
        position = self.positions.get(symbol)
        return None if position is None or position.quantity <= 0 else position.cost
