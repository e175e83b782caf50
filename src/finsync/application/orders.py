"""Placing, following and cancelling orders: never one sent twice, every one accounted for.

The order row is committed (``pending_submit``, one per user and idempotency key: a
database constraint) before the network call, and only the request that inserted it sends.
A send that failed ambiguously (timeout after sending, reset, 5xx, unreadable answer)
leaves the order ``unknown``; reconciliation then asks the broker (Alpaca by our
``client_order_id``, Trading 212 by matching open and recent orders) and resends only when
the order is proven absent, at most once (``claim_resend`` is an atomic 1 → 2). Every
request, broker answer and status change is an ``OrderEvent``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, fields, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog

from finsync.application.trading import OrderPorts
from finsync.domain.entities import Account, Connection, utcnow
from finsync.domain.errors import (
    AuthenticationFailed,
    BadData,
    Conflict,
    FinsyncError,
    InsufficientScope,
    InvalidInput,
    LiveTradingDisabled,
    NotFound,
    ProviderError,
    RateLimited,
    TradingDisabled,
    TradingHalted,
    Unavailable,
    UnsupportedOrder,
)
from finsync.domain.ports import (
    CredentialCipher,
    Now,
    OrderDesk,
    OrderPort,
    Page,
    PageRequest,
    ProviderGateway,
    SendSlot,
    UnitOfWork,
    UnitOfWorkFactory,
)
from finsync.domain.trading import (
    ApiToken,
    BrokerOrder,
    Expected,
    Order,
    OrderContext,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    Placement,
    TradingSettings,
)

log = structlog.get_logger(__name__)
# A pending_submit order older than this lost its sender (a crash): reconciled by others.
# Longer than any send can take, rate-limit queueing included (ProviderHttp.max_wait).
SUBMIT_LEASE = timedelta(minutes=20)
MAX_KEY = 255
AMBIGUOUS = (Unavailable, BadData)  # the broker may have placed the order
POLLER = "poller"  # the actor of what the periodic follow-up learns
TRADING_OFF = "trading is not enabled on this connection (PATCH its trading settings)"
TOKEN_UNKNOWN = "this API token is unknown or revoked"
KEPT_CONTEXTS = 1024  # callers and accounts whose last order's context is kept (per process)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who acts: the user (logged in) or one of their API tokens."""

    user_id: UUID
    token: ApiToken | None = None

    @property
    def actor(self) -> str:
        return "user" if self.token is None else f"token:{self.token.id}"

    def check_trade(self, connection_id: UUID) -> None:
        if self.token is not None and not self.token.may_trade(connection_id):
            raise InsufficientScope(f"this API token lacks the scope trade:{connection_id}")

    def check_read(self, connection_id: UUID) -> None:
        if self.token is not None and not (self.token.may_read or self.token.may_trade(connection_id)):
            raise InsufficientScope(f"this API token lacks the scope read (or trade:{connection_id})")


@dataclass(frozen=True, slots=True)
class Bearer:
    """An API token not looked up yet (its SHA-256): the order's first read checks it, so a
    bot's order pays one round trip for who it is and what it trades, not two."""

    token_hash: str


class _NotKept(Exception):
    """A kept context did not place the order: decide again from a fresh read."""


@dataclass(frozen=True, slots=True)
class Placed:
    order: Order
    created: bool  # False: the idempotency key's order already existed (nothing was sent)


def _json(b: BrokerOrder) -> list[dict[str, Any]]:
    return [{"quantity": f.quantity, "price": f.price, "at": f.at} for f in b.fills]


def check_key(key: str | None) -> str:
    if key is None:
        raise InvalidInput("orders need an Idempotency-Key header (a retry with it is never sent twice)")
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters")
    return key


