"""A fake OKX v5 REST API that verifies the real request signing.

Private calls carry ``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE``, ``OK-ACCESS-TIMESTAMP`` (ISO 8601
with milliseconds, refused 30 s away from the real time: ccxt signs with the wall clock) and
``OK-ACCESS-SIGN`` = base64(HMAC-SHA256(timestamp + method + path with query + body, secret)).
Answers are ``{"code": "0", "msg": "", "data": [...]}``; errors carry OKX's code (``50111``
invalid key, ``50105`` wrong passphrase, ``50113`` invalid sign, ``50102`` expired timestamp,
``50011`` too many requests with HTTP 429, ``50001`` service upgrading with HTTP 503).

History answers as OKX documents it: newest first, at most ``limit`` (default and most 100).
``trade/fills-history`` (last 3 months) filters by ``begin``/``end`` (ms, inclusive);
``asset/balances`` is the funding account (where deposits land), apart from the trading
account's ``account/balance``. ``asset/deposit-history`` and ``withdrawal-history`` take
``before`` (newer than, ms) and ``after`` (earlier than, ms, exclusive); ``account/bills``
holds the last 7 days and filters by ``begin``/``end``. ``store.inject(path, fault)`` makes
the next call to a path (e.g. ``"account/balance"``) fail with ``key``, ``passphrase``,
``sign``, ``timestamp``, ``429`` or ``maintenance``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

PAGE = 100
DAY_MS = 86_400_000
BILLS_DAYS = 7
FILLS_DAYS = 92


@dataclass
class OkxStore:
    key: str = "fake-okx-key-0001"
    secret: str = "FAKEOKXSECRET0001"
    passphrase: str = "fake-okx-passphrase"
    uid: str = "44705892343619584"
    # instId → (base, quote): spot markets in USDT, USDC and EUR, as OKX's EEA entity lists them
    markets: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "BTC-USDT": ("BTC", "USDT"),
            "ETH-USDT": ("ETH", "USDT"),
            "OKB-USDT": ("OKB", "USDT"),
            "BTC-EUR": ("BTC", "EUR"),
            "ETH-EUR": ("ETH", "EUR"),
            "USDT-EUR": ("USDT", "EUR"),
        }
    )
    prices: dict[str, str] = field(
        default_factory=lambda: {
            "BTC-USDT": "60000.1",
            "ETH-USDT": "3000.02",
            "OKB-USDT": "48.5",
            "BTC-EUR": "55550.5",
            "ETH-EUR": "2777.7",
            "USDT-EUR": "0.9259",
        }
    )
    balances: dict[str, str] = field(default_factory=dict)  # ccy → equity (trading account)
    # ccy → balance of the funding account (``asset/balances``): deposits land there, and a
    # coin stays there until moved to the trading account
    funding: dict[str, str] = field(default_factory=dict)
    perm: str = "read_only"
    fills: list[dict[str, Any]] = field(default_factory=list)
    deposits: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    bills: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def inject(self, path: str, fault: str) -> None:
        self.faults.setdefault(path, []).append(fault)

    def add_fill(
        self, inst: str, *, trade_id: int, ts: int, side: str, px: str, sz: str, fee: str, fee_ccy: str
    ) -> None:
        self.fills.append(
            {
                "instType": "SPOT",
                "instId": inst,
                "tradeId": str(trade_id),
                "ordId": str(trade_id * 7),
                "clOrdId": "",
                "billId": str(trade_id * 11),
                "subType": "1" if side == "buy" else "2",
                "tag": "",
                "fillPx": px,
                "fillSz": sz,
                "fillIdxPx": "",
                "fillPnl": "0",
                "fillPxVol": "",
                "fillPxUsd": "",
                "fillMarkVol": "",
                "fillFwdPx": "",
                "fillMarkPx": "",
                "side": side,
                "posSide": "net",
                "execType": "T",
                "feeCcy": fee_ccy,
                "fee": fee,  # negative: charged
                "ts": str(ts),
                "fillTime": str(ts),
            }
        )


def _answer(data: list[Any], status: int = 200, code: str = "0", msg: str = "") -> Response:
    return Response(
        json.dumps({"code": code, "msg": msg, "data": data}),
        status_code=status,
        media_type="application/json",
    )


_FAULTS = {
    "key": (401, "50111", "Invalid OK-ACCESS-KEY"),
    "passphrase": (401, "50105", "OK-ACCESS-PASSPHRASE incorrect"),
    "sign": (401, "50113", "Invalid Sign"),
    "timestamp": (401, "50102", "Timestamp request expired"),
    "429": (429, "50011", "Too Many Requests"),
    "maintenance": (503, "50001", "Service temporarily unavailable. Please try again later"),
}


def _newest(
    items: list[dict[str, Any]], params: dict[str, str], lo: str, hi: str, *, inclusive: bool
) -> list[Any]:
    """Newest first, at most ``limit``, between the ``lo`` and ``hi`` parameters (ms)."""
    low = int(params[lo]) if params.get(lo) else None
    high = int(params[hi]) if params.get(hi) else None
    limit = min(int(params.get("limit") or PAGE), PAGE)

    def inside(ts: int) -> bool:
        if inclusive:
            return (low is None or ts >= low) and (high is None or ts <= high)
        return (low is None or ts > low) and (high is None or ts < high)

    found = sorted((i for i in items if inside(int(i["ts"]))), key=lambda i: int(i["ts"]), reverse=True)
    return found[:limit]


def create_app(clock: Clock, store: OkxStore) -> Starlette:
    def fault(path: str) -> Response | None:
        queued = store.faults.get(path)
        if not queued:
            return None
        status, code, msg = _FAULTS[queued.pop(0)]
        return _answer([], status, code, msg)

    async def signed(request: Request) -> tuple[dict[str, str], Response | None]:
        path = request.url.path.removeprefix("/api/v5/")
        params = dict(request.query_params)
        store.requests.append((path, params))
        if (bad := fault(path)) is not None:
            return params, bad
        headers = request.headers
        if headers.get("OK-ACCESS-KEY") != store.key:
            return params, _answer([], 401, "50111", "Invalid OK-ACCESS-KEY")
        if headers.get("OK-ACCESS-PASSPHRASE") != store.passphrase:
            return params, _answer([], 401, "50105", "OK-ACCESS-PASSPHRASE incorrect")
        stamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        try:
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return params, _answer([], 401, "50112", "Invalid OK-ACCESS-TIMESTAMP")
        if abs(at - time.time()) > 30:
            return params, _answer([], 401, "50102", "Timestamp request expired")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        body = (await request.body()).decode()
        payload = f"{stamp}{request.method}{target}{body}"
        expected = base64.b64encode(
            hmac.new(store.secret.encode(), payload.encode(), hashlib.sha256).digest()
        )
        if not hmac.compare_digest(headers.get("OK-ACCESS-SIGN", "").encode(), expected):
            return params, _answer([], 401, "50113", "Invalid Sign")
        return params, None

    def now_ms() -> int:
        return int(clock.now() * 1000)

    async def instruments(request: Request) -> Response:
        store.requests.append(("public/instruments", dict(request.query_params)))
        if request.query_params.get("instType") != "SPOT":
            return _answer([])
        return _answer(
            [
                {
                    "alias": "",
                    "baseCcy": base,
                    "category": "1",
                    "ctMult": "",
                    "ctType": "",
                    "ctVal": "",
                    "ctValCcy": "",
                    "expTime": "",
                    "instFamily": "",
                    "instId": inst,
                    "instType": "SPOT",
                    "lever": "",
                    "listTime": "1606468572000",
                    "lotSz": "0.00000001",
                    "maxLmtSz": "9999999999",
                    "maxMktSz": "1000000",
                    "minSz": "0.00001",
                    "optType": "",
                    "quoteCcy": quote,
                    "settleCcy": "",
                    "state": "live",
                    "stk": "",
                    "tickSz": "0.1",
                    "uly": "",
                }
                for inst, (base, quote) in store.markets.items()
            ]
        )

    async def tickers(request: Request) -> Response:
        store.requests.append(("market/tickers", dict(request.query_params)))
        ts = str(now_ms())
        return _answer(
            [
                {
                    "instType": "SPOT",
                    "instId": inst,
                    "last": price,
                    "lastSz": "0.1",
                    "askPx": price,
                    "askSz": "1",
                    "bidPx": price,
                    "bidSz": "1",
                    "open24h": price,
                    "high24h": price,
                    "low24h": price,
                    "volCcy24h": "1",
                    "vol24h": "1",
                    "ts": ts,
                    "sodUtc0": price,
                    "sodUtc8": price,
                }
                for inst, price in store.prices.items()
            ]
        )

    async def currencies(request: Request) -> Response:
        _, bad = await signed(request)
        return bad or _answer([])

    async def balance(request: Request) -> Response:
        _, bad = await signed(request)
        if bad is not None:
            return bad
        ts = str(now_ms())
        details = [
            {
                "availBal": eq,
                "availEq": eq,
                "cashBal": eq,
                "ccy": ccy,
                "eq": eq,
                "frozenBal": "0",
                "ordFrozen": "0",
                "uTime": ts,
            }
            for ccy, eq in store.balances.items()
        ]
        return _answer([{"adjEq": "", "details": details, "totalEq": "0", "uTime": ts}])

    async def funding(request: Request) -> Response:
        _, bad = await signed(request)
        if bad is not None:
            return bad
        return _answer(
            [
                {"availBal": bal, "bal": bal, "ccy": ccy, "frozenBal": "0"}
                for ccy, bal in store.funding.items()
            ]
        )

    async def config(request: Request) -> Response:
        _, bad = await signed(request)
        if bad is not None:
            return bad
        return _answer(
            [
                {
                    "acctLv": "1",
                    "autoLoan": False,
                    "label": "finsync",
                    "level": "Lv1",
                    "mainUid": store.uid,
                    "uid": store.uid,
                    "perm": store.perm,
                    "posMode": "net_mode",
                    "roleType": "0",
                    "ip": "",
                }
            ]
        )

    async def fills(request: Request) -> Response:
        params, bad = await signed(request)
        if bad is not None:
            return bad
        if params.get("instType") != "SPOT":
            return _answer([], 400, "51000", "Parameter instType error")
        oldest = now_ms() - FILLS_DAYS * DAY_MS
        items = [f for f in store.fills if int(f["ts"]) >= oldest]
        if params.get("instId"):
            items = [f for f in items if f["instId"] == params["instId"]]
        return _answer(_newest(items, params, "begin", "end", inclusive=True))

    async def deposits(request: Request) -> Response:
        params, bad = await signed(request)
        return bad or _answer(_newest(store.deposits, params, "before", "after", inclusive=False))

    async def withdrawals(request: Request) -> Response:
        params, bad = await signed(request)
        return bad or _answer(_newest(store.withdrawals, params, "before", "after", inclusive=False))

    async def bills(request: Request) -> Response:
        params, bad = await signed(request)
        if bad is not None:
            return bad
        oldest = now_ms() - BILLS_DAYS * DAY_MS
        items = [b for b in store.bills if int(b["ts"]) >= oldest]
        return _answer(_newest(items, params, "begin", "end", inclusive=True))

    return Starlette(
        routes=[
            Route("/api/v5/public/instruments", instruments),
            Route("/api/v5/market/tickers", tickers),
            Route("/api/v5/asset/currencies", currencies),
            Route("/api/v5/account/balance", balance),
            Route("/api/v5/account/config", config),
            Route("/api/v5/asset/balances", funding),
            Route("/api/v5/trade/fills-history", fills),
            Route("/api/v5/asset/deposit-history", deposits),
            Route("/api/v5/asset/withdrawal-history", withdrawals),
            Route("/api/v5/account/bills", bills),
        ]
    )


def api_urls(url: str) -> dict[str, str]:
    """ccxt's OKX API group pointed at the fake."""
    return {"rest": url}


