"""A fake Trading 212 Public API (v0) that speaks the documented wire format.

It checks auth (Basic key:secret, or the legacy bare key) and per-key scopes,
paginates history newest first with ``limit``/``cursor``/``nextPagePath``, sends
doubles as JSON numbers, and enforces each endpoint's documented rate limit on the
shared (virtual) clock with ``x-ratelimit-*`` headers and 429s. Tests mutate the
:class:`Trading212Store` between syncs and inject faults into the next requests.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from finsync.providers.http import Clock
from tests.fakes.broker import BrokerStore, Window, Wire, create_broker_app, iso

ALL_SCOPES = frozenset(
    {"account", "portfolio", "orders:read", "history:orders", "history:dividends", "history:transactions"}
)
# endpoint name → (path under /api/v0, scope, (limit, period seconds)) as documented
ENDPOINTS: dict[str, tuple[str, str, tuple[int, float]]] = {
    "account_summary": ("/equity/account/summary", "account", (1, 5.0)),
    "positions": ("/equity/positions", "portfolio", (1, 1.0)),
    "history_orders": ("/equity/history/orders", "history:orders", (6, 60.0)),
    "history_dividends": ("/equity/history/dividends", "history:dividends", (6, 60.0)),
    "history_transactions": ("/equity/history/transactions", "history:transactions", (6, 60.0)),
}


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
        return item

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


def _page(items: list[dict[str, Any]], request: Request, path: str) -> Response | dict[str, Any]:
    """Newest first; ``cursor`` is the position of the last item already returned."""
    try:
        limit = int(request.query_params.get("limit", "20"))
        cursor = int(request.query_params.get("cursor", str(len(items))))
    except ValueError:
        return Response(json.dumps({"message": "invalid parameter"}), 400, media_type="application/json")
    if not 1 <= limit <= 50:
        return Response(json.dumps({"message": "limit must be 1..50"}), 400, media_type="application/json")
    ticker = request.query_params.get("ticker")
    end = min(cursor, len(items))
    page: list[dict[str, Any]] = []
    pos = end
    while pos > 0 and len(page) < limit:
        pos -= 1
        item = items[pos]
        if ticker is None or (item.get("order") or item).get("ticker") == ticker:
            page.append(item)
    more = pos > 0 and any(
        ticker is None or (i.get("order") or i).get("ticker") == ticker for i in items[:pos]
    )
    extra = f"&ticker={ticker}" if ticker else ""
    next_path = f"/api/v0{path}?limit={limit}&cursor={pos}{extra}" if more else None
    return {"items": page, "nextPagePath": next_path}


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
        "history_orders": lambda r: _page(data.orders, r, ENDPOINTS["history_orders"][0]),
        "history_dividends": lambda r: _page(data.dividends, r, ENDPOINTS["history_dividends"][0]),
        "history_transactions": lambda r: _page(data.transactions, r, ENDPOINTS["history_transactions"][0]),
    }
    return create_broker_app(
        clock,
        data,
        wire,
        paths={name: f"/api/v0{spec[0]}" for name, spec in ENDPOINTS.items()},
        windows={name: Window(*spec[2]) for name, spec in ENDPOINTS.items()},
        bodies=bodies,
    )
