"""A fake Alpaca Trading API v2: key headers, decimals as strings, activities paging, 200/min.

Activities page newest first by default; ``page_token`` is the id of the last item
already returned; ``after``/``until`` filter by time. Every response carries
``X-Ratelimit-*`` headers and one shared 200-per-minute budget is enforced on the
(virtual) clock. Errors use Alpaca's ``{"code", "message"}`` body.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from finsync.providers.http import Clock
from tests.fakes.broker import BrokerStore, Window, Wire, create_broker_app, iso

LIMIT, PERIOD = 200, 60.0
ENDPOINTS = {
    "account": "/v2/account",
    "positions": "/v2/positions",
    "activities": "/v2/account/activities",
    "orders_post": "/v2/orders",
    "orders_list": "/v2/orders",
    "order_by_client_id": "/v2/orders:by_client_order_id",
    "order_get": "/v2/orders/{order_id}",
    "order_cancel": "/v2/orders/{order_id}",
}
METHODS = {"orders_post": "POST", "order_cancel": "DELETE"}
OPEN = ("new", "accepted", "partially_filled")
_CODES = {401: 40110000, 403: 40310000, 422: 42210000, 429: 42910000, 500: 50010000, 503: 50310000}


def activity_id(epoch: float) -> str:
    """Alpaca ids sort by time: ``YYYYMMDDhhmmssmmm::uuid``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return f"{moment:%Y%m%d%H%M%S}{moment.microsecond // 1000:03d}::{uuid.uuid4()}"