class OrderService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        providers: ProviderGateway,
        cipher: CredentialCipher,
        *,
        live_trading: bool,
        clock: Now = utcnow,
        desk: OrderDesk | None = None,
        pages: UnitOfWorkFactory | None = None,
        reads: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow, self._providers, self._cipher = uow, providers, cipher
        self._reads = reads or uow  # a request's reads (autocommit on PostgreSQL)
        self._pages = pages or self._reads  # a plain page (bounded: see Container.bounded_read_uow)
        self._live, self._clock = live_trading, clock
        self._ports = OrderPorts(providers, cipher)
        self._desk = desk  # None (a unit of work made for a test): every order takes _place_locked
        # The last order's context per (token digest or user, account): the next skips its read.
        self._kept: OrderedDict[tuple[str | UUID, UUID], OrderContext] = OrderedDict()
        self._follow_failures: dict[UUID, str] = {}  # connection -> the error its last follow-up met

    async def aclose(self) -> None:
        """Close the kept order ports (their HTTP clients)."""
        await self._ports.aclose()

    # -- placing ---------------------------------------------------------------------------

    async def place(
        self,
        caller: Caller | Bearer,
        account_id: UUID,
        request: OrderRequest,
        key: str | None,
        digest: str,
        client_order_id: str | None = None,
    ) -> Placed:
        """Check everything that needs no network, store the order, then send it once: one
        read (caller, account, connection, settings, the key's order), one insert committed
        before the send (under the settings row's lock, only if the settings are still those
        checked), one write after it; the read and the insert share one pooled connection,
        given back before the send. Anything unusual — the settings changed meanwhile —
        takes ``_place_locked``, which does it all inside one locked transaction.

        A caller's next order on the same account skips the read: the context of its last
        order is kept, and the insert places the order only while that context still holds
        (user active, token unrevoked, the same account, connection and credentials, the same
        settings). Whatever else happens on that path (a refusal, the key already used, a
        change) is decided again from a fresh read, so it answers exactly as the read would."""
        if self._desk is None:
            caller = await self._resolve(caller)
            return await self._place_locked(caller, account_id, request, key, digest, client_order_id)
        kept_as = _kept_as(caller, account_id)
        if (kept := self._kept.get(kept_as)) is not None:
            try:
                async with AsyncExitStack() as held:
                    await held.enter_async_context(self._desk.held())  # one checkout: the insert
                    args = (caller, account_id, request, key, digest, client_order_id)
                    return await self._place(held, *args, kept=kept)
            except _NotKept:
                self._kept.pop(kept_as, None)
        async with AsyncExitStack() as held:
            await held.enter_async_context(self._desk.held())  # one checkout: the read, the insert
            placed = await self._place(held, caller, account_id, request, key, digest, client_order_id)
        return placed

    async def _read(
        self, caller: Caller | Bearer, account_id: UUID, key: str | None, symbol: str
    ) -> OrderContext:
        assert self._desk is not None
        ctx = await self._desk.context(
            account_id,
            key or "",
            symbol,
            token_hash=caller.token_hash if isinstance(caller, Bearer) else None,
            user_id=None if isinstance(caller, Bearer) else caller.user_id,
        )
        if ctx is None:
            raise AuthenticationFailed(
                TOKEN_UNKNOWN if isinstance(caller, Bearer) else "this session has ended; please log in again"
            )
        if ctx.account is None or ctx.connection is None:
            raise NotFound("account")
        return ctx

    async def _place(
        self,
        held: AsyncExitStack,
        caller: Caller | Bearer,
        account_id: UUID,
        request: OrderRequest,
        key: str | None,
        digest: str,
        client_order_id: str | None,
        kept: OrderContext | None = None,
    ) -> Placed:
        """``kept``: the caller's context kept from an earlier order, instead of a read;
        anything but a placed order then raises ``_NotKept`` (decided again from a read)."""
        assert self._desk is not None
        ctx = kept if kept is not None else await self._read(caller, account_id, key, request.symbol)
        assert ctx.account is not None
        assert ctx.connection is not None
        if isinstance(caller, Bearer):
            caller = Caller(ctx.user_id, ctx.token)
        async with self._ports.lease(ctx.connection) as adapter:  # calls nothing
            try:
                key = check_key(key)
                caller.check_trade(ctx.connection.id)
                self._check_broker(adapter, ctx.connection, request)
                if ctx.stored is not None:
                    return self._replay(ctx.stored, digest)
                settings = ctx.settings
                if settings is None:
                    raise TradingDisabled(TRADING_OFF)
                order = self._new_order(
                    caller, ctx.account, ctx.connection, request, key, digest, client_order_id
                )
                order.estimated_notional = estimate = request.estimated_notional(
                    ctx.last_price if _money_limits(settings) else None
                )
                check = None
                if _daily_limits(settings):  # today's orders are counted under the lock

                    def check(today: tuple[int, Decimal]) -> None:
                        settings.check(request, estimate, today)
                else:
                    settings.check(request, estimate, (0, Decimal(0)))
                event = self._event(order, "request", caller.actor, _request_data(order))
                # The send's slot on the broker's rate budget is reserved while the order is
                # stored (two round trips at once); nothing is sent before the insert commits.
                slot = asyncio.create_task(adapter.reserve_send(request))
                placed: Placement | None = None
                try:
                    placed = await self._desk.place(order, event, settings, check, kept)
                finally:
                    try:
                        await held.aclose()  # the connection goes back to the pool before the send
                    finally:
                        await asyncio.wait([slot])  # at most one round trip: it never queues
                        if placed is not Placement.PLACED:
                            await _release(slot)
            except FinsyncError:
                if kept is not None:
                    raise _NotKept from None
                raise
            if placed is not Placement.PLACED and kept is not None:
                raise _NotKept
            if placed is Placement.TAKEN:  # the same key, concurrently: theirs sends
                async with self._uow() as uow:
                    stored = await uow.trading.order_by_key(caller.user_id, key)
                if stored is None:
                    raise Conflict("an order with this Idempotency-Key was just being placed; retry")
                return self._replay(stored, digest)
            if placed is Placement.CHANGED:  # the owner changed the settings meanwhile
                return await self._place_locked(caller, account_id, request, key, digest, client_order_id)
            if kept is None and not _money_limits(settings):  # a money limit needs the last price
                self._keep(_kept_as(caller, account_id), ctx)
            await self._submit(adapter, order, caller.actor, slot)
        return Placed(order, True)

    def _keep(self, kept_as: tuple[str | UUID, UUID], ctx: OrderContext) -> None:
        self._kept[kept_as] = replace(ctx, stored=None, last_price=None)
        self._kept.move_to_end(kept_as)
        while len(self._kept) > KEPT_CONTEXTS:
            self._kept.popitem(last=False)

    async def _resolve(self, caller: Caller | Bearer) -> Caller:
        if isinstance(caller, Caller):
            return caller
        async with self._uow() as uow:
            found = await uow.api_tokens.by_hash(caller.token_hash)
        if found is None:
            raise AuthenticationFailed(TOKEN_UNKNOWN)
        return Caller(found[1].id, found[0])

    def _check_broker(self, adapter: OrderPort, connection: Connection, request: OrderRequest) -> None:
        """What the broker cannot take, and live orders on a server that does not allow them."""
        if problem := adapter.order_problem(request):
            raise UnsupportedOrder(problem)
        self._check_live(connection)

    def _check_live(self, connection: Connection) -> None:
        if connection.environment == "live" and not self._live:
            raise LiveTradingDisabled(
                "live trading is disabled on this server (FINSYNC_LIVE_TRADING is not 'enabled'); "
                "demo and paper connections can trade once their owner enables it"
            )

    def _new_order(
        self,
        caller: Caller,
        account: Account,
        connection: Connection,
        request: OrderRequest,
        key: str,
        digest: str,
        client_order_id: str | None,
    ) -> Order:
        now = self._clock()
        return Order(
            user_id=caller.user_id,
            connection_id=connection.id,
            account_id=account.id,
            idempotency_key=key,
            request_digest=digest,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            currency=account.currency,
            created_by=caller.actor,
            quantity=request.quantity,
            notional=request.notional,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            client_order_id=client_order_id,
            submitted_at=now,
            created_at=now,
            updated_at=now,
        )

    async def _place_locked(
        self,
        caller: Caller,
        account_id: UUID,
        request: OrderRequest,
        key: str | None,
        digest: str,
        client_order_id: str | None = None,
    ) -> Placed:
        """Everything in one transaction under the settings row's lock (the general path:
        no order desk, or the settings changed between the first read and the insert)."""
        async with AsyncExitStack() as stack:
            async with self._uow() as uow:
                found = await uow.trading.account_to_trade(account_id, caller.user_id)
                if found is None:
                    raise NotFound("account")
                account, connection = found
                key = check_key(key)
                caller.check_trade(connection.id)
                adapter = await stack.enter_async_context(self._ports.lease(connection))  # calls nothing
                self._check_broker(adapter, connection, request)
                order = self._new_order(caller, account, connection, request, key, digest, client_order_id)
                now = order.created_at
                # The settings row's lock serialises the connection's orders: daily limits hold.
                settings = await uow.trading.settings(connection.id, lock=True)
                if (stored := await uow.trading.order_by_key(caller.user_id, key)) is not None:
                    return self._replay(stored, digest)
                if settings is None:
                    raise TradingDisabled(TRADING_OFF)
                # The last price is read only when a money limit needs it.
                known = None
                if _money_limits(settings):
                    known = await self._last_price(uow, caller.user_id, account.id, request.symbol)
                estimate = request.estimated_notional(known)
                midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
                # Today's orders are read only when a daily limit needs them (they grow all day).
                today = (0, Decimal(0))
                if _daily_limits(settings):
                    today = await uow.trading.placed_since(connection.id, midnight)
                settings.check(request, estimate, today)
                order.estimated_notional = estimate
                if not await uow.trading.add_order(order):  # the same key, concurrently: theirs sends
                    stored = await uow.trading.order_by_key(caller.user_id, key)
                    if stored is None:
                        raise Conflict("an order with this Idempotency-Key was just being placed; retry")
                    return self._replay(stored, digest)
                await uow.trading.add_events(
                    self._event(order, "request", caller.actor, _request_data(order))
                )
                await uow.commit()
            await self._submit(adapter, order, caller.actor)
            return Placed(order, True)

    @staticmethod
    def _replay(order: Order, digest: str) -> Placed:
        if order.request_digest != digest:
            raise InvalidInput("this Idempotency-Key was already used for a different order")
        return Placed(order, False)

    @staticmethod
    async def _last_price(uow: Any, user_id: UUID, account_id: UUID, symbol: str) -> Decimal | None:
        """The symbol's price at the last sync of the account's holdings, if it holds it."""
        page = await uow.holdings.find(user_id, account_id, PageRequest(limit=500))
        for holding in page.items:
            if holding.symbol == symbol and holding.current_price is not None:
                return Decimal(holding.current_price)
        return None

    async def _submit(
        self, adapter: OrderPort, order: Order, actor: str, slot: asyncio.Task[SendSlot | None] | None = None
    ) -> None:
        """One send of a stored order; its outcome decides the next status. ``slot``: its
        reservation on the rate budget (done)."""
        try:
            answer = await adapter.place_order(order.request(), str(order.id), _reserved(slot))
        except AMBIGUOUS as exc:
            await self._record(
                order, OrderStatus.UNKNOWN, actor, "broker_error", {"error": exc.detail}, exc.detail
            )
            await self._reconcile(adapter, order, actor)
        except RateLimited as exc:  # refused before sending: nothing reached the broker
            await self._record(
                order, OrderStatus.REJECTED, actor, "broker_error", {"error": exc.detail}, exc.detail
            )
        except ProviderError as exc:  # the broker answered no (funds, market closed, key)
            if order.submit_attempts > 1 and await self._found_after_refusal(adapter, order, actor):
                return  # a resend refused as a duplicate (Alpaca): the first arrived after all
            await self._record(
                order, OrderStatus.REJECTED, actor, "broker_answer", {"error": exc.detail}, exc.detail
            )
        else:
            await self._apply(order, answer, actor, "broker_answer")

    async def _found_after_refusal(self, adapter: OrderPort, order: Order, actor: str) -> bool:
        """After a refused resend, look once more: a first send that reached the broker late
        makes the resend a duplicate (Alpaca refuses a repeated client_order_id)."""
        try:
            candidates = await adapter.find_orders(order.request(), str(order.id), order.submitted_at)
        except ProviderError:
            return False
        async with self._uow() as uow:
            taken = await uow.trading.taken_broker_ids(order.connection_id)
        found = next((c for c in candidates if c.broker_order_id not in taken), None)
        if found is None:
            return False
        await self._apply(order, found, actor, "reconcile")
        return True

    async def _reconcile(self, adapter: OrderPort, order: Order, actor: str, *, resend: bool = True) -> None:
        """Find the order at the broker; resend only when it is proven absent, at most once,
        and only while its connection may still trade (``resend=False``: only look)."""
        try:
            candidates = await adapter.find_orders(order.request(), str(order.id), order.submitted_at)
        except ProviderError as exc:  # cannot tell yet: stays unknown, reconciled on the next read
            await self._note(order, actor, "reconcile", {"error": exc.detail})
            return
        async with self._uow() as uow:
            taken = await uow.trading.taken_broker_ids(order.connection_id)
        found = next((c for c in candidates if c.broker_order_id not in taken), None)
        if found is not None:
            try:
                await self._apply(order, found, actor, "reconcile")
            except Conflict:  # another order adopted it meanwhile: look again next time
                await self._note(order, actor, "reconcile", {"error": "candidate taken concurrently"})
            return
        if not resend:
            return
        if order.submit_attempts >= 2:
            reason = "the broker has no such order after two sends"
            await self._record(order, OrderStatus.REJECTED, actor, "reconcile", {"found": None}, reason)
            return
        now = self._clock()
        async with self._uow() as uow:
            refusal = await self._resend_refusal(uow, order)
            if refusal is None:
                if not await uow.trading.claim_resend(order.id, now, now - SUBMIT_LEASE):
                    # found and recorded meanwhile, or resent by another process
                    if (stored := await uow.trading.order(order.id)) is not None:
                        _adopt(order, stored)
                    return
                order.submit_attempts, order.submitted_at = 2, now
                order.status, order.updated_at = OrderStatus.PENDING_SUBMIT, now
                await uow.trading.add_events(self._event(order, "resend", actor, {"proven_absent": True}))
                await uow.commit()
        if refusal is not None:
            data = {"found": None, "not_resent": refusal}
            await self._record(order, OrderStatus.REJECTED, actor, "reconcile", data, refusal)
            return
        await self._submit(adapter, order, actor)

    async def _resend_refusal(self, uow: UnitOfWork, order: Order) -> str | None:
        """Why a proven-absent order may not be sent again now: a resend is a new send, so the
        switches a first send obeys (enabled, halted, live trading) hold for it too."""
        settings = await uow.trading.settings(order.connection_id)
        connection = await uow.connections.get(order.connection_id)
        if connection is None:
            return "not resent: its connection was deleted"
        try:
            if settings is None:
                raise TradingDisabled(TRADING_OFF)
            settings.check_switches()
            self._check_live(connection)
        except (TradingDisabled, TradingHalted, LiveTradingDisabled) as exc:
            return f"not resent: {exc.detail}"
        return None

    # -- recording -------------------------------------------------------------------------

    def _event(self, order: Order, kind: str, actor: str, data: dict[str, Any]) -> OrderEvent:
        return OrderEvent(
            user_id=order.user_id, order_id=order.id, kind=kind, actor=actor, data=data, at=self._clock()
        )

    async def _note(self, order: Order, actor: str, kind: str, data: dict[str, Any]) -> None:
        async with self._uow() as uow:
            await uow.trading.add_events(self._event(order, kind, actor, data))
            await uow.commit()

    async def _record(
        self,
        order: Order,
        status: OrderStatus,
        actor: str,
        kind: str,
        data: dict[str, Any],
        reason: str | None,
    ) -> None:
        before = order.status
        order.status, order.reason, order.updated_at = status, reason, self._clock()
        await store(self._uow, order, before, self._event(order, kind, actor, data), desk=self._desk)

    async def _apply(self, order: Order, answer: BrokerOrder, actor: str, kind: str) -> bool:
        before, filled_before = order.status, order.filled_quantity
        order.broker_order_id = answer.broker_order_id
        order.status, order.filled_quantity = answer.status, answer.filled_quantity
        order.average_price, order.fills = answer.average_price, _json(answer)
        order.reason = answer.reason if answer.status is OrderStatus.REJECTED else None
        order.updated_at = self._clock()
        event = self._event(order, kind, actor, {"order": answer.raw})
        return await store(self._uow, order, before, event, filled_before, desk=self._desk)

    # -- reading and cancelling ------------------------------------------------------------

    async def _load(self, caller: Caller, order_id: UUID) -> tuple[Order, Connection | None]:
        async with self._uow() as uow:
            order = await uow.trading.order(order_id, caller.user_id)
            connection = None if order is None else await uow.connections.get(order.connection_id)
        if order is None:
            raise NotFound("order")
        return order, connection

    async def get(self, caller: Caller, order_id: UUID, *, refresh: bool = True) -> Order:
        """The order, refreshed from the broker while it is not final (an unknown one is
        reconciled; one whose sender died is too, once its lease ran out)."""
        order, connection = await self._load(caller, order_id)
        caller.check_read(order.connection_id)
        if not refresh or order.status.final or connection is None:
            return order
        stale = order.submitted_at < self._clock() - SUBMIT_LEASE
        if order.status is OrderStatus.PENDING_SUBMIT and not stale:
            return order  # its sender is still at work
        async with self._ports.lease(connection) as adapter:
            try:
                if order.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING_SUBMIT):
                    await self._reconcile(adapter, order, caller.actor)
                elif order.broker_order_id is not None:
                    answer = await adapter.get_order(order.broker_order_id)
                    if answer.status is not order.status or answer.filled_quantity != order.filled_quantity:
                        await self._apply(order, answer, caller.actor, "broker_answer")
            except ProviderError as exc:  # the stored state stands; the read does not fail
                log.warning("order_refresh_failed", order_id=str(order.id), error=exc.code)
        return order

    async def events(self, caller: Caller, order_id: UUID) -> list[OrderEvent]:
        order, _ = await self._load(caller, order_id)
        caller.check_read(order.connection_id)
        async with self._uow() as uow:
            return await uow.trading.events(order.id)

    async def list(
        self, caller: Caller, page: PageRequest, account_id: UUID | None, open_only: bool
    ) -> Page[Order]:
        if caller.token is not None and not caller.token.may_read:
            raise InsufficientScope("listing orders needs the scope read")
        # Only a plain page is bounded: a filter is applied row by row to the user's orders.
        reads = self._pages if account_id is None and not open_only else self._reads
        async with reads() as uow:
            # Another user's account is unknown here too, as in every other list's filter.
            if account_id is not None and await uow.accounts.get(account_id, caller.user_id) is None:
                raise NotFound("account")
            return await uow.trading.orders(caller.user_id, page, account_id, open_only)

    async def follow_open(self, limit: int = 500, lookups: int = 2) -> int:
        """Periodic (worker; in process on SQLite): follow every order not final at its broker,
        so status changes reach the event streams though nobody reads the order. Per connection
        one open-orders call (Trading 212: 1 per 5 s), then at most ``lookups`` reads of orders
        that left that list (Trading 212 answers those from its history: 6 a minute); the rest
        wait for the next run. Unknown orders, and those whose sender died, are reconciled.
        Answers how many orders changed."""
        async with self._uow() as uow:
            groups: dict[UUID, list[Order]] = {}
            for order in await uow.trading.unsettled_orders(limit):
                groups.setdefault(order.connection_id, []).append(order)
            connections = [await uow.connections.get(cid) for cid in groups]
        changed = 0
        for gone in self._follow_failures.keys() - groups.keys():  # settled or deleted since
            del self._follow_failures[gone]
        for connection in connections:
            # One waiting for its user is not called every poll with credentials the broker
            # refuses; it is followed once back.
            if connection is None or not connection.status.reachable:
                continue
            try:
                changed += await self._follow(connection, groups[connection.id], lookups)
            except (ProviderError, InvalidInput) as exc:
                # Once per change, not every poll: a provider removed from the registry fails
                # the same way until it is back.
                if self._follow_failures.get(connection.id) != exc.code:
                    log.warning("order_follow_failed", connection_id=str(connection.id), error=exc.code)
                self._follow_failures[connection.id] = exc.code
            else:
                if self._follow_failures.pop(connection.id, None):
                    log.info("order_follow_recovered", connection_id=str(connection.id))
        return changed

    async def _follow(self, connection: Connection, group: Sequence[Order], lookups: int) -> int:
        changed = 0
        async with self._ports.lease(connection) as adapter:  # the kept client, as orders use
            listed: dict[str, BrokerOrder] = {}
            if any(o.status.open for o in group):
                listed = {b.broker_order_id: b for b in await adapter.open_orders()}
            for order in group:
                stale = order.submitted_at < self._clock() - SUBMIT_LEASE
                lost = order.status is OrderStatus.PENDING_SUBMIT and stale  # its sender died
                if order.status is OrderStatus.UNKNOWN or lost:
                    await self._reconcile(adapter, order, POLLER)
                    continue
                if not order.status.open or order.broker_order_id is None:
                    continue
                answer = listed.get(order.broker_order_id)
                if answer is None:  # no longer open: finished (or unknown to this list)
                    if lookups <= 0:
                        continue
                    lookups -= 1
                    answer = await adapter.get_order(order.broker_order_id)
                if answer.status is not order.status or answer.filled_quantity != order.filled_quantity:
                    changed += await self._apply(order, answer, POLLER, "broker_answer")
        return changed

    async def cancel(self, caller: Caller, order_id: UUID) -> Order:
        order, connection = await self._load(caller, order_id)
        caller.check_trade(order.connection_id)
        if order.status.final:
            raise Conflict(f"the order is already {order.status.value}")
        if connection is None:
            raise Conflict("the order's connection was deleted")
        lease = self._clock() - SUBMIT_LEASE
        sending = order.status is OrderStatus.PENDING_SUBMIT and order.submitted_at >= lease
        if order.broker_order_id is None and sending:  # its sender is at work: never a second send
            raise Conflict("the order is being sent to the broker; cancel it once it is placed (retry)")
        async with self._ports.lease(connection) as adapter:
            if order.broker_order_id is None:  # look for it, never send it: a cancel sends nothing
                await self._reconcile(adapter, order, caller.actor, resend=False)
            if order.broker_order_id is None or order.status.final:
                if order.status.final:
                    return order
                raise Conflict("the order is not at the broker yet (its send is being settled); retry")
            await cancel_at_broker(self._uow, adapter, order, caller.actor, self._clock, self._desk)
        return order


