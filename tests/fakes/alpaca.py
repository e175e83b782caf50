"""A fake Alpaca Trading API v2: key headers, decimals as strings, activities paging, 200/min.

Activities page newest first by default; ``page_token`` is the id of the last item
already returned; ``after``/``until`` filter by time. Every response carries
``X-Ratelimit-*`` headers and one shared 200-per-minute budget is enforced on the
(virtual) clock. Errors use Alpaca's ``{"code", "message"}`` body.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

LIMIT, PERIOD = 200, 60.0
ENDPOINTS = {"account": "/v2/account", "positions": "/v2/positions", "activities": "/v2/account/activities"}
FAULTS = frozenset({"401", "403", "429", "500", "503", "timeout", "malformed"})
_CODES = {401: 40110000, 403: 40310000, 422: 42210000, 429: 42910000, 500: 50010000, 503: 50310000}


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def activity_id(epoch: float) -> str:
    """Alpaca ids sort by time: ``YYYYMMDDhhmmssmmm::uuid``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return f"{moment:%Y%m%d%H%M%S}{moment.microsecond // 1000:03d}::{uuid.uuid4()}"


@dataclass
class AlpacaStore:
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
    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    faults: defaultdict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    hang_seconds: float = 1.0

    def inject(self, endpoint: str, fault: str, times: int = 1) -> None:
        if endpoint not in ENDPOINTS or fault not in FAULTS:
            raise ValueError(f"unknown endpoint or fault: {endpoint!r}, {fault!r}")
        self.faults[endpoint].extend([fault] * times)

    def reset_counters(self) -> None:
        self.requests.clear()
        self.throttled.clear()

    def add_position(self, symbol: str, qty: str, avg: str, price: str, side: str = "long") -> None:
        q, a, p = Decimal(qty), Decimal(avg), Decimal(price)
        value, cost = q * p, q * a
        self.positions.append(
            {
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)), "symbol": symbol,
                "exchange": "NASDAQ",
                "asset_class": "crypto" if symbol.endswith("USD") else "us_equity", "avg_entry_price": avg,
                "qty": qty, "qty_available": qty, "side": side, "market_value": f"{value:.2f}",
                "cost_basis": f"{cost:.2f}", "unrealized_pl": f"{value - cost:.2f}",
                "unrealized_plpc": f"{(value - cost) / cost:.4f}", "current_price": price,
                "lastday_price": price, "change_today": "0.0123",
            }
        )  # fmt: skip

    def add_fill(self, at: float, *, symbol: str = "AAPL", side: str = "buy", qty: str = "5",
                 price: str = "187.43") -> dict[str, Any]:  # fmt: skip
        item = {
            "activity_type": "FILL", "id": activity_id(at), "transaction_time": stamp(at), "type": "fill",
            "price": price, "qty": qty, "side": side, "symbol": symbol, "leaves_qty": "0", "cum_qty": qty,
            "order_id": str(uuid.uuid4()), "order_status": "filled",
        }  # fmt: skip
        self.activities.append(item)
        return item

    def add_activity(self, at: float, kind: str, net_amount: str, **extra: str) -> dict[str, Any]:
        item = {
            "activity_type": kind, "id": activity_id(at), "date": stamp(at)[:10], "net_amount": net_amount,
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


def _when(item: dict[str, Any]) -> datetime:
    text = item.get("transaction_time") or f"{item['date']}T00:00:00Z"
    return datetime.fromisoformat(text)


def _bound(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value if "T" in value else f"{value}T00:00:00Z")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _activities(items: list[dict[str, Any]], request: Request) -> Response | list[dict[str, Any]]:
    query = request.query_params
    try:
        size = int(query.get("page_size", "100"))
        after, until = _bound(query.get("after")), _bound(query.get("until"))
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


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"code": _CODES.get(status, status * 100000), "message": message})
    return Response(body, status, headers, media_type="application/json")


def create_app(clock: Clock, *, key_id: str, secret_key: str, store: AlpacaStore | None = None) -> Starlette:
    """The fake API; its data and counters are ``app.state.store``."""
    data = store or AlpacaStore()
    sent: deque[float] = deque()
    bodies: dict[str, Callable[[Request], Any]] = {
        "account": lambda r: data.account,
        "positions": lambda r: data.positions,
        "activities": lambda r: _activities(data.activities, r),
    }

    def limit_headers(now: float) -> dict[str, str]:
        while sent and sent[0] <= now - PERIOD:
            sent.popleft()
        reset = math.ceil(sent[0] + PERIOD) if sent else math.ceil(now + PERIOD)
        remaining = LIMIT - len(sent)
        return {"X-Ratelimit-Limit": str(LIMIT), "X-Ratelimit-Remaining": str(remaining),
                "X-Ratelimit-Reset": str(reset)}  # fmt: skip

    def make_handler(name: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            data.requests[name] += 1
            now = clock.now()
            headers = limit_headers(now)
            if request.headers.get("apca-api-key-id") != key_id or (
                request.headers.get("apca-api-secret-key") != secret_key
            ):
                return _error(401, "request is not authorized", headers)
            fault = data.faults[name].popleft() if data.faults[name] else None
            if fault == "timeout":
                await asyncio.sleep(data.hang_seconds)
            elif fault == "429":
                headers |= {"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(math.ceil(now) + 10)}
                return _error(429, "rate limit exceeded", headers)
            elif fault is not None and fault != "malformed":
                return _error(int(fault), f"injected {fault}", headers)
            if int(headers["X-Ratelimit-Remaining"]) <= 0:
                data.throttled[name] += 1
                return _error(429, "rate limit exceeded", headers)
            sent.append(now)
            headers = limit_headers(now)
            body = bodies[name](request)
            if isinstance(body, Response):
                body.headers.update(headers)
                return body
            text = json.dumps(body)
            if fault == "malformed":
                text = text[: len(text) // 2]
            return Response(text, 200, headers, media_type="application/json")

        return handler

    app = Starlette(routes=[Route(path, make_handler(name)) for name, path in ENDPOINTS.items()])
    app.state.store = data
    return app
