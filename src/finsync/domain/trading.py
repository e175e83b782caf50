"""Order execution for bots: what an order is, the owner's switches and limits, and API tokens.

Pure rules, no I/O. An order is written (``pending_submit``) before it is sent, so whatever
happens on the wire it is accounted for; its ``events`` are the append-only audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from finsync.domain.entities import Account, Connection, new_id, utcnow
from finsync.domain.errors import InvalidInput, OrderLimitExceeded, TradingDisabled, TradingHalted


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"


class OrderStatus(StrEnum):
    PENDING_SUBMIT = "pending_submit"  # stored, maybe on the wire: never resent blindly
    UNKNOWN = "unknown"  # the send failed ambiguously: reconciled before anything else
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)

    @property
    def open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """What a bot asks for, validated: exactly one of ``quantity`` and ``notional``."""

    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY

    def __post_init__(self) -> None:
        if (self.quantity is None) == (self.notional is None):
            raise InvalidInput("send exactly one of quantity and notional")
        for name in ("quantity", "notional", "limit_price", "stop_price"):
            value = getattr(self, name)
            if value is not None and (not value.is_finite() or value <= 0):
                raise InvalidInput(f"{name} must be a positive number")
        needs_limit = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise InvalidInput(
                f"limit_price is {'required' if needs_limit else 'not allowed'} for {self.type}"
            )
        if needs_stop != (self.stop_price is not None):
            raise InvalidInput(f"stop_price is {'required' if needs_stop else 'not allowed'} for {self.type}")
        if not self.symbol or len(self.symbol) > 64:
            raise InvalidInput("symbol must be 1 to 64 characters")

    def estimated_notional(self, last_price: Decimal | None) -> Decimal | None:
        """The order's value for the owner's limits: its notional, or quantity times the best
        price known (limit, stop, then the last price); None when no price is known."""
        if self.notional is not None:
            return self.notional
        price = self.limit_price or self.stop_price or last_price
        return None if price is None or self.quantity is None else self.quantity * price


@dataclass(frozen=True, slots=True)
class Fill:
    quantity: Decimal
    price: Decimal
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOrder:
    """An order as the broker reports it."""

    broker_order_id: str
    status: OrderStatus
    symbol: str
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fills: tuple[Fill, ...] = ()
    created_at: datetime | None = None
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class TradingSettings:
    """One connection's switches and limits, set by its owner (trading is off until enabled)."""

    connection_id: UUID
    user_id: UUID
    enabled: bool = False
    halted: bool = False
    max_order_notional: Decimal | None = None
    max_orders_per_day: int | None = None
    max_notional_per_day: Decimal | None = None
    symbols: list[str] | None = None  # the allow-list; None: any symbol
    updated_at: datetime = field(default_factory=utcnow)

    def check_switches(self) -> None:
        """Refuse any send, a first one or a resend, while trading is off or halted."""
        if not self.enabled:
            raise TradingDisabled("trading is not enabled on this connection (PATCH its trading settings)")
        if self.halted:
            raise TradingHalted("trading on this connection is halted (POST .../trading/resume)")

    def check(self, request: OrderRequest, estimate: Decimal | None, today: tuple[int, Decimal]) -> None:
        """Refuse an order the owner's switches or limits forbid, naming the limit.
        ``today``: orders placed and their estimated notional since midnight UTC."""
        self.check_switches()
        if self.symbols is not None and request.symbol not in self.symbols:
            raise OrderLimitExceeded(f"symbols: {request.symbol} is not in this connection's allow-list")
        count, spent = today
        if self.max_orders_per_day is not None and count + 1 > self.max_orders_per_day:
            raise OrderLimitExceeded(
                f"max_orders_per_day: {self.max_orders_per_day} orders already placed today"
            )
        money_limits = self.max_order_notional is not None or self.max_notional_per_day is not None
        if money_limits and estimate is None:
            raise OrderLimitExceeded(
                f"max_order_notional/max_notional_per_day: no price is known for {request.symbol}; "
                "send a notional or a limit price"
            )
        if (
            self.max_order_notional is not None
            and estimate is not None
            and estimate > self.max_order_notional
        ):
            raise OrderLimitExceeded(f"max_order_notional: {estimate} exceeds {self.max_order_notional}")
        day_limit = self.max_notional_per_day
        if day_limit is not None and estimate is not None and spent + estimate > day_limit:
            raise OrderLimitExceeded(
                f"max_notional_per_day: {spent} placed today + {estimate} exceeds {day_limit}"
            )


