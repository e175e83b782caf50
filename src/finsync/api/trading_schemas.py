"""Request and response bodies of trading: settings, orders, API tokens."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from finsync.api.wire import DecimalInput, DecimalText, UtcDateTime
from finsync.domain.trading import OrderSide, OrderStatus, OrderType, TimeInForce


class TradingSettingsIn(BaseModel):
    """Only the fields sent change; null clears a limit."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(default=None, description="Trading is off on every connection until true")
    max_order_notional: DecimalInput | None = Field(
        default=None, description="Largest value of one order, in the account currency"
    )
    max_orders_per_day: int | None = Field(default=None, ge=1, description="Orders per UTC day")
    max_notional_per_day: DecimalInput | None = Field(
        default=None, description="Total value of the orders of one UTC day, in the account currency"
    )
    symbols: list[str] | None = Field(
        default=None, max_length=500, description="The only symbols orders may name; null: any"
    )


class TradingSettingsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    connection_id: UUID
    enabled: bool
    halted: bool
    max_order_notional: DecimalText | None
    max_orders_per_day: int | None
    max_notional_per_day: DecimalText | None
    symbols: list[str] | None
    updated_at: UtcDateTime


class HaltOut(BaseModel):
    settings: TradingSettingsOut
    cancelled: list[UUID] = Field(description="Open orders the broker cancelled")
    failed: list[UUID] = Field(description="Open orders the broker could not cancel (see each order)")


class OrderIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "2"},
                {
                    "symbol": "AAPL_US_EQ",
                    "side": "sell",
                    "type": "limit",
                    "quantity": "1.5",
                    "limit_price": "190.00",
                },
            ]
        },
    )

    symbol: str = Field(min_length=1, max_length=64, description="The broker's symbol (Trading 212: ticker)")
    side: OrderSide
    type: OrderType
    quantity: DecimalInput | None = Field(
        default=None, description="Shares; exactly one of quantity and notional"
    )
    notional: DecimalInput | None = Field(default=None, description="Amount of money (Alpaca market orders)")
    limit_price: DecimalInput | None = None
    stop_price: DecimalInput | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    client_order_id: str | None = Field(
        default=None, max_length=128, description="Your own reference, echoed"
    )


class FillOut(BaseModel):
    quantity: DecimalText
    price: DecimalText
    at: UtcDateTime | None = None


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    account_id: UUID
    connection_id: UUID
    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    quantity: DecimalText | None
    notional: DecimalText | None
    limit_price: DecimalText | None
    stop_price: DecimalText | None
    currency: str
    status: OrderStatus = Field(
        description="pending_submit (stored, being sent), unknown (the send failed ambiguously: being "
        "reconciled), new, partially_filled, filled, cancelled, rejected, expired"
    )
    filled_quantity: DecimalText
    average_price: DecimalText | None
    fills: list[FillOut]
    reason: str | None = Field(description="Why the broker rejected it, or what failed")
    broker_order_id: str | None
    client_order_id: str | None
    created_by: str = Field(description="user, or token:<id> for an API token")
    created_at: UtcDateTime
    updated_at: UtcDateTime


class OrderEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: str = Field(description="request, broker_answer, broker_error, status, reconcile, resend, cancel")
    actor: str
    at: UtcDateTime
    data: dict[str, Any]


class OrderStatusEventOut(BaseModel):
    """The ``data`` of an ``order.status`` event of ``GET /orders/events``."""

    model_config = ConfigDict(from_attributes=True)

    order_id: UUID
    account_id: UUID
    connection_id: UUID
    symbol: str
    client_order_id: str | None
    status: OrderStatus
    previous_status: OrderStatus | None
    filled_quantity: DecimalText
    at: UtcDateTime


class ApiTokenIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "my bot", "scopes": ["read", "trade:0190d4c2-…"]}]},
    )

    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=50, description="read, trade:<connection id>")


class ApiTokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    scopes: list[str]
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="The secret: shown this once, send it as `Authorization: Bearer <token>`")


class LivePositionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    symbol: str
    quantity: DecimalText
    currency: str = Field(description="The account's: of market_value, fifo_cost and both P&Ls")
    price_currency: str = Field(description="Of current_price (the instrument's trading currency)")
    current_price: DecimalText | None
    market_value: DecimalText | None
    fifo_cost: DecimalText | None = Field(
        description="What the held quantity cost by FIFO lots; null when the account's trades in "
        "finsync do not explain the quantity held (history older than the first sync)"
    )
    realised_pnl: DecimalText = Field(description="Of the symbol's sales, FIFO, from the account's trades")
    unrealised_pnl: DecimalText | None = Field(description="market_value minus fifo_cost")