async def cancel_at_broker(
    uow: UnitOfWorkFactory,
    adapter: OrderPort,
    order: Order,
    actor: str,
    clock: Now,
    desk: OrderDesk | None = None,
) -> None:
    """Ask the broker to cancel, then read the order back: a fill may have won the race."""
    assert order.broker_order_id is not None
    refused: ProviderError | None = None
    try:
        await adapter.cancel_order(order.broker_order_id)
    except RateLimited:
        raise
    except ProviderError as exc:  # e.g. already filled: the read below tells
        refused = exc
    answer = await adapter.get_order(order.broker_order_id)
    before, filled_before = order.status, order.filled_quantity
    order.status, order.filled_quantity = answer.status, answer.filled_quantity
    order.average_price, order.fills, order.updated_at = answer.average_price, _json(answer), clock()
    data: dict[str, Any] = {"order": answer.raw, "refused": refused.detail if refused else None}
    event = OrderEvent(
        user_id=order.user_id, order_id=order.id, kind="cancel", actor=actor, data=data, at=clock()
    )
    await store(uow, order, before, event, filled_before, desk=desk)
    if refused is not None and not order.status.final:
        raise refused


async def store(
    uow: UnitOfWorkFactory,
    order: Order,
    before: OrderStatus,
    event: OrderEvent,
    filled_before: Decimal | None = None,
    *,
    desk: OrderDesk | None = None,
) -> bool:
    """Save the order with what happened (and its status change, when there is one, or a fill
    that left the status as it was): one write (one statement through ``desk``). A ``status``
    event reaches the event streams.

    A status change is written only while the stored order still has the status and fill it
    was computed from (compare-and-set): when a read and the poller learn the same change at
    once, one records it and its event; the other writes nothing, and ``order`` becomes the
    stored one, so its caller reports what was recorded. Answers whether this write was it."""
    events = [event]
    filled = filled_before is not None and filled_before != order.filled_quantity
    expect = None
    if before is not order.status or filled:
        change = {"from": before, "to": order.status, "filled_quantity": order.filled_quantity}
        events.append(OrderEvent(user_id=order.user_id, order_id=order.id, kind="status", actor=event.actor,
                                 data=change, at=event.at))  # fmt: skip
        expect = Expected(before, order.filled_quantity if filled_before is None else filled_before)
    if desk is not None:
        saved = await desk.record(order, events, expect)
    else:
        async with uow() as u:
            saved = await u.trading.save_order(order, expect)
            if saved:
                await u.trading.add_events(*events)
                await u.commit()
    if not saved:
        async with uow() as u:
            stored = await u.trading.order(order.id)
        if stored is not None:
            _adopt(order, stored)
        log.info("order_change_already_recorded", order_id=str(order.id), status=order.status.value)
    return saved


