"""Trading: a connection's switches and kill switch, orders, and the API tokens bots use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import Response, StreamingResponse

from finsync.api.deps import (
    ContainerDep,
    CurrentUser,
    OrderCallerDep,
    PageDep,
    PrincipalDep,
    bounded,
    still_good,
)
from finsync.api.errors import responses
from finsync.api.idempotency import digest
from finsync.api.pagination import PageOut, to_page
from finsync.api.trading_schemas import (
    ApiTokenCreated,
    ApiTokenIn,
    ApiTokenOut,
    HaltOut,
    LivePositionOut,
    OrderEventOut,
    OrderIn,
    OrderOut,
    OrderStatusEventOut,
    TradingSettingsOut,
)
from finsync.application.order_stream import DROPPED, READY, Item
from finsync.domain.errors import (
    BrokerOrderNotFound,
    Conflict,
    InsufficientScope,
    InvalidInput,
    LiveTradingDisabled,
    NotFound,
    OrderLimitExceeded,
    ProviderError,
    TradingDisabled,
    TradingHalted,
    UnsupportedOrder,
)
from finsync.domain.trading import OrderRequest, OrderStatusChange

router = APIRouter(tags=["trading"])


@router.get(
    "/connections/{connection_id}/trading",
    response_model=TradingSettingsOut,
    responses=responses(NotFound, InvalidInput),
)
async def get_trading(connection_id: UUID, user: CurrentUser, container: ContainerDep) -> TradingSettingsOut:
    """The connection's trading switches and limits (off until you enable them with PATCH)."""
    return TradingSettingsOut.model_validate(await container.trading.get(connection_id, user.id))


@router.post(
    "/connections/{connection_id}/trading/halt",
    response_model=HaltOut,
    responses=responses(NotFound, InvalidInput, InsufficientScope),
)
async def halt_trading(connection_id: UUID, principal: PrincipalDep, container: ContainerDep) -> HaltOut:
    """Kill switch: refuse every new order on this connection and cancel its open orders at the
    broker. An API token with `trade:<connection>` may pull it too; only you can resume."""
    principal.caller.check_trade(connection_id)
    halted = await container.trading.halt(connection_id, principal.user.id, principal.caller.actor)
    return HaltOut(
        settings=TradingSettingsOut.model_validate(halted.settings),
        cancelled=halted.cancelled,
        failed=halted.failed,
    )


@router.post(
    "/connections/{connection_id}/trading/resume",
    response_model=TradingSettingsOut,
    responses=responses(NotFound, InvalidInput, InsufficientScope),
)
async def resume_trading(
    connection_id: UUID, user: CurrentUser, container: ContainerDep
) -> TradingSettingsOut:
    """Lift the kill switch (logged-in users only)."""
    return TradingSettingsOut.model_validate(await container.trading.resume(connection_id, user.id))


OrderKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Required. Names this order for good: a retry with the same key and body "
        "answers the first order (200, `Idempotent-Replayed: true`) and never sends another; the "
        "same key with another body answers 422.",
    ),
]

ORDER_ERRORS = (
    NotFound,
    InvalidInput,
    UnsupportedOrder,
    InsufficientScope,
    TradingDisabled,
    LiveTradingDisabled,
    TradingHalted,
    OrderLimitExceeded,
    Conflict,
)


@router.post(
    "/accounts/{account_id}/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses={
        **responses(*ORDER_ERRORS),
        200: {"model": OrderOut, "description": "The Idempotency-Key's order, already placed (a retry)"},
    },
)
async def place(
    account_id: UUID,
    body: OrderIn,
    caller: OrderCallerDep,
    container: ContainerDep,
    idempotency_key: OrderKey = None,
) -> Response:
    """Place an order (user, or API token with `trade:<connection>`). The `Idempotency-Key` header
    is required and permanent: the same key never sends a second order (a retry answers 200 with
    the first order, as it is now). Refused before any network call, with a problem naming why:
    what the broker cannot take (422), trading off, halted, live disabled, a limit (403). A
    broker's own refusal (funds, market closed) is the order in status `rejected`."""
    request = OrderRequest(
        symbol=body.symbol,
        side=body.side,
        type=body.type,
        quantity=body.quantity,
        notional=body.notional,
        limit_price=body.limit_price,
        stop_price=body.stop_price,
        time_in_force=body.time_in_force,
    )
    key_digest = digest("POST", f"/accounts/{account_id}/orders", body.model_dump_json().encode())
    placed = await container.orders.place(
        caller, account_id, request, idempotency_key, key_digest, body.client_order_id
    )
    out = OrderOut.model_validate(placed.order).model_dump_json()  # serialised once, as JSON
    headers = None if placed.created else {"Idempotent-Replayed": "true"}
    status_code = 201 if placed.created else 200
    return Response(out, status_code=status_code, headers=headers, media_type="application/json")


@router.get(
    "/orders",
    response_model=PageOut[OrderOut],
    responses=responses(InvalidInput, InsufficientScope, NotFound),
)
@bounded
async def list_orders(
    principal: PrincipalDep,
    container: ContainerDep,
    page: PageDep,
    account_id: Annotated[UUID | None, Query(description="Only this account's orders")] = None,
    open_only: Annotated[bool, Query(alias="open", description="Only orders not final yet")] = False,
) -> PageOut[OrderOut]:
    """Your orders, newest first, as last seen (GET one to refresh it from the broker)."""
    found = await container.orders.list(principal.caller, page, account_id, open_only)
    return to_page(found, OrderOut)