def seed(store: OkxStore, now: float) -> None:
    """A trading account: BTC, ETH, OKB, USDT and EUR; fills, a deposit, a withdrawal, bills."""
    t = int(now * 1000)
    store.balances = {"BTC": "0.25", "ETH": "1.5", "OKB": "10", "USDT": "200", "EUR": "50"}
    store.add_fill(
        "BTC-USDT",
        trade_id=501,
        ts=t - 10 * DAY_MS,
        side="buy",
        px="50000",
        sz="0.25",
        fee="-0.00025",
        fee_ccy="BTC",
    )
    store.add_fill(
        "ETH-EUR",
        trade_id=502,
        ts=t - 4 * DAY_MS,
        side="sell",
        px="2700",
        sz="0.5",
        fee="-1.35",
        fee_ccy="EUR",
    )
    store.deposits.append(
        {
            "actualDepBlkConfirm": "17",
            "amt": "0.25",
            "areaCodeFrom": "",
            "ccy": "BTC",
            "chain": "BTC-Bitcoin",
            "depId": "88165462",
            "from": "",
            "fromWdId": "",
            "state": "2",
            "to": "bc1qxyzfakeaddress0000000000000000000000",
            "ts": str(t - 20 * DAY_MS),
            "txId": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
        }
    )
    # the trading account's bills: a trade leg and an auto token conversion (type 4), neither income
    for bill_id, kind, ccy, change in (("6101", "2", "USDT", "-12500"), ("6102", "4", "USDT", "3.2")):
        store.bills.append(
            {
                "bal": "200",
                "balChg": change,
                "billId": bill_id,
                "ccy": ccy,
                "fee": "0",
                "instId": "",
                "instType": "SPOT",
                "mgnMode": "cash",
                "notes": "",
                "ordId": "",
                "subType": "1",
                "sz": change.lstrip("-"),
                "ts": str(t - DAY_MS),
                "type": kind,
            }
        )
    store.withdrawals.append(
        {
            "chain": "USDT-TRC20",
            "fee": "1",
            "feeCcy": "USDT",
            "ccy": "USDT",
            "clientId": "",
            "amt": "50",
            "txId": "f0e1d2c3b4a5f0e1d2c3b4a5f0e1d2c3b4a5f0e1d2c3b4a5f0e1d2c3b4a5f0e1",
            "from": "",
            "areaCodeFrom": "",
            "to": "TFakeTronAddress000000000000000000",
            "areaCodeTo": "",
            "state": "2",
            "ts": str(t - 2 * DAY_MS),
            "nonTradableAsset": False,
            "wdId": "58041719",
        }
    )