@dataclass(slots=True, kw_only=True)
class Order:
    user_id: UUID
    connection_id: UUID
    account_id: UUID
    idempotency_key: str
    request_digest: str
    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    currency: str
    created_by: str  # "user" or "token:<id>"
    id: UUID = field(default_factory=new_id)
    quantity: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    estimated_notional: Decimal | None = None
    client_order_id: str | None = None  # the bot's own reference, echoed back
    broker_order_id: str | None = None
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    submit_attempts: int = 1  # claimed before each send; at most 2 (one proven-absent resend)
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fills: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    submitted_at: datetime = field(default_factory=utcnow)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def request(self) -> OrderRequest:
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            quantity=self.quantity,
            notional=self.notional,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
        )


@dataclass(slots=True, kw_only=True)
class OrderEvent:
    """One line of an order's audit trail: who or what, when, and what was said."""

    user_id: UUID
    order_id: UUID
    kind: str  # request, sent, broker_answer, broker_error, status, reconcile, cancel
    actor: str
    data: dict[str, Any]
    id: UUID = field(default_factory=new_id)
    at: datetime = field(default_factory=utcnow)


READ_SCOPE = "read"
TRADE_PREFIX = "trade:"


@dataclass(slots=True, kw_only=True)
class ApiToken:
    """A bot's credential: scopes ``read`` and ``trade:<connection id>``; only its hash is kept."""

    user_id: UUID
    name: str
    token_hash: str
    scopes: list[str]
    id: UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    revoked_at: datetime | None = None

    def may_trade(self, connection_id: UUID) -> bool:
        return f"{TRADE_PREFIX}{connection_id}" in self.scopes

    @property
    def may_read(self) -> bool:
        return READ_SCOPE in self.scopes


ORDER_STATUS_CHANNEL = "finsync_order_status"


@dataclass(frozen=True, slots=True)
class StatusNote:
    """A status change just committed, as it travels between processes (PostgreSQL NOTIFY):
    small, and only a wake-up: the stream reads the change itself from ``order_events``."""

    event_id: UUID
    order_id: UUID
    user_id: UUID
    status: str

    def payload(self) -> str:
        return f"{self.event_id} {self.order_id} {self.user_id} {self.status}"

    @classmethod
    def parse(cls, payload: str) -> StatusNote:
        event_id, order_id, user_id, status = payload.split(" ")
        return cls(UUID(event_id), UUID(order_id), UUID(user_id), status)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderStatusChange:
    """One item of a user's order event stream (an ``order_events`` row of kind ``status``)."""

    event_id: UUID
    order_id: UUID
    account_id: UUID
    connection_id: UUID
    symbol: str
    client_order_id: str | None
    status: str
    previous_status: str | None
    filled_quantity: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderContext:
    """What placing an order needs to know, read at once (``OrderDesk.context``): who calls,
    the account and its connection, the connection's settings as they are now (not locked),
    the order the idempotency key already names, and the symbol's last known price."""

    user_id: UUID
    token: ApiToken | None
    account: Account | None
    connection: Connection | None
    settings: TradingSettings | None
    stored: Order | None
    last_price: Decimal | None


@dataclass(frozen=True, slots=True)
class Expected:
    """What an order's status write was computed from: it is written only while the stored
    order still has this status and filled quantity (a compare-and-set), so when a read and
    the poller learn the same change at once, one of them records it."""

    status: OrderStatus
    filled_quantity: Decimal


class Placement(StrEnum):
    """What ``OrderDesk.place`` did."""

    PLACED = "placed"  # stored with its request event, committed
    TAKEN = "taken"  # the idempotency key names another order (a concurrent request's)
    CHANGED = "changed"  # the settings are no longer those checked: nothing written
