"""A fake Trading 212 Public API (v0) that speaks the documented wire format.

It checks auth (Basic key:secret, or the legacy bare key) and per-key scopes,
paginates history with ``limit``/``cursor``/``nextPagePath``, sends doubles as JSON
numbers, and enforces each endpoint's documented rate limit on the shared (virtual)
clock with ``x-ratelimit-*`` headers and 429s. Tests mutate the
:class:`Trading212Store` between syncs and inject faults into the next requests.

History is newest first by creation unless a test says otherwise: ``listing =
"updated"`` lists orders by their last change (an old limit order that fills today
comes first, with its old ``createdAt``), and ``disorder = n`` displaces each item by
up to ``n`` places, so pages are not strictly newest first.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from finsync.providers.http import Clock
from tests.fakes.broker import BrokerStore, Window, Wire, create_broker_app, iso

ALL_SCOPES = frozenset(
    {"account", "portfolio", "orders:read", "orders:execute", "history:orders", "history:dividends",
     "history:transactions"}
)  # fmt: skip
# endpoint name → (path under /api/v0, scope, (limit, period seconds)) as documented
ENDPOINTS: dict[str, tuple[str, str, tuple[int, float]]] = {
    "account_summary": ("/equity/account/summary", "account", (1, 5.0)),
    "positions": ("/equity/positions", "portfolio", (1, 1.0)),
    "history_orders": ("/equity/history/orders", "history:orders", (6, 60.0)),
    "history_dividends": ("/equity/history/dividends", "history:dividends", (6, 60.0)),
    "history_transactions": ("/equity/history/transactions", "history:transactions", (6, 60.0)),
    "orders_market": ("/equity/orders/market", "orders:execute", (50, 60.0)),
    "orders_limit": ("/equity/orders/limit", "orders:execute", (1, 2.0)),
    "orders_stop": ("/equity/orders/stop", "orders:execute", (1, 2.0)),
    "orders_stop_limit": ("/equity/orders/stop_limit", "orders:execute", (1, 2.0)),
    "orders_open": ("/equity/orders", "orders:read", (1, 5.0)),
    "order_get": ("/equity/orders/{order_id:int}", "orders:read", (1, 1.0)),
    "order_cancel": ("/equity/orders/{order_id:int}", "orders:execute", (50, 60.0)),
}
METHODS = {"orders_market": "POST", "orders_limit": "POST", "orders_stop": "POST",
           "orders_stop_limit": "POST", "order_cancel": "DELETE"}  # fmt: skip
OPEN = ("NEW", "PARTIALLY_FILLED")


def num(value: Decimal | str | float) -> float:
    """Trading 212 sends doubles: render amounts as JSON numbers, like the real API."""
    return float(Decimal(str(value)))


@dataclass
class Trading212Store(BrokerStore):
    """Mutable account data plus per-endpoint counters and queued faults."""

    endpoints: ClassVar[frozenset[str]] = frozenset(ENDPOINTS)

    currency: str = "GBP"
    account_id: int = 31415926
    cash: dict[str, float] = field(
        default_factory=lambda: {"availableToTrade": 1523.37, "reservedForOrders": 20.0, "inPies": 105.5}
    )
    positions: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    dividends: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0
    listing: Literal["created", "updated"] = "created"  # how history orders are ordered
    disorder: int = 0  # places an item may be displaced from newest-first order
    changed: dict[int, float] = field(default_factory=dict)  # order id → time of its last change
    # Item offsets where the listing answers an empty page that still names a next page (a
    # page whose span held nothing): the next page goes on from the same place.
    empty_pages: set[int] = field(default_factory=set)
    # Trading: instrument prices, and how placed orders behave.
    prices: dict[str, Decimal] = field(
        default_factory=lambda: {"AAPL_US_EQ": Decimal("185.5"), "MSFT_US_EQ": Decimal("410.2")}
    )
    market_open: bool = True
    fill_mode: Literal["fill", "partial", "open"] = "fill"  # what a market order does at once
    fill_on_cancel: bool = False  # the cancellation race: the order fills just before the cancel
    placed: list[int] = field(default_factory=list)  # ids of orders placed through the API

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def add_position(
        self, ticker: str, quantity: str, avg: str, price: str, fx: str = "1", **kw: Any
    ) -> None:
        qty, in_pies = Decimal(quantity), Decimal(kw.pop("in_pies", "0"))
        cost, value = qty * Decimal(avg) * Decimal(fx), qty * Decimal(price) * Decimal(fx)
        self.positions.append(
            {
                "instrument": {
                    "ticker": ticker,
                    "name": kw.get("name", ticker.split("_")[0]),
                    "isin": kw.get("isin", "US0378331005"),
                    "currency": kw.get("currency", self.currency),
                },
                "quantity": num(qty),
                "quantityAvailableForTrading": num(qty - in_pies),
                "quantityInPies": num(in_pies),
                "averagePricePaid": num(avg),
                "currentPrice": num(price),
                "createdAt": kw.get("created_at", "2024-03-04T14:30:00.000Z"),
                "walletImpact": {
                    "currency": self.currency,
                    "currentValue": num(round(value, 2)),
                    "totalCost": num(round(cost, 2)),
                    "unrealizedProfitLoss": num(round(value - cost, 2)),
                    "fxImpact": num(kw.get("fx_impact", "0")),
                },
            }
        )

    def add_order(
        self, at: float, *, ticker: str = "AAPL_US_EQ", side: str = "BUY", quantity: str = "2.5",
        price: str = "185.5", fx: str = "0.79", currency: str = "USD", status: str = "FILLED",
    ) -> dict[str, Any]:  # fmt: skip
        n = self._next()
        qty, px = Decimal(quantity), Decimal(price)
        filled = status == "FILLED"
        gross = (qty * px * Decimal(fx)).quantize(Decimal("0.01"))
        tax = (gross * Decimal("0.0015")).quantize(Decimal("0.01"))  # FX fee
        net = -(gross + tax) if side == "BUY" else gross - tax
        order = {
            "id": 40_000_000_000 + n, "strategy": "QUANTITY", "type": "MARKET", "ticker": ticker,
            "quantity": num(qty), "filledQuantity": num(qty if filled else 0), "limitPrice": None,
            "stopPrice": None, "status": status, "side": side, "currency": currency,
            "value": num(qty * px), "filledValue": num(qty * px if filled else 0),
            "extendedHours": False, "initiatedFrom": "API", "createdAt": iso(at),
        }  # fmt: skip
        fill = None
        if filled:
            fill = {
                "id": 50_000_000_000 + n, "filledAt": iso(at + 1.5), "price": num(px), "quantity": num(qty),
                "type": "TRADE", "tradingMethod": "TOTV",
                "walletImpact": {
                    "currency": self.currency, "fxRate": num(fx), "netValue": num(net),
                    "realisedProfitLoss": 0.0 if side == "BUY" else num(round(gross / 10, 2)),
                    "taxes": [{"name": "CURRENCY_CONVERSION_FEE", "quantity": num(tax),
                               "currency": self.currency, "chargedAt": iso(at + 1.5)}],
                },
            }  # fmt: skip
        item = {"order": order, "fill": fill}
        self.orders.append(item)
        self.changed[40_000_000_000 + n] = at
        return item

    def change_fill(
        self, item: dict[str, Any], at: float, *, quantity: str | None = None, price: str = "101.25",
        fx: str = "0.79",
    ) -> None:  # fmt: skip
        """The order (re)fills at ``at``: a working order fills, or a partial fill grows."""
        order, n = item["order"], item["order"]["id"] - 40_000_000_000
        qty, px = Decimal(quantity or str(order["quantity"])), Decimal(price)
        gross = (qty * px * Decimal(fx)).quantize(Decimal("0.01"))
        net = -gross if order["side"] == "BUY" else gross
        order.update(status="FILLED", filledQuantity=num(qty), filledValue=num(qty * px))
        item["fill"] = {
            "id": 50_000_000_000 + n, "filledAt": iso(at), "price": num(px), "quantity": num(qty),
            "type": "TRADE", "tradingMethod": "TOTV",
            "walletImpact": {"currency": self.currency, "fxRate": num(fx), "netValue": num(net),
                             "realisedProfitLoss": 0.0, "taxes": []},
        }  # fmt: skip
        self.changed[order["id"]] = at

    def history(self, endpoint: str) -> list[dict[str, Any]]:
        """One endpoint's history as the server lists it (see the module docstring)."""
        items = {"history_orders": self.orders, "history_dividends": self.dividends,
                 "history_transactions": self.transactions}[endpoint]  # fmt: skip
        listed = list(reversed(items))  # stored oldest first
        if endpoint == "history_orders" and self.listing == "updated":
            position = {id(item): i for i, item in enumerate(items)}
            listed.sort(key=lambda i: (self.changed[i["order"]["id"]], position[id(i)]), reverse=True)
        if self.disorder:
            rng = random.Random(len(listed))
            keys = [i + rng.uniform(0, self.disorder) for i in range(len(listed))]
            listed = [item for _, item in sorted(zip(keys, listed, strict=True), key=lambda pair: pair[0])]
        return listed

    def add_dividend(self, at: float, *, ticker: str = "AAPL_US_EQ", quantity: str = "10") -> dict[str, Any]:
        n = self._next()
        per_share = Decimal("0.25")
        amount = (Decimal(quantity) * per_share * Decimal("0.79") * Decimal("0.85")).quantize(Decimal("0.01"))
        item = {
            "ticker": ticker, "reference": f"DIV-{n:08d}", "quantity": num(quantity), "amount": num(amount),
            "amountInEuro": num(amount * Decimal("1.17")), "grossAmountPerShare": num(per_share),
            "currency": self.currency, "tickerCurrency": "USD", "paidOn": iso(at), "type": "ORDINARY",
        }  # fmt: skip
        self.dividends.append(item)
        return item

    def add_transaction(self, at: float, *, type: str = "DEPOSIT", amount: str = "500") -> dict[str, Any]:
        n = self._next()
        item = {"type": type, "amount": num(amount), "currency": self.currency, "dateTime": iso(at),
                "reference": f"{n:08x}-7c1e-4a8b-9f00-{n:012d}"}  # fmt: skip
        self.transactions.append(item)
        return item

    def seed(self, now: float, *, orders: int = 0, dividends: int = 0, transactions: int = 0) -> None:
        """Deterministic history ending an hour before ``now``: one item per day per kind."""
        rng = random.Random(212)
        day = 86_400.0
        for i in range(orders):
            at = now - 3600 - (orders - i) * day / 2
            status = "CANCELLED" if i % 17 == 5 else "FILLED"
            side = "SELL" if i % 4 == 3 else "BUY"
            price = f"{rng.uniform(50, 400):.2f}"
            self.add_order(at, side=side, quantity=f"{rng.randint(1, 400) / 8}", price=price, status=status)
        for i in range(dividends):
            self.add_dividend(now - 3600 - (dividends - i) * day, quantity=f"{rng.randint(1, 80)}")
        kinds = [("DEPOSIT", "1000"), ("WITHDRAW", "-250"), ("FEE", "-1.5"), ("TRANSFER", "-40")]
        for i in range(transactions):
            kind, amount = kinds[i % len(kinds)]
            self.add_transaction(now - 3600 - (transactions - i) * day, type=kind, amount=amount)

    # -- the order state machine ------------------------------------------------------------

    def order_item(self, order_id: int) -> dict[str, Any] | None:
        return next((i for i in self.orders if i["order"]["id"] == order_id), None)

    def place(self, kind: str, body: Any, now: float) -> tuple[int, Any]:
        """POST orders/<kind>: (status, body). Negative quantity sells; fills follow ``fill_mode``."""
        if not isinstance(body, dict) or "ticker" not in body or "quantity" not in body:
            return 400, {"code": "BadRequest", "message": "ticker and quantity are required"}
        ticker, qty = str(body["ticker"]), Decimal(str(body["quantity"]))
        if ticker not in self.prices:
            return 400, {"code": "InstrumentNotFound", "message": f"unknown ticker {ticker}"}
        if qty == 0:
            return 400, {"code": "BadRequest", "message": "quantity must not be zero"}
        if not self.market_open:
            return 400, {"code": "MarketClosed", "message": "the market is closed"}
        price = self.prices[ticker]
        if qty > 0 and qty * price > Decimal(str(self.cash["availableToTrade"])):
            return 400, {"code": "InsufficientFunds", "message": "insufficient funds"}
        n = self._next()
        order = {
            "id": 40_000_000_000 + n, "strategy": "QUANTITY", "type": kind.upper(), "ticker": ticker,
            "quantity": num(qty), "filledQuantity": 0.0, "status": "NEW",
            "limitPrice": body.get("limitPrice"), "stopPrice": body.get("stopPrice"),
            "side": "BUY" if qty > 0 else "SELL", "currency": "USD", "value": num(abs(qty) * price),
            "filledValue": 0.0, "extendedHours": False, "initiatedFrom": "API", "createdAt": iso(now),
        }  # fmt: skip
        if kind != "market":
            order["timeValidity"] = body.get("timeValidity", "DAY")
        item: dict[str, Any] = {"order": order, "fill": None}
        self.orders.append(item)
        self.placed.append(order["id"])
        self.changed[order["id"]] = now
        if kind == "market" and self.fill_mode != "open":
            part = abs(qty) / 2 if self.fill_mode == "partial" else abs(qty)
            self.fill(item, part, now)
        return 200, order

    def fill(self, item: dict[str, Any], quantity: Decimal, now: float) -> None:
        """``quantity`` more of the order fills at the instrument's price."""
        order = item["order"]
        price = self.prices[order["ticker"]]
        done = Decimal(str(order["filledQuantity"])) + quantity
        total = abs(Decimal(str(order["quantity"])))
        order.update(
            filledQuantity=num(done),
            filledValue=num(done * price),
            status="FILLED" if done >= total else "PARTIALLY_FILLED",
        )
        sign = -1 if order["side"] == "BUY" else 1
        self.cash["availableToTrade"] = num(
            Decimal(str(self.cash["availableToTrade"])) + sign * quantity * price
        )
        item["fill"] = {"id": 50_000_000_000 + order["id"] % 1_000_000_000, "filledAt": iso(now),
                        "price": num(price), "quantity": num(done), "type": "TRADE", "tradingMethod": "TOTV",
                        "walletImpact": {"currency": self.currency, "fxRate": 1.0,
                                         "netValue": num(sign * done * price), "realisedProfitLoss": 0.0,
                                         "taxes": []}}  # fmt: skip
        self.changed[order["id"]] = now

    def cancel(self, order_id: int, now: float) -> tuple[int, Any]:
        item = self.order_item(order_id)
        if item is None:
            return 404, {"code": "NotFound", "message": "order not found"}
        order = item["order"]
        if self.fill_on_cancel and order["status"] in OPEN:  # the fill wins the race
            left = abs(Decimal(str(order["quantity"]))) - Decimal(str(order["filledQuantity"]))
            self.fill(item, left, now)
        if order["status"] not in OPEN:
            return 400, {"code": "OrderNotCancellable", "message": f"order is {order['status']}"}
        order["status"] = "CANCELLED"
        self.changed[order_id] = now
        return 200, {}

    def open_orders(self) -> list[dict[str, Any]]:
        return [i["order"] for i in self.orders if i["order"]["status"] in OPEN]

    def summary(self) -> dict[str, Any]:
        value = sum(Decimal(str(p["walletImpact"]["currentValue"])) for p in self.positions)
        cost = sum(Decimal(str(p["walletImpact"]["totalCost"])) for p in self.positions)
        cash = sum(Decimal(str(v)) for v in self.cash.values())
        return {
            "id": self.account_id,
            "currency": self.currency,
            "totalValue": num(value + cash),
            "cash": dict(self.cash),
            "investments": {"currentValue": num(value), "totalCost": num(cost),
                            "realizedProfitLoss": 84.12, "unrealizedProfitLoss": num(value - cost)},
        }  # fmt: skip


