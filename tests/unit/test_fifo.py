"""FIFO lots: the first shares bought are the first sold."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from finsync.domain.enums import TransactionSubtype as S
from finsync.domain.fifo import FifoBook
from finsync.domain.gains import Trade

pytestmark = pytest.mark.unit


def test_a_sale_realises_against_the_oldest_lots_first() -> None:
    book = FifoBook()
    book.apply(
        [
            Trade(date(2026, 1, 3), "AAPL", S.SELL, D(15), D("3000")),  # sorted by day: after both buys
            Trade(date(2026, 1, 1), "AAPL", S.BUY, D(10), D("-1000")),  # 100 each
            Trade(date(2026, 1, 2), "AAPL", S.BUY, D(10), D("-1500")),  # 150 each
        ]
    )
    # 10 at 100 + 5 at 150 = 1750 of cost against 3000 of proceeds.
    assert book.realised["AAPL"] == D("1250")
    assert (book.quantity("AAPL"), book.cost("AAPL")) == (D(5), D("750"))
    assert book.unmatched == set()


def test_selling_more_than_bought_realises_only_the_matched_part() -> None:
    book = FifoBook()
    book.apply(
        [
            Trade(date(2026, 1, 1), "X", S.BUY, D(2), D("-20")),
            Trade(date(2026, 1, 2), "X", S.SELL, D(4), D("60")),
        ]
    )
    assert book.realised["X"] == D("10")  # half the proceeds (30) minus the 2 shares' cost (20)
    assert book.unmatched == {"X"}
    assert book.quantity("X") == 0


def test_a_same_day_sale_given_before_its_buy_still_matches_it() -> None:
    """Trades carry a date only, and the store lists them newest first: a day trade (buy, then
    sell the same day) arrives sell first. The sale must still match that day's buy."""
    book = FifoBook()
    book.apply(
        [
            Trade(date(2026, 1, 2), "X", S.SELL, D(1), D("12")),
            Trade(date(2026, 1, 2), "X", S.BUY, D(1), D("-10")),
        ]
    )
    assert book.unmatched == set()
    assert book.realised["X"] == D("2")
    assert book.quantity("X") == 0


def test_reinvested_dividends_buy_a_lot() -> None:
    book = FifoBook()
    book.apply(
        [
            Trade(date(2026, 1, 1), "X", S.BUY, D(2), D("-20")),
            Trade(date(2026, 1, 2), "X", S.REINVEST, D(1), D("-12")),
        ]
    )
    assert (book.quantity("X"), book.cost("X")) == (D(3), D("32"))
