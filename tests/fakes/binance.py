"""A fake Binance spot API that verifies the real request signing.

Signed endpoints (``/api/v3/account``, ``myTrades``, ``/sapi/v1/capital/*``,
``apiRestrictions``) require the ``X-MBX-APIKEY`` header, a ``timestamp`` within
``recvWindow`` of the real time (ccxt signs with the wall clock) and ``signature`` = hex
HMAC-SHA256 of the query string before it, with the secret. ``myTrades`` needs a symbol and
pages by ``fromId`` (ascending, at most ``limit``; without ``fromId``, the newest
``limit``); deposit and withdrawal history refuse a window longer than 90 days and answer
the window's newest ``limit`` items (default and most 1,000), newest first, saying nothing
of the rest. Every answer carries ``X-MBX-USED-WEIGHT-1M``. ``store.inject(path, fault)``
makes the next request to a path fail as Binance does: ``429`` (Retry-After), ``418`` (IP
ban), ``key`` (-2015), ``timestamp`` (-1021), ``maintenance`` and ``error``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from finsync.providers.http import Clock

NINETY_DAYS_MS = 90 * 86_400_000
TRANSFER_LIMIT = 1000  # deposit and withdrawal history: ``limit`` defaults to 1,000, at most 1,000
WEIGHTS = {"account": 20, "myTrades": 20, "hisrec": 1, "history": 1, "apiRestrictions": 1, "exchangeInfo": 20}


@dataclass
class BinanceStore:
    key: str = "fake-binance-key-0001"
    secret: str = "fake-binance-secret-0001"
    uid: int = 354937868
    # symbol id → (base, quote). As on the real Binance: USDT, EUR and BTC markets, no USD ones
    # (USDT is a coin, not the dollar).
    markets: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "BTCUSDT": ("BTC", "USDT"),
            "ETHUSDT": ("ETH", "USDT"),
            "ETHBTC": ("ETH", "BTC"),
            "EURUSDT": ("EUR", "USDT"),
            "BTCEUR": ("BTC", "EUR"),
            "ETHEUR": ("ETH", "EUR"),
            "SHIBUSDT": ("SHIB", "USDT"),
            "BNBUSDT": ("BNB", "USDT"),
        }
    )
    prices: dict[str, str] = field(
        default_factory=lambda: {
            "BTCUSDT": "60000.00",
            "ETHUSDT": "3000.00",
            "ETHBTC": "0.05",
            "EURUSDT": "1.0800",
            "BTCEUR": "55500.00",
            "ETHEUR": "2780.00",
            "SHIBUSDT": "0.00002500",
            "BNBUSDT": "600.00",
        }
    )
    balances: dict[str, tuple[str, str]] = field(default_factory=dict)  # asset → (free, locked)
    trades: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # symbol id → trades
    deposits: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    restrictions: dict[str, bool] = field(
        default_factory=lambda: {
            "enableReading": True,
            "enableSpotAndMarginTrading": False,
            "enableWithdrawals": False,
        }
    )
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    weight: int = 0

    def inject(self, path: str, fault: str) -> None:
        self.faults.setdefault(path, []).append(fault)

    def add_trade(
        self,
        symbol: str,
        *,
        id: int,
        time_ms: int,
        buyer: bool,
        qty: str,
        price: str,
        quote_qty: str,
        commission: str,
        commission_asset: str,
    ) -> None:
        self.trades.setdefault(symbol, []).append(
            {
                "symbol": symbol,
                "id": id,
                "orderId": id * 10,
                "orderListId": -1,
                "price": price,
                "qty": qty,
                "quoteQty": quote_qty,
                "commission": commission,
                "commissionAsset": commission_asset,
                "time": time_ms,
                "isBuyer": buyer,
                "isMaker": False,
                "isBestMatch": True,
            }
        )


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"code": code, "msg": msg}, status_code=status, headers=headers)


def create_app(clock: Clock, store: BinanceStore) -> Starlette:
    def fault(path: str) -> Response | None:
        queued = store.faults.get(path) or store.faults.get("*")
        if not queued:
            return None
        kind = queued.pop(0)
        if kind == "429":
            return _error(
                429,
                -1003,
                "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute.",
                {"Retry-After": "30"},
            )
        if kind == "418":
            until = int((clock.now() + 7200) * 1000)
            return _error(
                418,
                -1003,
                f"Way too much request weight used; IP banned until {until}. Please use "
                "WebSocket Streams for live updates to avoid bans.",
                {"Retry-After": "7200"},
            )
        if kind == "key":
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if kind == "timestamp":
            return _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        if kind == "maintenance":
            return _error(503, 1, "System is under maintenance.")
        return _error(400, -1100, "Illegal characters found in a parameter.")

    def signed(request: Request) -> tuple[dict[str, str], Response | None]:
        raw = request.url.query
        params = dict(parse_qsl(raw, keep_blank_values=True))
        store.requests.append((request.url.path, params))
        if (bad := fault(request.url.path)) is not None:
            return params, bad
        if request.headers.get("X-MBX-APIKEY") != store.key:
            return params, _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(store.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(signature, expected):
            return params, _error(400, -1022, "Signature for this request is not valid.")
        window = int(params.get("recvWindow", "5000"))
        if abs(int(params.get("timestamp", "0")) - time.time() * 1000) > window:
            return params, _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return params, None

    def answer(body: Any, weight_of: str) -> Response:
        store.weight += WEIGHTS.get(weight_of, 1)
        return Response(
            json.dumps(body),
            media_type="application/json",
            headers={"X-MBX-USED-WEIGHT-1M": str(store.weight)},
        )

    async def time_(request: Request) -> Response:
        store.requests.append((request.url.path, {}))
        return answer({"serverTime": int(time.time() * 1000)}, "time")

    async def exchange_info(request: Request) -> Response:
        store.requests.append((request.url.path, {}))
        if (bad := fault(request.url.path)) is not None:
            return bad
        symbols = [
            {
                "symbol": sid,
                "status": "TRADING",
                "baseAsset": base,
                "baseAssetPrecision": 8,
                "quoteAsset": quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"],
                "icebergAllowed": True,
                "ocoAllowed": True,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": "0.00000001",
                        "maxPrice": "1000000.00000000",
                        "tickSize": "0.00000001",
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": "0.00000001",
                        "maxQty": "90000000000.00000000",
                        "stepSize": "0.00000001",
                    },
                ],
                "permissions": [],
                "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
            }
            for sid, (base, quote) in store.markets.items()
        ]
        return answer(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": symbols,
            },
            "exchangeInfo",
        )

    async def tickers(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        wanted = json.loads(request.query_params.get("symbols", "null")) or list(store.prices)
        unknown = [s for s in wanted if s not in store.prices]
        if unknown:
            return _error(400, -1121, "Invalid symbol.")
        return answer(
            [
                {
                    "symbol": s,
                    "lastPrice": store.prices[s],
                    "openTime": 0,
                    "closeTime": 0,
                    "volume": "1",
                    "quoteVolume": "1",
                }
                for s in wanted
            ],
            "ticker",
        )

    async def account(request: Request) -> Response:
        _, bad = signed(request)
        if bad is not None:
            return bad
        balances = [{"asset": a, "free": f, "locked": lk} for a, (f, lk) in store.balances.items()]
        return answer(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "updateTime": 0,
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": store.uid,
            },
            "account",
        )

    async def my_trades(request: Request) -> Response:
        params, bad = signed(request)
        if bad is not None:
            return bad
        symbol = params.get("symbol")
        if not symbol:
            return _error(
                400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        limit = min(int(params.get("limit", "500")), 1000)
        trades = sorted(store.trades.get(symbol, []), key=lambda t: t["id"])
        if "fromId" in params:
            page = [t for t in trades if t["id"] >= int(params["fromId"])][:limit]
        else:
            page = trades[-limit:]
        return answer(page, "myTrades")

    def windowed(items: list[dict[str, Any]], stamp: str, params: dict[str, str]) -> Response | list[Any]:
        start = int(params.get("startTime", "0"))
        end = int(params.get("endTime", str(int(time.time() * 1000))))
        if "startTime" in params and end - start > NINETY_DAYS_MS:
            return _error(400, -1127, "More than 90 days between startTime and endTime.")
        limit = min(int(params.get("limit", str(TRANSFER_LIMIT))), TRANSFER_LIMIT)
        found = [i for i in items if start <= i["_t"] <= end]
        return sorted(found, key=lambda i: i["_t"], reverse=True)[:limit]  # newest first, silently cut

    async def deposits(request: Request) -> Response:
        params, bad = signed(request)
        if bad is not None:
            return bad
        found = windowed(store.deposits, "insertTime", params)
        if isinstance(found, Response):
            return found
        return answer([{k: v for k, v in d.items() if k != "_t"} for d in found], "hisrec")

    async def withdrawals(request: Request) -> Response:
        params, bad = signed(request)
        if bad is not None:
            return bad
        found = windowed(store.withdrawals, "applyTime", params)
        if isinstance(found, Response):
            return found
        return answer([{k: v for k, v in w.items() if k != "_t"} for w in found], "history")

    async def restrictions(request: Request) -> Response:
        _, bad = signed(request)
        if bad is not None:
            return bad
        return answer(
            {"ipRestrict": False, "createTime": 1698645219000, **store.restrictions}, "apiRestrictions"
        )

    return Starlette(
        routes=[
            Route("/api/v3/time", time_),
            Route("/api/v3/exchangeInfo", exchange_info),
            Route("/api/v3/ticker/24hr", tickers),
            Route("/api/v3/account", account),
            Route("/api/v3/myTrades", my_trades),
            Route("/sapi/v1/capital/deposit/hisrec", deposits),
            Route("/sapi/v1/capital/withdraw/history", withdrawals),
            Route("/sapi/v1/account/apiRestrictions", restrictions),
        ]
    )


def api_urls(url: str) -> dict[str, str]:
    """ccxt's Binance API groups pointed at the fake."""
    return {"public": f"{url}/api/v3", "private": f"{url}/api/v3", "sapi": f"{url}/sapi/v1"}