def _page(
    listed: list[dict[str, Any]], request: Request, path: str, empty_at: set[int] | None = None
) -> Response | dict[str, Any]:
    """``listed`` in server order; ``cursor`` is how many items of it were already returned.
    At an offset in ``empty_at`` the page is empty and its ``nextPagePath`` (``gap=1``) goes on
    from that offset."""
    try:
        limit = int(request.query_params.get("limit", "20"))
        cursor = int(request.query_params.get("cursor", "0"))
    except ValueError:
        return Response(json.dumps({"message": "invalid parameter"}), 400, media_type="application/json")
    if not 1 <= limit <= 50:
        return Response(json.dumps({"message": "limit must be 1..50"}), 400, media_type="application/json")
    ticker = request.query_params.get("ticker")
    matching = [i for i in listed if ticker is None or (i.get("order") or i).get("ticker") == ticker]
    page = matching[cursor : cursor + limit]
    end = cursor + len(page)
    extra = f"&ticker={ticker}" if ticker else ""
    if cursor in (empty_at or set()) and "gap" not in request.query_params and cursor < len(matching):
        return {"items": [], "nextPagePath": f"/api/v0{path}?limit={limit}&cursor={cursor}&gap=1{extra}"}
    next_path = f"/api/v0{path}?limit={limit}&cursor={end}{extra}" if end < len(matching) else None
    return {"items": page, "nextPagePath": next_path}


