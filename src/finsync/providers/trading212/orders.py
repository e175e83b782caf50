"""Trading 212 orders: wire bodies, status mapping and reconciliation (no client order id).

Trading 212 takes no idempotency key, so an order whose send failed ambiguously is looked
for among the open orders and the newest order history: same ticker, signed quantity, type
and prices, created no earlier than a minute before it was sent. History is newest first,
so one page usually decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from finsync.domain.errors import BadData, BrokerOrderNotFound, ProviderError
from finsync.domain.trading import (
    BrokerOrder,
    Fill,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from finsync.providers.common import Wire

WIRE = Wire("trading212")
SKEW = timedelta(seconds=60)  # clocks of finsync and the broker may disagree this much
HISTORY_PAGES = 3  # reconciliation reads at most this many history pages (6 a minute)

_STATUS = {
    "FILLED": OrderStatus.FILLED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}
_TIF = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GOOD_TILL_CANCEL"}
ENDPOINT = {
    OrderType.MARKET: "orders_market",
    OrderType.LIMIT: "orders_limit",
    OrderType.STOP: "orders_stop",
    OrderType.STOP_LIMIT: "orders_stop_limit",
}


def problem(order: OrderRequest, environment: str) -> str | None:
    """What Trading 212's API cannot take: notional orders; anything but market orders live."""
    if order.notional is not None:
        return "Trading 212 takes quantities only: send quantity, not notional"
    if environment == "live" and order.type is not OrderType.MARKET:
        return "Trading 212 live accepts only market orders through its API"
    return None


def body(order: OrderRequest) -> dict[str, Any]:
    """The order's JSON body; numbers stay Decimals, written as JSON numbers digit for digit
    (``client.post_order``), never through a float."""
    quantity = order.quantity or Decimal(0)
    out: dict[str, Any] = {
        "ticker": order.symbol,
        "quantity": -quantity if order.side is OrderSide.SELL else quantity,
    }
    if order.limit_price is not None:
        out["limitPrice"] = order.limit_price
    if order.stop_price is not None:
        out["stopPrice"] = order.stop_price
    if order.type is not OrderType.MARKET:
        out["timeValidity"] = _TIF[order.time_in_force]
    return out


def to_order(order: dict[str, Any], fill: dict[str, Any] | None = None) -> BrokerOrder:
    if "id" not in order:
        raise BadData("trading212 order without an id")  # maybe placed: ambiguous, reconciled
    filled = abs(WIRE.optional(order.get("filledQuantity"), "filledQuantity") or Decimal(0))
    status = _STATUS.get(str(order.get("status", "")).upper())
    if status is None:
        status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.NEW
    fills: tuple[Fill, ...] = ()
    price = None
    if fill:
        price = WIRE.optional(fill.get("price"), "fill.price")
        qty = abs(WIRE.optional(fill.get("quantity"), "fill.quantity") or filled)
        at = WIRE.instant(fill["filledAt"]) if fill.get("filledAt") else None
        fills = (Fill(qty, price or Decimal(0), at),)
    elif filled:
        value = WIRE.optional(order.get("filledValue"), "filledValue")
        price = value / filled if value is not None else None
    return BrokerOrder(
        broker_order_id=str(order["id"]),
        status=status,
        symbol=str(order.get("ticker", "")),
        filled_quantity=filled,
        average_price=price,
        fills=fills,
        created_at=WIRE.instant(order["createdAt"]) if order.get("createdAt") else None,
        raw=order,
    )


def matches(candidate: dict[str, Any], order: OrderRequest, sent_at: datetime) -> bool:
    """Could ``candidate`` (a Trading 212 order) be ``order`` sent at ``sent_at``?"""
    wanted = body(order)
    created = candidate.get("createdAt")
    if candidate.get("ticker") != wanted["ticker"] or not created:
        return False
    try:
        same_qty = WIRE.number(candidate.get("quantity"), "quantity") == wanted["quantity"]
        kind = str(candidate.get("type", "MARKET")).lower()
        for field, key in (("limitPrice", "limitPrice"), ("stopPrice", "stopPrice")):
            theirs, ours = WIRE.optional(candidate.get(field), field), wanted.get(key)
            if (theirs is None) != (ours is None) or (ours is not None and theirs != ours):
                return False
        return same_qty and kind == order.type.value and WIRE.instant(created) >= sent_at - SKEW
    except ProviderError:
        return False


def error_type(response: httpx.Response) -> type[ProviderError] | None:
    """404 on an order path: the broker does not know that order."""
    if response.status_code == 404 and "/equity/orders" in response.request.url.path:
        return BrokerOrderNotFound
    return None