EVENT_EXAMPLE = (
    "id: 0193a5e2-7c1f-7000-8000-000000000001\n"
    "event: order.status\n"
    'data: {"order_id": "…", "account_id": "…", "connection_id": "…", "symbol": "AAPL", '
    '"client_order_id": null, "status": "filled", "previous_status": "new", '
    '"filled_quantity": "4", "at": "2026-11-29T20:15:00Z"}\n\n'
    ": heartbeat\n\n"
)


@router.get(
    "/orders/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "A Server-Sent Events stream that stays open: one `order.status` event per "
            "status change (its `id` is the audit event's id), a `: heartbeat` comment after a quiet "
            "interval. Not a JSON answer.",
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": EVENT_EXAMPLE}},
        },
        **responses(InvalidInput, InsufficientScope),
    },
)
async def order_event_stream(
    principal: PrincipalDep,
    container: ContainerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="The `id` of the last event received: the stream first replays every change "
            "after it (EventSource sends it on reconnect).",
        ),
    ] = None,
) -> StreamingResponse:
    """Order status changes of your accounts as they happen (Server-Sent Events), whichever
    finsync process saw them: placing, cancelling, reconciling or following the order at its
    broker. A user, or an API token with `read` (all accounts) or `trade:<connection>` (that
    connection's orders). Each event: `id`, `event: order.status`, `data` (JSON: order, account,
    status, previous status, filled quantity, time). A client that cannot keep up is
    disconnected; reconnect with `Last-Event-ID` to get what was missed."""
    container.order_stream.scope(principal.caller)  # refused before the stream starts
    after = None
    if last_event_id is not None:
        try:
            after = UUID(last_event_id.strip())
        except ValueError:
            raise InvalidInput("Last-Event-ID must be the id of an event of this stream") from None
    items = container.order_stream.follow(principal.caller, after, lambda: still_good(container, principal))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(sse(items), media_type="text/event-stream", headers=headers)


async def sse(items: AsyncIterator[Item]) -> AsyncIterator[bytes]:
    """The stream's items as SSE frames."""
    async for item in items:
        if isinstance(item, OrderStatusChange):
            data = OrderStatusEventOut.model_validate(item).model_dump_json()
            yield f"id: {item.event_id}\nevent: order.status\ndata: {data}\n\n".encode()
        elif item == READY:
            yield b"retry: 3000\n: ready\n\n"
        elif item == DROPPED:
            yield b"event: dropped\ndata: {}\n\n"
        else:
            yield b": heartbeat\n\n"


@router.get("/orders/{order_id}", response_model=OrderOut, responses=responses(NotFound, InsufficientScope))
async def get_order(order_id: UUID, principal: PrincipalDep, container: ContainerDep) -> OrderOut:
    """One order, refreshed from the broker while not final: status and fills. An `unknown` order
    (its send failed ambiguously) is reconciled with the broker first."""
    return OrderOut.model_validate(await container.orders.get(principal.caller, order_id))


@router.get(
    "/orders/{order_id}/events",
    response_model=list[OrderEventOut],
    responses=responses(NotFound, InsufficientScope),
)
async def order_events(
    order_id: UUID, principal: PrincipalDep, container: ContainerDep
) -> list[OrderEventOut]:
    """The order's audit trail: who asked (user or token), the request, every broker answer and
    error, every status change, oldest first."""
    events = await container.orders.events(principal.caller, order_id)
    return [OrderEventOut.model_validate(e) for e in events]


@router.delete(
    "/orders/{order_id}",
    response_model=OrderOut,
    responses=responses(NotFound, InsufficientScope, Conflict, BrokerOrderNotFound, ProviderError),
)
async def cancel_order(order_id: UUID, principal: PrincipalDep, container: ContainerDep) -> OrderOut:
    """Cancel at the broker, then answer the order as the broker now has it (a fill may have won
    the race: then it is `filled`). A final order answers 409."""
    return OrderOut.model_validate(await container.orders.cancel(principal.caller, order_id))


@router.post(
    "/api-tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiTokenCreated,
    responses=responses(InvalidInput, InsufficientScope),
)
async def create_api_token(body: ApiTokenIn, user: CurrentUser, container: ContainerDep) -> ApiTokenCreated:
    """A token for a bot with scopes `read` and/or `trade:<connection id>`. The secret is in this
    answer only: finsync keeps its SHA-256, never the token."""
    token, secret = await container.api_tokens.create(user.id, body.name, body.scopes)
    return ApiTokenCreated.model_validate({**ApiTokenOut.model_validate(token).model_dump(), "token": secret})


@router.get("/api-tokens", response_model=list[ApiTokenOut], responses=responses(InsufficientScope))
async def list_api_tokens(user: CurrentUser, container: ContainerDep) -> list[ApiTokenOut]:
    """Your API tokens (never their secrets), revoked ones included."""
    return [ApiTokenOut.model_validate(t) for t in await container.api_tokens.list(user.id)]


@router.delete(
    "/api-tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, InsufficientScope),
)
async def revoke_api_token(token_id: UUID, user: CurrentUser, container: ContainerDep) -> None:
    """Revoke a token: its next request answers 401."""
    await container.api_tokens.revoke(user.id, token_id)


@router.get(
    "/accounts/{account_id}/positions",
    response_model=list[LivePositionOut],
    responses=responses(NotFound, InvalidInput, InsufficientScope, ProviderError),
)
async def positions(
    account_id: UUID,
    principal: PrincipalDep,
    container: ContainerDep,
    live: Annotated[bool, Query(description="true: read the broker now, not the last sync")] = False,
) -> list[LivePositionOut]:
    """The account's positions with realised P&L per symbol by FIFO lots from its trades and
    unrealised P&L against the FIFO cost of what is held, in the account currency."""
    found = await container.live_positions.positions(principal.caller, account_id, live=live)
    return [LivePositionOut.model_validate(p) for p in found]