def _reserved(slot: asyncio.Task[SendSlot | None] | None) -> SendSlot | None:
    """The slot reserved for the send, if the reservation worked; one that failed only means
    the send takes its own, as any request does (and meets the same failure, if it lasts)."""
    if slot is None or slot.cancelled():
        return None
    if (failure := slot.exception()) is not None:
        log.warning("rate_slot_not_reserved", error=type(failure).__name__)
        return None
    return slot.result()


def _kept_as(caller: Caller | Bearer, account_id: UUID) -> tuple[str | UUID, UUID]:
    """Whose kept context: an API token's digest (however it arrives), else the user's id."""
    if isinstance(caller, Bearer):
        return caller.token_hash, account_id
    return (caller.token.token_hash if caller.token else caller.user_id), account_id


async def _release(slot: asyncio.Task[SendSlot | None]) -> None:
    """Give back a reserved send that will not be made (a failed give-back only leaves the
    budget a little stricter until the window forgets it)."""
    if slot.cancelled() or slot.exception() is not None or (reserved := slot.result()) is None:
        return
    try:
        await reserved.release()
    except Exception:
        log.warning("rate_slot_not_released", exc_info=True)


def _adopt(order: Order, stored: Order) -> None:
    """``order`` becomes the stored one (its caller then reports what was recorded)."""
    for f in fields(Order):
        setattr(order, f.name, getattr(stored, f.name))


def _money_limits(settings: TradingSettings) -> bool:
    return settings.max_order_notional is not None or settings.max_notional_per_day is not None


def _daily_limits(settings: TradingSettings) -> bool:
    return settings.max_orders_per_day is not None or settings.max_notional_per_day is not None


def _request_data(order: Order) -> dict[str, Any]:
    fields = ("symbol", "side", "type", "quantity", "notional", "limit_price", "stop_price",
              "time_in_force", "client_order_id", "estimated_notional")  # fmt: skip
    return {name: getattr(order, name) for name in fields}
