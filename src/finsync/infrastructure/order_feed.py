"""Order status changes to the event streams of this process, from whichever process made them.

SQLite (one process per database): the unit of work hands its committed notes to the
``LocalOrderFeed`` directly. PostgreSQL: any process announces a change with ``pg_notify`` in
the transaction that records it (see the trading repository); each API process keeps ONE
dedicated asyncpg connection that LISTENs and fans the notes out to its streams. It is opened
by the first subscriber and reconnects with back-off when dropped; every stream is then told
to look again (``None``), so what was announced while nobody listened is read from the table.
Each stream's inbox is bounded: one that falls behind is dropped, never buffered without end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy.engine import make_url

from finsync.domain.trading import ORDER_STATUS_CHANNEL, StatusNote

log = structlog.get_logger(__name__)


class Subscription:
    """One stream's bounded inbox."""

    def __init__(self, user_id: UUID, size: int) -> None:
        self.user_id = user_id
        self.overflowed = False
        self._queue: asyncio.Queue[StatusNote | None] = asyncio.Queue(maxsize=size)

    def offer(self, note: StatusNote | None) -> bool:
        """False when the inbox is full: the stream is too slow and gets dropped."""
        try:
            self._queue.put_nowait(note)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True

    async def next(self) -> list[StatusNote | None]:
        items = [await self._queue.get()]
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items


class LocalOrderFeed:
    """In-process fan-out by user: what SQLite uses alone and PostgreSQL's listener feeds."""

    def __init__(self, queue_size: int = 256) -> None:
        self._size = queue_size
        self._subs: dict[UUID, set[Subscription]] = {}

    def publish(self, notes: Sequence[StatusNote]) -> None:
        for note in notes:
            for sub in list(self._subs.get(note.user_id, ())):
                if not sub.offer(note):
                    self._drop(sub)
                    log.warning("order_stream_dropped", reason="inbox full", user_id=str(sub.user_id))

    def wake_all(self) -> None:
        """Every stream looks again (notes may have been missed)."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                if not sub.offer(None):
                    self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.user_id]

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: UUID) -> AsyncIterator[Subscription]:
        sub = Subscription(user_id, self._size)
        self._subs.setdefault(user_id, set()).add(sub)
        await self._started()
        try:
            yield sub
        finally:
            self._drop(sub)

    async def _started(self) -> None:
        """Hook: PostgreSQL starts its listener here."""

    async def aclose(self) -> None:
        self._subs.clear()


class PgOrderFeed(LocalOrderFeed):
    """LISTEN on one dedicated connection, reconnecting; notes fan out in process."""

    def __init__(
        self,
        database_url: str,
        queue_size: int = 256,
        *,
        check_seconds: float = 30.0,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__(queue_size)
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._check, self._max_backoff = check_seconds, max_backoff
        self._task: asyncio.Task[None] | None = None
        self.connection: asyncpg.Connection | None = None  # the listener's (tests terminate it)
        self.connected = asyncio.Event()

    async def _started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="order-feed-listener")

    def _on_note(self, connection: object, pid: int, channel: str, payload: str) -> None:
        try:
            note = StatusNote.parse(payload)
        except ValueError:
            log.warning("order_note_unreadable")
            return
        self.publish([note])

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, gone=lost: gone.set())
                await conn.add_listener(ORDER_STATUS_CHANNEL, self._on_note)
                self.connection, backoff = conn, 0.1
                self.connected.set()
                self.wake_all()  # changes made while nobody listened are read from the table
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._check)
                    if not lost.is_set():  # a silently dead socket shows only when used
                        await asyncio.wait_for(conn.execute("SELECT 1"), self._check)
                log.warning("order_listener_lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("order_listener_failed", error=type(exc).__name__)
            finally:
                self.connected.clear()
                self.connection = None
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await super().aclose()


def order_feed(database_url: str, queue_size: int) -> LocalOrderFeed:
    if database_url.startswith("sqlite"):
        return LocalOrderFeed(queue_size)
    return PgOrderFeed(database_url, queue_size)
