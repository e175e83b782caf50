"""A fake HTX (formerly Huobi) spot REST API that verifies the real request signing.

Private calls carry ``AccessKeyId``, ``SignatureMethod=HmacSHA256``, ``SignatureVersion=2`` and
``Timestamp`` (UTC ``YYYY-MM-DDThh:mm:ss``, refused 5 minutes away from the real time: ccxt signs
with the wall clock) in the query, and ``Signature`` = base64(HMAC-SHA256(method + "\\n" + host +
"\\n" + path + "\\n" + the other parameters sorted by name, URL-encoded, joined by "&", secret)).
The host signed is HTX's (``api.huobi.pro``): the fake stands where a proxy forwarding to HTX
would. Answers are ``{"status": "ok", "data": ...}``; errors ``{"status": "error", "err-code":
…, "err-msg": …}`` with HTX's codes: ``api-signature-not-valid`` (unknown key, bad signature,
bad timestamp), ``rate-too-many-requests`` (HTTP 429), ``system-maintenance``.

History answers as HTX documents it:

- ``/v1/order/matchresults``: a window of at most 48 hours (``start-time`` defaults to
  ``end-time`` - 48 h, ``end-time`` to now) within the last 120 days, else ``invalid-start-date``
  (the shape reported in ccxt#6512); newest first, ``size`` at most 500 (default 100), and
  ``from`` (a record ``id``, not the trade id) with ``direct=next`` for the older page.
- ``/v1/query/deposit-withdraw``: every deposit (or withdrawal) ever, by id: ``direct=next``
  newest first from ``from`` (0 or absent: the latest), ``size`` at most 500; no time filter.
- ``/v2/account/ledger``: only transfers between the user's accounts, a window of at most
  10 days within the last 180 (``startTime``/``endTime``), else ``invalid-parameter``.

``store.inject(path, fault)`` makes the next call to a path (e.g.
``"/v1/account/accounts"``) fail with ``key``, ``sign``, ``429`` or ``maintenance``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

HOST = "api.huobi.pro"
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TRADE_WINDOW_MS = 48 * HOUR_MS
TRADE_DAYS = 120
LEDGER_WINDOW_MS = 10 * DAY_MS
LEDGER_DAYS = 180


@dataclass
class HtxStore:
    key: str = "fake-htx-access-key-0001"
    secret: str = "FAKEHTXSECRET0001"
    uid: int = 63628520
    spot_account: int = 10000001
    # symbol → (base, quote), as /v1/common/symbols lists them (lower case)
    markets: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "btcusdt": ("btc", "usdt"),
            "ethusdt": ("eth", "usdt"),
            "htxusdt": ("htx", "usdt"),
            "ethbtc": ("eth", "btc"),
            "usdtusd": ("usdt", "usd"),
        }
    )
    prices: dict[str, str] = field(
        default_factory=lambda: {
            "btcusdt": "60000.5",
            "ethusdt": "3000.25",
            "htxusdt": "0.0000017",
            "ethbtc": "0.05",
            "usdtusd": "0.9998",
        }
    )
    # currency → its chains (chain id, base chain), as /v2/reference/currencies lists them
    chains: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {
            "btc": [("btc", "BTC")],
            "eth": [("eth", "ETH")],
            "htx": [("htt", "TRX")],
            "trx": [("trx", "TRX")],
            "usdt": [("trc20usdt", "TRX"), ("usdterc20", "ETH")],
        }
    )
    balances: dict[str, tuple[str, str]] = field(default_factory=dict)  # currency → (trade, frozen)
    permission: str = "readOnly"
    trades: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def inject(self, path: str, fault: str) -> None:
        self.faults.setdefault(path, []).append(fault)

    def add_trade(
        self,
        symbol: str,
        *,
        record_id: int,
        ts: int,
        side: str,
        price: str,
        amount: str,
        fee: str,
        fee_currency: str,
    ) -> None:
        self.trades.append(
            {
                "symbol": symbol,
                "fee-currency": fee_currency,
                "source": "spot-api",
                "price": price,
                "created-at": ts,
                "role": "taker",
                "order-id": record_id * 3,
                "match-id": record_id * 5,
                "trade-id": record_id * 7,
                "filled-amount": amount,
                "filled-fees": fee,
                "filled-points": "0",
                "fee-deduct-currency": "",
                "fee-deduct-state": "done",
                "id": record_id,
                "type": f"{side}-limit",
            }
        )

    def add_transfer(
        self, kind: str, *, transfer_id: int, ts: int, currency: str, amount: Any, fee: Any, chain: str
    ) -> None:
        self.transfers.append(
            {
                "id": transfer_id,
                "type": kind,  # deposit | withdraw
                "sub-type": "NORMAL",
                "currency": currency,
                "chain": chain,
                "tx-hash": f"{transfer_id:064x}",
                "amount": amount,
                "from-addr-tag": "",
                "address": "TFakeTronAddress000000000000000000",
                "address-tag": "",
                "fee": fee,
                "state": "safe" if kind == "deposit" else "confirmed",
                "created-at": ts,
                "updated-at": ts + 60_000,
            }
        )


def _ok(data: Any) -> Response:
    return Response(json.dumps({"status": "ok", "data": data}), media_type="application/json")


def _error(code: str, msg: str, status: int = 200) -> Response:
    body = {"status": "error", "err-code": code, "err-msg": msg, "data": None}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


_FAULTS = {
    "key": ("api-signature-not-valid", "Signature not valid: Incorrect Access key [Access key错误]", 200),
    "sign": ("api-signature-not-valid", "Signature not valid: Verification failure [校验失败]", 200),
    "429": ("rate-too-many-requests", "exceeded rate limit", 429),
    "maintenance": ("system-maintenance", "System is in maintenance!", 200),
}


def create_app(clock: Clock, store: HtxStore) -> Starlette:
    def now_ms() -> int:
        return int(clock.now() * 1000)

    def signed(request: Request) -> tuple[dict[str, str], Response | None]:
        path = request.url.path
        params = dict(request.query_params)
        store.requests.append((path, params))
        queued = store.faults.get(path)
        if queued:
            code, msg, status = _FAULTS[queued.pop(0)]
            return params, _error(code, msg, status)
        if params.get("AccessKeyId") != store.key:
            return params, _error(*_FAULTS["key"][:2])
        if params.get("SignatureMethod") != "HmacSHA256" or params.get("SignatureVersion") != "2":
            return params, _error(*_FAULTS["sign"][:2])
        try:
            at = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            at = None
        if at is None or abs(at.timestamp() - time.time()) > 300:
            return params, _error(
                "api-signature-not-valid",
                "Signature not valid: Invalid submission time or incorrect time format",
            )
        pairs = [p for p in request.url.query.split("&") if p and not p.startswith("Signature=")]
        given = unquote(
            next((p for p in request.url.query.split("&") if p.startswith("Signature=")), "=")[10:]
        )
        payload = "\n".join([request.method, HOST, path, "&".join(sorted(pairs))])
        expected = base64.b64encode(
            hmac.new(store.secret.encode(), payload.encode(), hashlib.sha256).digest()
        )
        if not hmac.compare_digest(given.encode(), expected):
            return params, _error(*_FAULTS["sign"][:2])
        return params, None

    async def symbols(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        return _ok(
            [
                {
                    "base-currency": base,
                    "quote-currency": quote,
                    "price-precision": 6,
                    "amount-precision": 4,
                    "symbol-partition": "main",
                    "symbol": symbol,
                    "state": "online",
                    "value-precision": 8,
                    "min-order-amt": 0.0001,
                    "max-order-amt": 1000,
                    "min-order-value": 5,
                    "limit-order-min-order-amt": 0.0001,
                    "limit-order-max-order-amt": 1000,
                    "sell-market-min-order-amt": 0.0001,
                    "sell-market-max-order-amt": 100,
                    "buy-market-max-order-value": 1000000,
                    "api-trading": "enabled",
                    "tags": "",
                }
                for symbol, (base, quote) in store.markets.items()
            ]
        )

    async def currencies(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        data = [
            {
                "currency": currency,
                "assetType": 1,
                "chains": [
                    {
                        "chain": chain,
                        "displayName": base,
                        "baseChain": base,
                        "baseChainProtocol": "",
                        "isDynamic": False,
                        "numOfConfirmations": 12,
                        "numOfFastConfirmations": 6,
                        "depositStatus": "allowed",
                        "minDepositAmt": "0.0001",
                        "withdrawStatus": "allowed",
                        "minWithdrawAmt": "0.001",
                        "withdrawPrecision": 8,
                        "maxWithdrawAmt": "1000",
                        "withdrawQuotaPerDay": "1000",
                        "withdrawFeeType": "fixed",
                        "transactFeeWithdraw": "1",
                        "addrWithTag": False,
                        "addrDepositTag": False,
                    }
                    for chain, base in chains
                ],
                "instStatus": "normal",
            }
            for currency, chains in store.chains.items()
        ]
        return Response(json.dumps({"code": 200, "data": data}), media_type="application/json")

    async def tickers(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        data = [
            {
                "symbol": symbol,
                "open": price,
                "high": price,
                "low": price,
                "close": price,
                "amount": 1,
                "vol": 1,
                "count": 1,
                "bid": price,
                "bidSize": 1,
                "ask": price,
                "askSize": 1,
            }
            for symbol, price in store.prices.items()
        ]
        return Response(
            json.dumps({"status": "ok", "ts": now_ms(), "data": data}), media_type="application/json"
        )

    async def accounts(request: Request) -> Response:
        _, bad = signed(request)
        return bad or _ok([{"id": store.spot_account, "type": "spot", "subtype": "", "state": "working"}])

    async def balance(request: Request) -> Response:
        _, bad = signed(request)
        if bad is not None:
            return bad
        if request.path_params["account"] != str(store.spot_account):
            return _error("account-frozen-account-inexistent-error", "account for id not exist")
        rows = []
        for currency, (trade, frozen) in store.balances.items():
            rows.append({"currency": currency, "type": "trade", "balance": trade, "seq-num": "1"})
            rows.append({"currency": currency, "type": "frozen", "balance": frozen, "seq-num": "1"})
        return _ok({"id": store.spot_account, "type": "spot", "state": "working", "list": rows})

    async def user_uid(request: Request) -> Response:
        _, bad = signed(request)
        if bad is not None:
            return bad
        return Response(json.dumps({"code": 200, "data": store.uid}), media_type="application/json")

    async def api_key(request: Request) -> Response:
        params, bad = signed(request)
        if bad is not None:
            return bad
        if params.get("uid") not in (None, str(store.uid)):
            return Response(
                json.dumps({"code": 2002, "message": "invalid field value in `uid`", "ok": False}),
                media_type="application/json",
            )
        key = {
            "accessKey": store.key,
            "status": "normal",
            "note": "finsync",
            "permission": store.permission,
            "ipAddresses": "",
            "validDays": -1,
            "createTime": now_ms() - 30 * DAY_MS,
            "updateTime": now_ms() - 30 * DAY_MS,
        }
        keys = [key] if params.get("accessKey") in (None, store.key) else []
        return Response(
            json.dumps({"code": 200, "message": "success", "data": keys}), media_type="application/json"
        )

    async def matchresults(request: Request) -> Response:
        params, bad = signed(request)
        if bad is not None:
            return bad
        now = now_ms()
        end = int(params.get("end-time") or now)
        start = int(params.get("start-time") or end - TRADE_WINDOW_MS)
        if start > end or end - start > TRADE_WINDOW_MS or start < now - TRADE_DAYS * DAY_MS:
            return _error("invalid-start-date", "The start date of query contains illegal values.")
        size = int(params.get("size") or 100)
        if not 1 <= size <= 500:
            return _error("invalid-parameter", "invalid size")
        items = [t for t in store.trades if start <= t["created-at"] <= end]
        if params.get("symbol"):
            items = [t for t in items if t["symbol"] == params["symbol"]]
        items.sort(key=lambda t: t["id"], reverse=True)
        if params.get("from") and params.get("direct", "next") == "next":
            items = [t for t in items if t["id"] < int(params["from"])]
        return _ok(items[:size])

    async def deposit_withdraw(request: Request) -> Response:
        params, bad = signed(request)
        if bad is not None:
            return bad
        kind = params.get("type")
        if kind not in ("deposit", "withdraw"):
            return _error("invalid-parameter", "invalid type")
        size = int(params.get("size") or 100)
        if not 1 <= size <= 500:
            return _error("invalid-parameter", "invalid size")
        items = [t for t in store.transfers if t["type"] == kind]
        if params.get("currency"):
            items = [t for t in items if t["currency"] == params["currency"]]
        start = int(params.get("from") or 0)
        if params.get("direct", "next") == "prev":
            items = sorted((t for t in items if t["id"] >= max(start, 1)), key=lambda t: t["id"])
        else:
            items = sorted((t for t in items if not start or t["id"] <= start), key=lambda t: -t["id"])
        return _ok(items[:size])

    async def ledger(request: Request) -> Response:
        params, bad = signed(request)
        if bad is not None:
            return bad
        now = now_ms()
        end = int(params.get("endTime") or now)
        start = int(params.get("startTime") or end - LEDGER_WINDOW_MS)
        if start > end or end - start > LEDGER_WINDOW_MS or start < now - LEDGER_DAYS * DAY_MS:
            return Response(
                json.dumps({"code": 2002, "message": "invalid field value in `startTime`", "ok": False}),
                media_type="application/json",
            )
        return Response(
            json.dumps({"code": 200, "message": "success", "data": [], "ok": True}),
            media_type="application/json",
        )

    return Starlette(
        routes=[
            Route("/v1/common/symbols", symbols),
            Route("/v2/reference/currencies", currencies),
            Route("/market/tickers", tickers),
            Route("/v1/account/accounts", accounts),
            Route("/v1/account/accounts/{account}/balance", balance),
            Route("/v2/user/uid", user_uid),
            Route("/v2/user/api-key", api_key),
            Route("/v1/order/matchresults", matchresults),
            Route("/v1/query/deposit-withdraw", deposit_withdraw),
            Route("/v2/account/ledger", ledger),
        ]
    )


def api_urls(url: str) -> dict[str, str]:
    """ccxt's HTX API groups pointed at the fake."""
    return {
        group: url for group in ("status", "contract", "spot", "public", "private", "v2Public", "v2Private")
    }


