"""Alpaca orders: wire bodies and status mapping. ``client_order_id`` (finsync's order id)
makes a send idempotent at Alpaca, so an ambiguous failure is resolved by asking for it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from finsync.domain.errors import BadData, BrokerOrderNotFound, ProviderError
from finsync.domain.trading import BrokerOrder, Fill, OrderRequest, OrderStatus, OrderType
from finsync.providers.alpaca.client import alpaca_error_type
from finsync.providers.common import Wire

WIRE = Wire("alpaca")
_STATUS = {
    "filled": OrderStatus.FILLED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def problem(order: OrderRequest) -> str | None:
    if order.notional is not None and order.type is not OrderType.MARKET:
        return "Alpaca takes notional amounts for market orders only"
    return None


def body(order: OrderRequest, client_order_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "client_order_id": client_order_id,
    }
    for name, value in (("qty", order.quantity), ("notional", order.notional),
                        ("limit_price", order.limit_price), ("stop_price", order.stop_price)):  # fmt: skip
        if value is not None:
            out[name] = str(value)
    return out


def to_order(order: dict[str, Any]) -> BrokerOrder:
    if not order.get("id"):
        raise BadData("alpaca order without an id")  # maybe placed: ambiguous, reconciled
    filled = WIRE.optional(order.get("filled_qty"), "filled_qty") or Decimal(0)
    price = WIRE.optional(order.get("filled_avg_price"), "filled_avg_price")
    at = WIRE.instant(order["filled_at"]) if order.get("filled_at") else None
    return BrokerOrder(
        broker_order_id=str(order["id"]),
        status=_STATUS.get(str(order.get("status")), OrderStatus.NEW),
        symbol=str(order.get("symbol", "")),
        filled_quantity=filled,
        average_price=price,
        # Alpaca reports an order's fills as one running total (each fill is an activity).
        fills=(Fill(filled, price, at),) if filled and price is not None else (),
        created_at=WIRE.instant(order["created_at"]) if order.get("created_at") else None,
        raw=order,
    )


def error_type(response: httpx.Response) -> type[ProviderError] | None:
    if response.status_code == 404 and "/v2/orders" in response.request.url.path:
        return BrokerOrderNotFound
    return alpaca_error_type(response)