def _history_page(data: Trading212Store, endpoint: str, request: Request) -> Response | dict[str, Any]:
    return _page(data.history(endpoint), request, ENDPOINTS[endpoint][0], data.empty_pages)


def create_app(
    clock: Clock,
    *,
    api_key: str,
    api_secret: str | None = None,
    scopes: frozenset[str] = ALL_SCOPES,
    store: Trading212Store | None = None,
) -> Starlette:
    """The fake API; its data and counters are ``app.state.store``."""
    data = store or Trading212Store()
    if api_secret is None:
        valid = api_key
    else:
        valid = "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()

    def refuse(endpoint: str) -> tuple[int, Any] | None:
        scope = ENDPOINTS[endpoint][1]
        return None if scope in scopes else (403, {"code": "Forbidden", "message": f"Missing scope {scope}"})

    wire = Wire(
        authorized=lambda r: r.headers.get("authorization") == valid,
        unauthorized={"code": "Unauthorized", "message": "Invalid API key"},
        too_many={"message": "Too many requests"},
        injected=lambda status: {"code": f"Fault{status}", "message": f"injected {status}"},
        refuse=refuse,
    )
    bodies: dict[str, Callable[[Request], Response | Any]] = {
        "account_summary": lambda r: data.summary(),
        "positions": lambda r: [
            p for p in data.positions if r.query_params.get("ticker") in (None, p["instrument"]["ticker"])
        ],
    }
    for name in ("history_orders", "history_dividends", "history_transactions"):
        bodies[name] = partial(_history_page, data, name)

    def post(kind: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            status, body = data.place(kind, json.loads(await request.body() or b"null"), clock.now())
            return Response(json.dumps(body), status, media_type="application/json")

        return handler

    def one(request: Request) -> Response | dict[str, Any]:
        item = data.order_item(request.path_params["order_id"])
        if item is None or item["order"]["status"] not in OPEN:  # done orders: history only
            return Response(json.dumps({"code": "NotFound"}), 404, media_type="application/json")
        return dict(item["order"])

    def delete(request: Request) -> Response:
        status, body = data.cancel(request.path_params["order_id"], clock.now())
        return Response(json.dumps(body), status, media_type="application/json")

    for kind in ("market", "limit", "stop", "stop_limit"):
        bodies[f"orders_{kind}"] = post(kind)
    bodies |= {"orders_open": lambda r: data.open_orders(), "order_get": one, "order_cancel": delete}
    return create_broker_app(
        clock,
        data,
        wire,
        paths={name: f"/api/v0{spec[0]}" for name, spec in ENDPOINTS.items()},
        windows={name: Window(*spec[2]) for name, spec in ENDPOINTS.items()},
        bodies=bodies,
        methods=METHODS,
    )
