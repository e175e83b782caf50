"""Source parsers on real wire shapes, and the traps of real market data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.domain.errors import BadData, RateLimited
from finsync.domain.market import is_fixing_day, last_fixing_day, to_major_unit
from finsync.infrastructure.market.alphavantage import parse_daily
from finsync.infrastructure.market.coingecko import parse_market_chart
from finsync.infrastructure.market.ecb import parse_fixings
from finsync.infrastructure.market.frankfurter import parse_range
from finsync.infrastructure.market.yahoo import parse_chart
from tests.fakes.market import YahooSeries, ecb_xml

pytestmark = pytest.mark.unit


def _chart(series: YahooSeries, symbol: str = "X") -> dict[str, object]:
    days = sorted(series.closes)
    closes = []
    for d in days:
        value = series.closes[d]
        for split_day, num, den in series.splits:
            if value is not None and d < split_day:
                value = value * den / num
        closes.append(value)
    splits = {
        str(series.stamp(d)): {"date": series.stamp(d), "numerator": n, "denominator": m}
        for d, n, m in series.splits
    }
    meta = {"currency": series.currency, "symbol": symbol, "gmtoffset": series.gmtoffset}
    meta["exchangeTimezoneName"] = series.timezone
    return {
        "chart": {
            "result": [
                {
                    "meta": meta,
                    "timestamp": [series.stamp(d) for d in days],
                    "events": {"splits": splits},
                    "indicators": {"quote": [{"close": closes}]},
                }
            ],
            "error": None,
        }
    }


def test_ecb_xml_gives_units_per_euro_per_day() -> None:
    xml = ecb_xml(
        {date(2024, 3, 28): {"USD": "1.0811", "JPY": "163.45"}, date(2024, 3, 27): {"USD": "1.0827"}}
    )
    fixings = parse_fixings(xml)
    assert {(f.currency, f.day, f.rate) for f in fixings} == {
        ("USD", date(2024, 3, 28), Decimal("1.0811")),
        ("JPY", date(2024, 3, 28), Decimal("163.45")),
        ("USD", date(2024, 3, 27), Decimal("1.0827")),
    }


def test_ecb_xml_with_entities_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>'
    with pytest.raises(BadData):
        parse_fixings(bomb)


def test_frankfurter_range_and_single_day() -> None:
    body = {"amount": 1.0, "base": "EUR", "rates": {"2024-01-02": {"USD": Decimal("1.0956")}}}
    assert [(f.currency, f.day, f.rate) for f in parse_range(body)] == [
        ("USD", date(2024, 1, 2), Decimal("1.0956"))
    ]
    single = {"amount": 1.0, "base": "EUR", "date": "2024-01-02", "rates": {"GBP": Decimal("0.86")}}
    assert [(f.currency, f.rate) for f in parse_range(single)] == [("GBP", Decimal("0.86"))]


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("GBp", "1234.5", ("12.345", "GBP")),
        ("GBX", "250", ("2.5", "GBP")),
        ("ZAc", "10050", ("100.5", "ZAR")),
        ("ILA", "3000", ("30", "ILS")),
        ("GBP", "12.5", ("12.5", "GBP")),
        ("usd", "3", ("3", "USD")),
    ],
)
def test_minor_unit_quotes_become_major(currency: str, amount: str, expected: tuple[str, str]) -> None:
    value, major = to_major_unit(Decimal(amount), currency)
    assert (value, major) == (Decimal(expected[0]), expected[1])


def test_yahoo_pence_listing_is_stored_in_pounds() -> None:
    series = YahooSeries("GBp", {date(2024, 3, 1): 7250.0}, "Europe/London", 0, 8)
    (bar,) = parse_chart(_chart(series, "VOD.L"))
    assert (bar.day, bar.close, bar.currency) == (date(2024, 3, 1), Decimal("72.5"), "GBP")


def test_yahoo_split_adjusted_closes_are_valued_as_traded() -> None:
    # A 4:1 split on 2024-06-10: Yahoo shows the 2024-06-07 close divided by 4 afterwards.
    series = YahooSeries(
        "USD", {date(2024, 6, 7): 1200.0, date(2024, 6, 10): 305.0}, splits=[(date(2024, 6, 10), 4, 1)]
    )
    bars = parse_chart(_chart(series))
    assert [(b.day, b.close) for b in bars] == [
        (date(2024, 6, 7), Decimal("1200.0")),
        (date(2024, 6, 10), Decimal("305.0")),
    ]
    assert not any(b.adjusted for b in bars)


def test_yahoo_fx_bar_stamped_the_previous_utc_day_is_read_in_exchange_time() -> None:
    # EURUSD=X: the 2024-04-02 bar starts at midnight London time (BST) = 23:00 UTC on 04-01.
    series = YahooSeries("USD", {date(2024, 4, 2): 1.0742}, "Europe/London", 3600, session_hour=-1)
    stamp = series.stamp(date(2024, 4, 2))
    assert datetime.fromtimestamp(stamp, UTC).date() == date(2024, 4, 1)
    (bar,) = parse_chart(_chart(series, "EURUSD=X"))
    assert bar.day == date(2024, 4, 2)


def test_yahoo_null_closes_are_no_trading() -> None:
    series = YahooSeries("USD", {date(2024, 3, 28): 10.0, date(2024, 3, 29): None})
    assert [b.day for b in parse_chart(_chart(series))] == [date(2024, 3, 28)]


def test_yahoo_without_result_is_bad_data() -> None:
    with pytest.raises(BadData):
        parse_chart({"chart": {"result": None, "error": {"code": "Not Found"}}})


@pytest.mark.parametrize("key", ["Note", "Information"])
def test_alpha_vantage_rate_limit_note_is_a_rate_limit_not_empty_data(key: str) -> None:
    with pytest.raises(RateLimited):
        parse_daily({key: "Thank you for using Alpha Vantage! ... 25 requests per day."}, "USD")


def test_alpha_vantage_daily_series() -> None:
    body = {
        "Meta Data": {},
        "Time Series (Daily)": {"2024-01-03": {"4. close": "161.10"}, "2024-01-02": {"4. close": "160.00"}},
    }
    assert [(b.day, b.close) for b in parse_daily(body, "USD")] == [
        (date(2024, 1, 2), Decimal("160.00")),
        (date(2024, 1, 3), Decimal("161.10")),
    ]


def test_coingecko_keeps_the_last_price_of_each_utc_day() -> None:
    day = datetime(2024, 1, 2, tzinfo=UTC)
    ms = int(day.timestamp() * 1000)
    body = {"prices": [[ms, 42000.5], [ms + 3_600_000, 42100.25], [ms + 86_400_000, 43000]]}
    bars = parse_market_chart(body, "USD")
    assert [(b.day, b.close) for b in bars] == [
        (date(2024, 1, 2), Decimal("42100.25")),
        (date(2024, 1, 3), Decimal("43000")),
    ]


@pytest.mark.parametrize(
    "day",
    [
        date(2024, 1, 1),
        date(2024, 3, 29),
        date(2024, 4, 1),
        date(2024, 5, 1),
        date(2024, 12, 25),
        date(2024, 12, 26),
    ],
)
def test_no_ecb_fixing_on_target_holidays(day: date) -> None:
    assert not is_fixing_day(day)
    assert last_fixing_day(day) < day


def test_fixing_days_are_target_working_days() -> None:
    assert is_fixing_day(date(2024, 3, 28))
    assert not is_fixing_day(date(2024, 3, 30))  # Saturday
    # Easter 2024: Thursday 28 March is the last fixing before Tuesday 2 April.
    assert last_fixing_day(date(2024, 4, 1)) == date(2024, 3, 28)
    assert last_fixing_day(date(2024, 4, 2)) == date(2024, 4, 2)
    assert last_fixing_day(date(2025, 4, 21)) == date(2025, 4, 17)  # Good Friday 18, Easter Monday 21