def seed(store: HtxStore, now: float) -> None:
    """A spot account: BTC (some frozen in an order), ETH, HTX and USDT; two trades, a deposit and
    a withdrawal."""
    t = int(now * 1000)
    store.balances = {
        "btc": ("0.2", "0.05"),
        "eth": ("1.5", "0"),
        "htx": ("1000000", "0"),
        "usdt": ("200", "0"),
        "trx": ("0", "0"),  # HTX lists every currency the account ever had
    }
    store.add_trade(
        "btcusdt",
        record_id=313288753120940,
        ts=t - 10 * DAY_MS,
        side="buy",
        price="50000",
        amount="0.25",
        fee="0.0005",
        fee_currency="btc",
    )
    store.add_trade(
        "ethusdt",
        record_id=313288753121000,
        ts=t - 3 * DAY_MS,
        side="sell",
        price="2800",
        amount="0.5",
        fee="2.8",
        fee_currency="usdt",
    )
    store.add_transfer(
        "deposit", transfer_id=45182894, ts=t - 20 * DAY_MS, currency="btc", amount=0.25, fee=0, chain="btc"
    )
    store.add_transfer(
        "withdraw",
        transfer_id=61003926,
        ts=t - 2 * DAY_MS,
        currency="usdt",
        amount=50,
        fee=1,
        chain="trc20usdt",
    )
