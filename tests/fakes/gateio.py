"""A fake Gate.io API v4 (spot and wallet) that verifies the real request signing.

Private calls carry the headers ``KEY``, ``Timestamp`` (Unix seconds, refused 60 s away from the
real time: ccxt signs with the wall clock) and ``SIGN`` = hex(HMAC-SHA512(method + "\\n" +
"/api/v4" path + "\\n" + query string + "\\n" + hex(SHA-512(body)) + "\\n" + timestamp, secret)).
Errors are an HTTP status with ``{"label": …, "message": …}``: ``INVALID_KEY`` and
``INVALID_SIGNATURE`` and ``REQUEST_EXPIRED`` (401), ``TOO_MANY_REQUESTS`` (429),
``SERVER_ERROR`` (503 here, for maintenance), ``INVALID_PARAM_VALUE`` (400).

History answers as Gate documents it: ``/spot/my_trades`` and ``/spot/account_book`` take
``from``/``to`` in Unix seconds, at most 30 days apart (``to`` defaults to now; without either,
the last 7 days), and page by ``page`` (from 1) and ``limit`` (at most 1000), newest first;
``/wallet/deposits`` and ``/wallet/withdrawals`` take the same 30-day ``from``/``to`` and page
by ``offset`` and ``limit`` (at most 500). ``store.inject(path, fault)`` makes the next call to a
path (e.g. ``"/api/v4/spot/accounts"``) fail with ``key``, ``sign``, ``429`` or ``maintenance``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

DAY = 86_400
DAY_MS = DAY * 1000
RANGE = 30 * DAY


@dataclass
class GateStore:
    key: str = "fakegatekey00000000000000000001"
    secret: str = "fakegatesecret0000000000000000000000000000000000000000000000001"
    user_id: int = 10001234
    pairs: dict[str, str] = field(
        default_factory=lambda: {
            "BTC_USDT": "60000.5",
            "ETH_USDT": "3000.25",
            "GT_USDT": "16.2",
            "ETH_BTC": "0.05",
            "USDT_USD": "0.9997",
        }
    )
    balances: dict[str, tuple[str, str]] = field(default_factory=dict)  # currency → (available, locked)
    trades: list[dict[str, Any]] = field(default_factory=list)
    deposits: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    book: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def inject(self, path: str, fault: str) -> None:
        self.faults.setdefault(path, []).append(fault)

    def add_trade(
        self,
        pair: str,
        *,
        trade_id: int,
        ts: int,
        side: str,
        price: str,
        amount: str,
        fee: str,
        fee_currency: str,
    ) -> None:
        """``ts`` in milliseconds."""
        self.trades.append(
            {
                "id": str(trade_id),
                "create_time": str(ts // 1000),
                "create_time_ms": f"{ts}.000",
                "currency_pair": pair,
                "side": side,
                "role": "taker",
                "amount": amount,
                "price": price,
                "order_id": str(trade_id * 3),
                "fee": fee,
                "fee_currency": fee_currency,
                "point_fee": "0",
                "gt_fee": "0",
                "amend_text": "-",
                "sequence_id": str(trade_id),
                "text": "web",
            }
        )

    def add_book(self, *, book_id: int, ts: int, currency: str, change: str, balance: str, kind: str) -> None:
        """One spot account book entry; ``ts`` in milliseconds (Gate's spot book ``time`` is)."""
        self.book.append(
            {
                "id": str(book_id),
                "time": str(ts),
                "currency": currency,
                "change": change,
                "balance": balance,
                "type": kind,
                "code": "",
                "text": "",
            }
        )

    def add_deposit(self, *, deposit_id: int, ts: int, currency: str, amount: str, chain: str) -> None:
        self.deposits.append(
            {
                "id": f"d{deposit_id}",  # Gate prefixes ids: d deposit, w withdrawal
                "txid": f"{deposit_id:064x}",
                "withdraw_order_id": "",
                "timestamp": str(ts // 1000),
                "amount": amount,
                "currency": currency,
                "address": "bc1qfakeaddress00000000000000000000000",
                "memo": "",
                "status": "DONE",
                "chain": chain,
            }
        )

    def add_withdrawal(
        self, *, withdrawal_id: int, ts: int, currency: str, amount: str, fee: str, chain: str
    ) -> None:
        self.withdrawals.append(
            {
                "id": f"w{withdrawal_id}",
                "txid": f"{withdrawal_id:064x}",
                "block_number": "41575382",
                "withdraw_order_id": "",
                "timestamp": str(ts // 1000),
                "amount": amount,
                "fee": fee,
                "currency": currency,
                "address": "TFakeTronAddress000000000000000000",
                "memo": "",
                "status": "DONE",
                "chain": chain,
            }
        )


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def _error(label: str, message: str, status: int) -> Response:
    return _json({"label": label, "message": message}, status)


_FAULTS = {
    "key": ("INVALID_KEY", "Invalid key provided", 401),
    "sign": ("INVALID_SIGNATURE", "Signature mismatch", 401),
    "429": ("TOO_MANY_REQUESTS", "Request Rate limit Exceeded", 429),
    "maintenance": ("SERVER_ERROR", "Internal server error: system maintenance", 503),
}


def create_app(clock: Clock, store: GateStore) -> Starlette:
    def now() -> int:
        return int(clock.now())

    async def signed(request: Request) -> tuple[dict[str, str], Response | None]:
        path = request.url.path
        params = dict(request.query_params)
        store.requests.append((path, params))
        queued = store.faults.get(path)
        if queued:
            return params, _error(*_FAULTS[queued.pop(0)])
        headers = request.headers
        if headers.get("KEY") != store.key:
            return params, _error(*_FAULTS["key"])
        stamp = headers.get("Timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - time.time()) > 60:
            return params, _error(
                "REQUEST_EXPIRED", "gap between request Timestamp and server time exceeds 60", 401
            )
        body = await request.body()
        payload = "\n".join(
            [request.method, path, request.url.query, hashlib.sha512(body).hexdigest(), stamp]
        )
        expected = hmac.new(store.secret.encode(), payload.encode(), hashlib.sha512).hexdigest()
        if not hmac.compare_digest(headers.get("SIGN", ""), expected):
            return params, _error(*_FAULTS["sign"])
        return params, None

    def window(params: dict[str, str]) -> tuple[int, int] | Response:
        """``from``/``to`` in seconds, at most 30 days apart; the last 7 days by default."""
        try:
            end = int(params.get("to") or now())
            start = int(params.get("from") or end - 7 * DAY)
        except ValueError:
            return _error("INVALID_PARAM_VALUE", "from/to must be Unix seconds", 400)
        if start > end or end - start > RANGE:
            return _error("INVALID_PARAM_VALUE", "Time range cannot exceed 30 days", 400)
        return start, end

    def limit(params: dict[str, str], most: int) -> int | Response:
        size = int(params.get("limit") or 100)
        return size if 1 <= size <= most else _error("INVALID_PARAM_VALUE", f"limit must be 1 to {most}", 400)

    async def currencies(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        names = {c for pair in store.pairs for c in pair.split("_")} | set(store.balances)
        return _json(
            [
                {
                    "currency": name,
                    "name": name,
                    "delisted": False,
                    "withdraw_disabled": False,
                    "withdraw_delayed": False,
                    "deposit_disabled": False,
                    "trade_disabled": False,
                    "chain": name,
                    "chains": [
                        {
                            "name": name,
                            "addr": "",
                            "withdraw_disabled": False,
                            "withdraw_delayed": False,
                            "deposit_disabled": False,
                        }
                    ],
                }
                for name in sorted(names)
            ]
        )

    async def currency_pairs(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        return _json(
            [
                {
                    "id": pair,
                    "base": pair.split("_")[0],
                    "base_name": pair.split("_")[0],
                    "quote": pair.split("_")[1],
                    "quote_name": pair.split("_")[1],
                    "fee": "0.2",
                    "min_base_amount": "0.0001",
                    "min_quote_amount": "1",
                    "max_quote_amount": "5000000",
                    "amount_precision": 4,
                    "precision": 2,
                    "trade_status": "tradable",
                    "sell_start": 0,
                    "buy_start": 0,
                    "type": "normal",
                }
                for pair in store.pairs
            ]
        )

    async def margin_pairs(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        return _json(
            [
                {
                    "id": "BTC_USDT",
                    "base": "BTC",
                    "quote": "USDT",
                    "leverage": 3,
                    "min_base_amount": "0.0001",
                    "min_quote_amount": "1",
                    "max_quote_amount": "1000000",
                    "status": 1,
                }
            ]
        )

    async def tickers(request: Request) -> Response:
        store.requests.append((request.url.path, dict(request.query_params)))
        return _json(
            [
                {
                    "currency_pair": pair,
                    "last": price,
                    "lowest_ask": price,
                    "highest_bid": price,
                    "change_percentage": "0",
                    "base_volume": "1",
                    "quote_volume": price,
                    "high_24h": price,
                    "low_24h": price,
                }
                for pair, price in store.pairs.items()
            ]
        )

    async def account_detail(request: Request) -> Response:
        _, bad = await signed(request)
        if bad is not None:
            return bad
        return _json(
            {
                "user_id": store.user_id,
                "ip_whitelist": [],
                "currency_pairs": [],
                "key": {"mode": 1},
                "tier": 0,
            }
        )

    async def spot_accounts(request: Request) -> Response:
        _, bad = await signed(request)
        if bad is not None:
            return bad
        return _json(
            [
                {"currency": currency, "available": available, "locked": locked, "update_id": 1}
                for currency, (available, locked) in store.balances.items()
            ]
        )

    async def my_trades(request: Request) -> Response:
        params, bad = await signed(request)
        if bad is not None:
            return bad
        span, size = window(params), limit(params, 1000)
        if isinstance(span, Response):
            return span
        if isinstance(size, Response):
            return size
        page = int(params.get("page") or 1)
        items = [t for t in store.trades if span[0] <= int(t["create_time"]) <= span[1]]
        if params.get("currency_pair"):
            items = [t for t in items if t["currency_pair"] == params["currency_pair"]]
        items.sort(key=lambda t: (float(t["create_time_ms"]), int(t["id"])), reverse=True)
        return _json(items[(page - 1) * size : page * size])

    def transfers(kind: list[dict[str, Any]]) -> Any:
        async def answer(request: Request) -> Response:
            params, bad = await signed(request)
            if bad is not None:
                return bad
            span, size = window(params), limit(params, 500)
            if isinstance(span, Response):
                return span
            if isinstance(size, Response):
                return size
            offset = int(params.get("offset") or 0)
            items = [t for t in kind if span[0] <= int(t["timestamp"]) <= span[1]]
            if params.get("currency"):
                items = [t for t in items if t["currency"] == params["currency"]]
            items.sort(key=lambda t: int(t["timestamp"]), reverse=True)
            return _json(items[offset : offset + size])

        return answer

    async def account_book(request: Request) -> Response:
        params, bad = await signed(request)
        if bad is not None:
            return bad
        span, size = window(params), limit(params, 1000)
        if isinstance(span, Response):
            return span
        if isinstance(size, Response):
            return size
        page = int(params.get("page") or 1)
        items = [b for b in store.book if span[0] * 1000 <= int(b["time"]) <= span[1] * 1000]
        if params.get("currency"):
            items = [b for b in items if b["currency"] == params["currency"]]
        if params.get("type"):
            items = [b for b in items if b["type"] == params["type"]]
        items.sort(key=lambda b: (int(b["time"]), int(b["id"])), reverse=True)
        return _json(items[(page - 1) * size : page * size])

    return Starlette(
        routes=[
            Route("/api/v4/spot/currencies", currencies),
            Route("/api/v4/spot/currency_pairs", currency_pairs),
            Route("/api/v4/margin/currency_pairs", margin_pairs),
            Route("/api/v4/spot/tickers", tickers),
            Route("/api/v4/account/detail", account_detail),
            Route("/api/v4/spot/accounts", spot_accounts),
            Route("/api/v4/spot/my_trades", my_trades),
            Route("/api/v4/wallet/deposits", transfers(store.deposits)),
            Route("/api/v4/wallet/withdrawals", transfers(store.withdrawals)),
            Route("/api/v4/spot/account_book", account_book),
        ]
    )


def api_urls(url: str) -> dict[str, Any]:
    """ccxt's Gate.io API groups (``public`` and ``private``, each a dict) pointed at the fake."""
    public = ("wallet", "futures", "margin", "delivery", "spot", "options", "sub_accounts", "earn")
    private = (
        "withdrawals", "wallet", "futures", "margin", "delivery", "spot", "options", "subAccounts",
        "unified", "rebate", "earn", "account", "loan", "otc",
    )  # fmt: skip
    return {
        "public": {group: f"{url}/api/v4" for group in public},
        "private": {group: f"{url}/api/v4" for group in private},
    }


def seed(store: GateStore, now: float) -> None:
    """A spot account: BTC (some locked in an order), ETH, GT and USDT; two trades, a deposit,
    a withdrawal; in the account book, two rewards (earn interest, an airdrop) beside the book's
    own lines for a trade fill, its fee and the deposit."""
    t = int(now * 1000)
    store.balances = {"BTC": ("0.2", "0.05"), "ETH": ("1.5", "0"), "GT": ("10", "0"), "USDT": ("200", "0")}
    store.add_trade(
        "BTC_USDT", trade_id=5001, ts=t - 10 * DAY_MS, side="buy", price="50000", amount="0.25",
        fee="0.0005", fee_currency="BTC",
    )  # fmt: skip
    store.add_trade(
        "ETH_USDT", trade_id=5002, ts=t - 3 * DAY_MS, side="sell", price="2800", amount="0.5",
        fee="2.8", fee_currency="USDT",
    )  # fmt: skip
    store.add_deposit(deposit_id=210496, ts=t - 20 * DAY_MS, currency="BTC", amount="0.25", chain="BTC")
    store.add_withdrawal(
        withdrawal_id=1001, ts=t - 2 * DAY_MS, currency="USDT", amount="50", fee="1", chain="TRX"
    )
    store.add_book(book_id=9001, ts=t - 6 * DAY_MS, currency="USDT", change="0.42", balance="200.42",
                   kind="interest_in")  # fmt: skip
    store.add_book(book_id=9002, ts=t - 4 * DAY_MS, currency="GT", change="1.5", balance="10",
                   kind="airdrop")  # fmt: skip
    store.add_book(book_id=9003, ts=t - 10 * DAY_MS, currency="BTC", change="0.25", balance="0.5",
                   kind="order_fill")  # fmt: skip
    store.add_book(book_id=9004, ts=t - 10 * DAY_MS, currency="BTC", change="-0.0005", balance="0.4995",
                   kind="order_fee")  # fmt: skip
    store.add_book(book_id=9005, ts=t - 20 * DAY_MS, currency="BTC", change="0.25", balance="0.25",
                   kind="deposit")  # fmt: skip
