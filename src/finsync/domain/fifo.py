"""Realised P&L by FIFO lots, per symbol, in the account's currency: how a trading bot counts a
position's profit (the first shares bought are the first sold). Pure; trades from ``gains.Trade``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from finsync.domain.enums import TransactionSubtype
from finsync.domain.gains import Trade


@dataclass(slots=True)
class FifoBook:
    """Open lots ``[quantity, unit cost]`` oldest first, and what each symbol's sales realised."""

    lots: dict[str, deque[list[Decimal]]] = field(default_factory=dict)
    realised: dict[str, Decimal] = field(default_factory=dict)
    unmatched: set[str] = field(default_factory=set)  # sold more than the trades show bought

    def apply(self, trades: Iterable[Trade]) -> None:
        """Book trades in date order, a day's buys before its sales (trades carry a date only, so
        the order of a day's trades is unknown: a sale still matches the oldest lots first, and
        reaches that day's buys only when the older lots do not cover it)."""
        for trade in sorted(trades, key=lambda t: (t.day, t.subtype is TransactionSubtype.SELL)):
            quantity = abs(trade.quantity)
            if quantity == 0:
                continue
            lots = self.lots.setdefault(trade.symbol, deque())
            if trade.subtype in (TransactionSubtype.BUY, TransactionSubtype.REINVEST):
                lots.append([quantity, abs(trade.amount) / quantity])
            elif trade.subtype is TransactionSubtype.SELL:
                self._sell(trade.symbol, lots, quantity, abs(trade.amount))

    def _sell(self, symbol: str, lots: deque[list[Decimal]], quantity: Decimal, proceeds: Decimal) -> None:
        left, cost, matched = quantity, Decimal(0), Decimal(0)
        while left > 0 and lots:
            lot = lots[0]
            take = min(left, lot[0])
            cost += take * lot[1]
            matched += take
            lot[0] -= take
            left -= take
            if lot[0] == 0:
                lots.popleft()
        if left > 0:
            self.unmatched.add(symbol)
        # Only the matched part of the sale realises anything: its share of the proceeds.
        gained = proceeds * matched / quantity - cost
        self.realised[symbol] = self.realised.get(symbol, Decimal(0)) + gained

    def quantity(self, symbol: str) -> Decimal:
        return sum((lot[0] for lot in self.lots.get(symbol, ())), Decimal(0))

    def cost(self, symbol: str) -> Decimal:
        """Cost of the open lots (what the held quantity cost, FIFO)."""
        return sum((lot[0] * lot[1] for lot in self.lots.get(symbol, ())), Decimal(0))