@dataclass
class AlpacaStore(BrokerStore):
    endpoints: ClassVar[frozenset[str]] = frozenset(ENDPOINTS)

    account: dict[str, str] = field(
        default_factory=lambda: {
            "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA3QNWXUQ0ZR",
            "status": "ACTIVE", "currency": "USD", "cash": "4120.55", "equity": "11873.20",
            "last_equity": "11790.01", "buying_power": "23746.40", "non_marginable_buying_power": "4120.55",
            "long_market_value": "7952.65", "short_market_value": "-200.00", "portfolio_value": "11873.20",
            "created_at": "2024-02-01T15:04:05.123456Z", "pattern_day_trader": "false",
        }
    )  # fmt: skip
    positions: list[dict[str, str]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    revoked: bool = False  # the key was revoked: Alpaca then answers 403 {"message": "forbidden."}
    # A key rotation: these (key id, secret) pairs are accepted too; ``retired``: the first no more.
    keys: set[tuple[str, str]] = field(default_factory=set)
    retired: bool = False
    ignore_after: bool = False  # serve activities as if ``after`` were not sent
    # Trading: prices, and how placed orders behave.
    prices: dict[str, Decimal] = field(
        default_factory=lambda: {"AAPL": Decimal("187.43"), "SPY": Decimal("590.10")}
    )
    market_open: bool = True
    fill_mode: str = "fill"  # "fill", "partial" or "open": what a market order does at once
    fill_on_cancel: bool = False  # the cancellation race: the order fills just before the cancel
    orders: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    def place(self, body: Any, now: float) -> tuple[int, Any]:
        """POST /v2/orders: (status, body). ``client_order_id`` is unique: a repeat is a 422."""
        if not isinstance(body, dict) or body.get("symbol") not in self.prices:
            return 422, _body(422, "asset not found")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if any(o["client_order_id"] == cid for o in self.orders):
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        if ("qty" in body) == ("notional" in body):
            return 422, {"code": 40010001, "message": "qty or notional is required"}
        if body.get("type") not in ("market", "limit", "stop", "stop_limit") or body.get("side") not in (
            "buy",
            "sell",
        ):
            return 422, {"code": 40010001, "message": "invalid type or side"}
        price = self.prices[body["symbol"]]
        qty = (
            Decimal(body["qty"])
            if "qty" in body
            else (Decimal(body["notional"]) / price).quantize(Decimal("0.000000001"))
        )
        if body["side"] == "buy" and qty * price > Decimal(self.account["buying_power"]):
            return 403, {"code": 40310000, "message": "insufficient buying power"}
        if not self.market_open and body.get("time_in_force") != "gtc" and body["type"] == "market":
            return 403, {
                "code": 40310000,
                "message": "market orders are not accepted while the market is closed",
            }
        order = {
            "id": str(uuid.uuid4()), "client_order_id": cid, "created_at": iso(now), "updated_at": iso(now),
            "submitted_at": iso(now), "filled_at": None, "symbol": body["symbol"], "asset_class": "us_equity",
            "qty": str(qty) if "qty" in body else None, "notional": body.get("notional"), "filled_qty": "0",
            "filled_avg_price": None, "order_type": body["type"], "type": body["type"], "side": body["side"],
            "time_in_force": body.get("time_in_force", "day"), "limit_price": body.get("limit_price"),
            "stop_price": body.get("stop_price"), "status": "new", "_qty": str(qty),
        }  # fmt: skip
        self.orders.append(order)
        if body["type"] == "market" and self.fill_mode != "open":
            self.fill(order, qty / 2 if self.fill_mode == "partial" else qty, now)
        return 200, _public(order)

    def fill(self, order: dict[str, Any], quantity: Decimal, now: float) -> None:
        done = Decimal(order["filled_qty"]) + quantity
        order.update(
            filled_qty=str(done),
            filled_avg_price=str(self.prices[order["symbol"]]),
            filled_at=iso(now),
            updated_at=iso(now),
            status="filled" if done >= Decimal(order["_qty"]) else "partially_filled",
        )

    def find(self, order_id: str) -> dict[str, Any] | None:
        return next((o for o in self.orders if o["id"] == order_id), None)

    def cancel(self, order_id: str, now: float) -> tuple[int, Any]:
        order = self.find(order_id)
        if order is None:
            return 404, _body(404, "order not found")
        if self.fill_on_cancel and order["status"] in OPEN:
            self.fill(order, Decimal(order["_qty"]) - Decimal(order["filled_qty"]), now)
        if order["status"] not in OPEN:
            return 422, {"code": 42210000, "message": f"order is not cancelable (status {order['status']})"}
        order.update(status="canceled", updated_at=iso(now))
        return 204, None

    def add_position(self, symbol: str, qty: str, avg: str, price: str, side: str = "long") -> None:
        # A short is signed on the wire: qty, qty_available, market_value and cost_basis < 0.
        q, a, p = Decimal(qty).copy_abs() * (-1 if side == "short" else 1), Decimal(avg), Decimal(price)
        value, cost = q * p, q * a
        qty = str(q)
        self.positions.append(
            {
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)), "symbol": symbol,
                "exchange": "NASDAQ",
                "asset_class": "crypto" if symbol.endswith("USD") else "us_equity", "avg_entry_price": avg,
                "qty": qty, "qty_available": qty, "side": side, "market_value": f"{value:.2f}",
                "cost_basis": f"{cost:.2f}", "unrealized_pl": f"{value - cost:.2f}",
                "unrealized_plpc": f"{(value - cost) / abs(cost):.4f}", "current_price": price,
                "lastday_price": price, "change_today": "0.0123",
            }
        )  # fmt: skip

    def add_fill(self, at: float, *, symbol: str = "AAPL", side: str = "buy", qty: str = "5",
                 price: str = "187.43") -> dict[str, Any]:  # fmt: skip
        item = {
            "activity_type": "FILL", "id": activity_id(at), "transaction_time": iso(at), "type": "fill",
            "price": price, "qty": qty, "side": side, "symbol": symbol, "leaves_qty": "0", "cum_qty": qty,
            "order_id": str(uuid.uuid4()), "order_status": "filled",
        }  # fmt: skip
        self.activities.append(item)
        return item

    def add_activity(self, at: float, kind: str, net_amount: str, **extra: str) -> dict[str, Any]:
        item = {
            "activity_type": kind, "id": activity_id(at), "date": iso(at)[:10], "net_amount": net_amount,
            "description": extra.pop("description", f"{kind} activity"), "status": "executed", **extra,
        }  # fmt: skip
        self.activities.append(item)
        return item

    def seed(self, now: float, *, fills: int = 0, others: int = 0) -> None:
        """Deterministic history ending an hour before ``now``, oldest first."""
        kinds = [
            ("CSD", "5000", {}), ("DIV", "3.12", {"symbol": "AAPL", "qty": "13", "per_share_amount": "0.24"}),
            ("INT", "0.87", {}), ("FEE", "-1.00", {}), ("CSW", "-250", {}), ("JNLC", "100", {}),
            ("DIVNRA", "-0.47", {"symbol": "AAPL"}), ("SSO", "0", {"symbol": "XYZ"}),
        ]  # fmt: skip
        events = [(now - 3600 - (fills - i) * 7200.0, "fill", i) for i in range(fills)]
        events += [(now - 3600 - (others - i) * 86_400.0 - 30, "other", i) for i in range(others)]
        for at, kind, i in sorted(events):
            if kind == "fill":
                side = "sell" if i % 3 == 2 else "buy"
                self.add_fill(
                    at, side=side, qty=str(1 + i % 7), price=f"{100 + (i * 37) % 250}.{i % 100:02d}"
                )
            else:
                name, amount, extra = kinds[i % len(kinds)]
                self.add_activity(at, name, amount, **extra)


