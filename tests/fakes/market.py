"""Fake market data sources on loopback, each speaking its real wire format.

One Starlette app serves them under prefixes (``/ecb``, ``/frankfurter``, ``/yahoo``,
``/tiingo``, ``/alphavantage``, ``/coingecko``); ``settings_for(url)`` points finsync at
them. Data lives in a ``MarketStore`` the test fills; ``fail`` queues HTTP statuses per
endpoint and ``av_limited`` makes Alpha Vantage answer its HTTP-200 rate-limit note.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TIINGO_KEY = "fake-tiingo-key-0123456789"
AV_KEY = "FAKEALPHAVANTAGEKEY"
_ECB_NS = 'xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"'


@dataclass
class YahooSeries:
    currency: str
    closes: dict[date, float | None]
    timezone: str = "America/New_York"
    gmtoffset: int = -18000
    session_hour: int = 14  # UTC hour the daily bar is stamped at (the session start)
    splits: list[tuple[date, int, int]] = field(default_factory=list)  # day, numerator, denominator

    def stamp(self, day: date) -> int:
        """Bars are stamped at the session start in UTC; hours >= 24 fall on the next UTC day."""
        base = datetime.combine(day, time(), UTC) + timedelta(hours=self.session_hour)
        return int(base.timestamp())


@dataclass
class MarketStore:
    fixings: dict[date, dict[str, str]] = field(default_factory=dict)
    yahoo: dict[str, YahooSeries] = field(default_factory=dict)
    yahoo_search: dict[str, str] = field(default_factory=dict)  # ISIN -> symbol
    tiingo: dict[str, dict[date, str]] = field(default_factory=dict)
    alphavantage: dict[str, dict[date, str]] = field(default_factory=dict)
    av_limited: bool = False
    coins: list[dict[str, str]] = field(default_factory=list)
    coingecko: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    faults: defaultdict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))

    def fail(self, endpoint: str, status: int, times: int = 1) -> None:
        self.faults[endpoint].extend([status] * times)


def ecb_xml(days: dict[date, dict[str, str]]) -> bytes:
    cubes = "".join(
        f'<Cube time="{day.isoformat()}">'
        + "".join(f'<Cube currency="{c}" rate="{r}"/>' for c, r in sorted(rates.items()))
        + "</Cube>"
        for day, rates in sorted(days.items(), reverse=True)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><gesmes:Envelope {_ECB_NS}>'
        "<gesmes:subject>Reference rates</gesmes:subject>"
        "<gesmes:Sender><gesmes:name>European Central Bank</gesmes:name></gesmes:Sender>"
        f"<Cube>{cubes}</Cube></gesmes:Envelope>"
    ).encode()


def _day(epoch: str) -> date:
    return datetime.fromtimestamp(int(epoch), UTC).date()


def create_app(store: MarketStore) -> Starlette:
    def count(endpoint: str) -> Response | None:
        store.requests[endpoint] += 1
        queued = store.faults.get(endpoint)
        if queued:
            status = queued.popleft()
            headers = {"Retry-After": "1"} if status == 429 else {}
            return Response(f"fault {status}", status_code=status, headers=headers)
        return None

    async def ecb(request: Request) -> Response:
        name = request.path_params["name"]
        if (fault := count(f"ecb:{name}")) is not None:
            return fault
        days = sorted(store.fixings)
        if name == "eurofxref-daily.xml":
            chosen = days[-1:]
        elif name == "eurofxref-hist-90d.xml":
            chosen = [d for d in days if days and d > days[-1] - timedelta(days=90)]
        elif name == "eurofxref-hist.xml":
            chosen = days
        else:
            return Response("not found", status_code=404)
        return Response(ecb_xml({d: store.fixings[d] for d in chosen}), media_type="text/xml")

    async def frankfurter(request: Request) -> Response:
        if (fault := count("frankfurter")) is not None:
            return fault
        first, _, last = request.path_params["span"].partition("..")
        start, end = date.fromisoformat(first), date.fromisoformat(last or first)
        rates = {
            d.isoformat(): {c: float(r) for c, r in v.items()}
            for d, v in sorted(store.fixings.items())
            if start <= d <= end
        }
        return JSONResponse(
            {"amount": 1.0, "base": "EUR", "start_date": first, "end_date": last, "rates": rates}
        )

    async def chart(request: Request) -> Response:
        symbol = request.path_params["symbol"]
        if (fault := count("yahoo:chart")) is not None:
            return fault
        series = store.yahoo.get(symbol)
        if series is None:
            error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
            return JSONResponse({"chart": {"result": None, "error": error}}, status_code=404)
        start, end = _day(request.query_params["period1"]), _day(request.query_params["period2"])
        days = [d for d in sorted(series.closes) if start <= d < end]
        # Yahoo's close is split-adjusted: a close before a split is divided by its ratio.
        closes: list[float | None] = []
        for d in days:
            value = series.closes[d]
            for split_day, num, den in series.splits:
                if value is not None and d < split_day:
                    value = value * den / num
            closes.append(value)
        result = {
            "meta": {
                "currency": series.currency,
                "symbol": symbol,
                "exchangeName": "FAKE",
                "instrumentType": "EQUITY",
                "gmtoffset": series.gmtoffset,
                "timezone": "X",
                "exchangeTimezoneName": series.timezone,
                "regularMarketPrice": closes[-1] if closes else None,
            },
            "timestamp": [series.stamp(d) for d in days],
            "events": {
                "splits": {
                    str(series.stamp(d)): {
                        "date": series.stamp(d),
                        "numerator": n,
                        "denominator": m,
                        "splitRatio": f"{n}:{m}",
                    }
                    for d, n, m in series.splits
                }
            },
            "indicators": {"quote": [{"close": closes}], "adjclose": [{"adjclose": closes}]},
        }
        return JSONResponse({"chart": {"result": [result], "error": None}})

    async def search(request: Request) -> Response:
        if (fault := count("yahoo:search")) is not None:
            return fault
        found = store.yahoo_search.get(request.query_params.get("q", ""))
        quotes = [{"symbol": found, "quoteType": "EQUITY"}] if found else []
        return JSONResponse({"quotes": quotes, "news": []})

    async def tiingo(request: Request) -> Response:
        if (fault := count("tiingo")) is not None:
            return fault
        if request.headers.get("authorization") != f"Token {TIINGO_KEY}":
            return JSONResponse({"detail": "Invalid token."}, status_code=401)
        series = store.tiingo.get(request.path_params["ticker"])
        if series is None:
            return JSONResponse({"detail": "Error: Ticker 'X' not found"}, status_code=404)
        start = date.fromisoformat(request.query_params["startDate"])
        end = date.fromisoformat(request.query_params["endDate"])
        rows = [
            {
                "date": f"{d.isoformat()}T00:00:00.000Z",
                "close": float(c),
                "adjClose": float(c),
                "divCash": 0.0,
            }
            for d, c in sorted(series.items())
            if start <= d <= end
        ]
        return JSONResponse(rows)

    async def alphavantage(request: Request) -> Response:
        if (fault := count("alphavantage")) is not None:
            return fault
        q = request.query_params
        if q.get("apikey") != AV_KEY:
            return JSONResponse({"Error Message": "the parameter apikey is invalid or missing."})
        if store.av_limited:
            note = "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day."
            return JSONResponse({"Information": note})
        series = store.alphavantage.get(q.get("symbol", ""))
        if series is None:
            return JSONResponse({"Error Message": "Invalid API call."})
        body = {
            "Meta Data": {"2. Symbol": q["symbol"]},
            "Time Series (Daily)": {
                d.isoformat(): {"4. close": c} for d, c in sorted(series.items(), reverse=True)
            },
        }
        return Response(json.dumps(body), media_type="application/json")

    async def coins_list(request: Request) -> Response:
        if (fault := count("coingecko:list")) is not None:
            return fault
        return JSONResponse(store.coins)

    async def market_chart(request: Request) -> Response:
        if (fault := count("coingecko:range")) is not None:
            return fault
        points = store.coingecko.get(request.path_params["coin"])
        if points is None:
            return JSONResponse({"error": "coin not found"}, status_code=404)
        start, end = int(request.query_params["from"]) * 1000, int(request.query_params["to"]) * 1000
        return JSONResponse({"prices": [[ms, p] for ms, p in points if start <= ms <= end]})

    return Starlette(
        routes=[
            Route("/ecb/{name}", ecb),
            Route("/frankfurter/{span}", frankfurter),
            Route("/yahoo/v8/finance/chart/{symbol}", chart),
            Route("/yahoo/v1/finance/search", search),
            Route("/tiingo/tiingo/daily/{ticker}/prices", tiingo),
            Route("/alphavantage/query", alphavantage),
            Route("/coingecko/coins/list", coins_list),
            Route("/coingecko/coins/{coin}/market_chart/range", market_chart),
        ]
    )


def settings_for(url: str, **overrides: Any) -> dict[str, Any]:
    """Settings that point every market data source at the fake server."""
    return {
        "ecb_url": f"{url}/ecb",
        "frankfurter_url": f"{url}/frankfurter",
        "yahoo_url": f"{url}/yahoo",
        "tiingo_url": f"{url}/tiingo",
        "tiingo_api_key": TIINGO_KEY,
        "alphavantage_url": f"{url}/alphavantage",
        "alphavantage_api_key": AV_KEY,
        "coingecko_url": f"{url}/coingecko",
        "provider_timeout_seconds": 5.0,
    } | overrides


def business_days(start: date, end: date) -> list[date]:
    days, day = [], start
    while day <= end:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days