def seed(store: BinanceStore, now: float) -> None:
    """A spot account: BTC, ETH, SHIB (priced through USDT), some EUR; trades, a deposit, a withdrawal."""
    day = 86_400_000
    t = int(now * 1000)
    store.balances = {
        "BTC": ("0.50000000", "0.00000000"),
        "ETH": ("2.00000000", "0.50000000"),
        "SHIB": ("1000000.00", "0.00"),
        "USDT": ("150.25000000", "0.00000000"),
        "EUR": ("100.00", "0.00"),
        "DOGE": ("0.00000000", "0.00000000"),
    }
    for i in range(3):
        store.add_trade(
            "BTCUSDT",
            id=1000 + i,
            time_ms=t - (10 - i) * day,
            buyer=True,
            qty="0.10000000",
            price="50000.00",
            quote_qty="5000.00000000",
            commission="0.00750000",
            commission_asset="BNB",
        )
    store.add_trade(
        "ETHBTC",
        id=77,
        time_ms=t - 5 * day,
        buyer=False,
        qty="0.50000000",
        price="0.05000000",
        quote_qty="0.02500000",
        commission="0.00002500",
        commission_asset="BTC",
    )
    store.deposits.append(
        {
            "id": "769800519366885376",
            "amount": "0.60000000",
            "coin": "BTC",
            "network": "BTC",
            "status": 1,
            "address": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "addressTag": "",
            "txId": "98A3EA560C6B3336D348B6C83F0F95ECE4F1F5919E94BD006E5BF3BF264FACFC",
            "insertTime": t - 200 * day,
            "transferType": 0,
            "confirmTimes": "1/1",
            "unlockConfirm": 0,
            "walletType": 0,
            "_t": t - 200 * day,
        }
    )
    store.withdrawals.append(
        withdrawal(
            "b6ae22b3aa844210a7041aee7589627c",
            t - 3 * day,
            amount="100.00000000",
            fee="1.00000000",
            tx="0xb5ef8c13b968a406cc62a93a8bd80f9e9a906ef1b3fcf20a2e48573c17659268",
        )
    )


def withdrawal(id: str, at_ms: int, *, amount: str, fee: str, tx: str) -> dict[str, Any]:
    """A completed USDT withdrawal as ``/sapi/v1/capital/withdraw/history`` lists it: its times
    in whole seconds, as Binance writes ``applyTime``."""
    applied = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at_ms // 1000))
    return {
        "id": id,
        "amount": amount,
        "transactionFee": fee,
        "coin": "USDT",
        "status": 6,
        "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
        "txId": tx,
        "applyTime": applied,
        "network": "ETH",
        "transferType": 0,
        "info": "",
        "confirmNo": 3,
        "walletType": 1,
        "txKey": "",
        "completeTime": applied,
        "_t": at_ms,
    }