def _public(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if not k.startswith("_")}


def _answer(status: int, body: Any) -> Response:
    if body is None:
        return Response(status_code=status)
    return Response(json.dumps(body), status, media_type="application/json")


def _when(item: dict[str, Any]) -> datetime:
    text = item.get("transaction_time") or f"{item['date']}T00:00:00Z"
    return datetime.fromisoformat(text)


def _bound(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value if "T" in value else f"{value}T00:00:00Z")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _activities(
    items: list[dict[str, Any]], request: Request, *, ignore_after: bool = False
) -> Response | list[dict[str, Any]]:
    query = request.query_params
    try:
        size = int(query.get("page_size", "100"))
        after, until = _bound(query.get("after")), _bound(query.get("until"))
        after = None if ignore_after else after
    except ValueError:
        return _error(422, "invalid query parameter")
    if not 1 <= size <= 100:
        return _error(422, "page_size must be between 1 and 100")
    desc = query.get("direction", "desc") == "desc"
    types = set(query["activity_types"].split(",")) if "activity_types" in query else None
    ordered = sorted(items, key=lambda i: i["id"], reverse=desc)
    token = query.get("page_token")
    if token is not None:
        ordered = [i for i in ordered if (i["id"] < token if desc else i["id"] > token)]
    picked = [
        i
        for i in ordered
        if (types is None or i["activity_type"] in types)
        and (after is None or _when(i) > after)
        and (until is None or _when(i) < until)
    ]
    return picked[:size]


def _body(status: int, message: str) -> dict[str, Any]:
    return {"code": _CODES.get(status, status * 100000), "message": message}


def _error(status: int, message: str) -> Response:
    return Response(json.dumps(_body(status, message)), status, media_type="application/json")


def create_app(clock: Clock, *, key_id: str, secret_key: str, store: AlpacaStore | None = None) -> Starlette:
    """The fake API; its data and counters are ``app.state.store``."""
    data = store or AlpacaStore()
    wire = Wire(
        authorized=lambda r: (
            (pair := (r.headers.get("apca-api-key-id"), r.headers.get("apca-api-secret-key"))) in data.keys
            or (pair == (key_id, secret_key) and not data.retired)
        ),
        unauthorized=_body(401, "request is not authorized"),
        too_many=_body(429, "rate limit exceeded"),
        injected=lambda status: _body(status, f"injected {status}"),
        revoked=lambda r: (403, {"message": "forbidden."}) if data.revoked else None,
    )
    bodies: dict[str, Callable[[Request], Any]] = {
        "account": lambda r: data.account,
        "positions": lambda r: data.positions,
        "activities": lambda r: _activities(data.activities, r, ignore_after=data.ignore_after),
    }

    async def post(request: Request) -> Response:
        return _answer(*data.place(json.loads(await request.body() or b"null"), clock.now()))

    def listed(request: Request) -> list[dict[str, Any]]:
        wanted = request.query_params.get("status", "open")
        keep = [o for o in data.orders if wanted == "all" or (o["status"] in OPEN) == (wanted == "open")]
        return [_public(o) for o in reversed(keep)][: int(request.query_params.get("limit", "50"))]

    def by_client_id(request: Request) -> Response:
        cid = request.query_params.get("client_order_id")
        found = next((o for o in data.orders if o["client_order_id"] == cid), None)
        return _answer(200, _public(found)) if found else _error(404, "order not found")

    def one(request: Request) -> Response:
        found = data.find(request.path_params["order_id"])
        return _answer(200, _public(found)) if found else _error(404, "order not found")

    bodies |= {
        "orders_post": post,
        "orders_list": listed,
        "order_by_client_id": by_client_id,
        "order_get": one,
        "order_cancel": lambda r: _answer(*data.cancel(r.path_params["order_id"], clock.now())),
    }
    # One budget for every endpoint; an idle window reports its reset a whole period ahead.
    shared = Window(LIMIT, PERIOD, idle_reset=PERIOD, reported=("limit", "remaining", "reset"))
    return create_broker_app(
        clock,
        data,
        wire,
        paths=ENDPOINTS,
        windows=dict.fromkeys(ENDPOINTS, shared),
        bodies=bodies,
        methods=METHODS,
    )
