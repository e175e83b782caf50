"""A caller's stream of order status changes (``GET /orders/events``).

``order_events`` is the truth; a note from the feed is only a wake-up. A stream keeps a
cursor (the last event id it sent: UUIDv7, time-ordered) and on each wake-up reads the
user's status events after it, plus the ones just announced (a change committed a moment
late by another process can sort before the cursor). So a reconnect with ``Last-Event-ID``
replays exactly from the table, and a note lost while a listener reconnected is caught up
when it is back (every stream is woken then).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from uuid import UUID

from finsync.application.orders import Caller
from finsync.domain.errors import InsufficientScope
from finsync.domain.ports import OrderFeed, UnitOfWorkFactory
from finsync.domain.trading import TRADE_PREFIX, OrderStatusChange

READY = "ready"  # the first item: subscribed, so later changes cannot be missed
HEARTBEAT = "heartbeat"
DROPPED = "dropped"  # the stream fell behind: the client reconnects with Last-Event-ID
Item = OrderStatusChange | str
SENT_MEMORY = 1024  # event ids remembered to send each change once
PAGE = 500  # changes read at a time
Alive = Callable[[], Awaitable[bool]]  # whether the caller's session or token is still good


async def _always() -> bool:
    return True


class OrderStream:
    def __init__(self, uow: UnitOfWorkFactory, feed: OrderFeed, heartbeat_seconds: float = 15.0) -> None:
        self._uow, self._feed, self._heartbeat = uow, feed, heartbeat_seconds

    @staticmethod
    def scope(caller: Caller) -> frozenset[UUID] | None:
        """The connections whose orders the caller may follow (None: all of the user's). A token
        needs ``read`` (everything) or ``trade:<connection>`` (that connection's orders)."""
        token = caller.token
        if token is None or token.may_read:
            return None
        allowed = frozenset(
            UUID(s.removeprefix(TRADE_PREFIX)) for s in token.scopes if s.startswith(TRADE_PREFIX)
        )
        if not allowed:
            raise InsufficientScope("order events need the scope read or a trade:<connection> scope")
        return allowed

    async def follow(
        self, caller: Caller, last_event_id: UUID | None, alive: Alive = _always
    ) -> AsyncIterator[Item]:
        """READY, then the changes after ``last_event_id`` (none before the call when None),
        then each change as it is committed, HEARTBEAT after a quiet ``heartbeat_seconds``;
        DROPPED (and the end) when the client cannot keep up. The stream ends, sending nothing
        more, once ``alive`` says the caller's session or API token has ended: asked before
        each heartbeat and before reading what woke the stream."""
        connections = self.scope(caller)
        async with self._feed.subscribe(caller.user_id) as inbox:
            cursor = last_event_id
            if cursor is None:
                async with self._uow() as uow:
                    cursor = await uow.trading.last_status_event(caller.user_id)
            sent: deque[UUID] = deque(maxlen=SENT_MEMORY)
            yield READY
            also: set[UUID] = set()
            while True:
                changes = await self._read(caller.user_id, cursor, also, connections)
                for change in changes:
                    if change.event_id not in sent:
                        sent.append(change.event_id)
                        yield change
                    if cursor is None or change.event_id > cursor:
                        cursor = change.event_id
                if len(changes) == PAGE:
                    continue  # a long replay: its next page
                while True:
                    try:
                        notes = await asyncio.wait_for(inbox.next(), self._heartbeat)
                        break
                    except TimeoutError:
                        if not await alive():
                            return
                        yield HEARTBEAT
                if inbox.overflowed:
                    yield DROPPED
                    return
                if not await alive():
                    return
                also = {n.event_id for n in notes if n is not None}

    async def _read(
        self, user_id: UUID, cursor: UUID | None, also: set[UUID], connections: Collection[UUID] | None
    ) -> list[OrderStatusChange]:
        async with self._uow() as uow:
            return await uow.trading.status_changes(user_id, cursor, also, connections, PAGE)
