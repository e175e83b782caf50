"""Provider rate budgets shared by every process through PostgreSQL (``providers.ratelimit.BucketStore``).

With many workers (and API processes validating keys), a per-process limiter cannot keep a
provider account under its limit: each process would spend the whole budget. Here the
sliding-window log of one budget is a row of ``rate_budgets``; a send is reserved by a
compare-and-set on that row, so every process sees every other's sends.
The window arithmetic is the in-process bucket's, on the callers' clock (system time,
kept in step across machines by NTP). Waiting happens outside any transaction.

The statements run on the pooled connection's asyncpg connection, compiled once: every order
sent reserves a slot here, and through SQLAlchemy's execute each reservation cost about as
much CPU as the rest of finsync's database work for the order.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from finsync.domain.errors import RateLimited
from finsync.infrastructure.db.raw import pooled, prepared
from finsync.providers.ratelimit import Bucket, Clock, LocalBucket, RateLimit

T = TypeVar("T")
CAS_ATTEMPTS = 100


class PgBuckets:
    def __init__(self, engine: AsyncEngine) -> None:
        # Each change is one statement on the driver, outside any transaction: autocommitted,
        # no BEGIN/COMMIT round trips around it.
        self._engine = engine
        self._local: dict[str, asyncio.Lock] = {}  # FIFO among this process's callers of a key

    def bucket(self, key: str, rate: RateLimit) -> Bucket:
        return PgBucket(self._engine, key[:128], rate, self._local.setdefault(key, asyncio.Lock()))


# The row, created empty on the budget's first use, in one statement either way. The outer
# SELECT does not see the CTE's insert (one snapshot), so exactly one of the two answers,
# unless another process created the row after this statement's snapshot: then none does.
_READ = prepared(
    text(
        "WITH created AS (INSERT INTO rate_budgets (key, sent, blocked_until) "
        "VALUES (:key, CAST('[]' AS jsonb), 0) ON CONFLICT DO NOTHING RETURNING sent, blocked_until) "
        "SELECT CAST(sent AS text), blocked_until FROM created "
        "UNION ALL SELECT CAST(sent AS text), blocked_until FROM rate_budgets WHERE key = :key"
    )
)
_READ_AGAIN = prepared(text("SELECT CAST(sent AS text), blocked_until FROM rate_budgets WHERE key = :key"))
_SWAP = prepared(
    text(
        "UPDATE rate_budgets SET sent = CAST(CAST(:new AS text) AS jsonb), blocked_until = :nb "
        "WHERE key = :key AND sent = CAST(CAST(:old AS text) AS jsonb) AND blocked_until = :ob "
        "RETURNING key"
    )
)


def _text(sent: list[float]) -> str:
    """A window's send times as JSON: every reservation writes one and compares one, and
    the standard library took 60 µs for a full window of 200 (orjson: a few)."""
    return orjson.dumps(sent).decode()


async def _run(conn: Any, statement: tuple[str, tuple[str, ...]], values: Mapping[str, Any]) -> list[Any]:
    sql, names = statement
    return list(await conn.fetch(sql, *(values[name] for name in names)))


@dataclass(slots=True)
class PgBucket:
    """One budget's row, changed by compare-and-set: each change is one autocommitted
    ``UPDATE ... WHERE`` the row still holds what this bucket last saw, so no lock is held
    across round trips and no process can overwrite another's sends. A sync makes a bucket per
    budget and uses it for every request: after its first read, a reservation is one round
    trip, unless another process changed the row meanwhile; then the row is read again and
    the change recomputed.

    Settling a send (moving its time to the answer's) rides along with the bucket's next
    change, or ``flush`` when the client closes: a sync's requests follow one another, so a
    request cost two round trips where one does. An answer whose headers make the window
    stricter (the provider counts sends we do not know of) is stored at once."""

    engine: AsyncEngine
    key: str
    rate: RateLimit
    local: asyncio.Lock = field(default_factory=asyncio.Lock)
    seen: tuple[list[float], float] | None = None  # the row as this bucket last read or wrote it
    pending: list[Callable[[LocalBucket], object]] = field(default_factory=list)  # settlements not stored

    async def _read(self, conn: Any) -> tuple[list[float], float]:
        found = await _run(conn, _READ, {"key": self.key})
        if not found:  # created by another process since this statement's snapshot
            found = await _run(conn, _READ_AGAIN, {"key": self.key})
        row = found[0]
        return [float(t) for t in orjson.loads(row[0])], float(row[1])  # compared as stored

    def _window(self) -> LocalBucket:
        """The last seen row with this bucket's unstored settlements applied."""
        assert self.seen is not None
        sent, blocked = self.seen
        window = LocalBucket(self.rate, sent=sorted(sent), blocked_until=blocked)
        for settle in self.pending:
            settle(window)
        return window

    async def _change(self, step: Callable[[LocalBucket], tuple[T, bool]]) -> T:
        """Apply ``step`` to the stored window; it returns its result and whether to store the window."""
        async with pooled(self.engine) as conn:
            fresh = self.seen is None
            for _ in range(CAS_ATTEMPTS):
                if self.seen is None:
                    self.seen, fresh = await self._read(conn), True
                old_sent, old_blocked = self.seen
                window = self._window()
                result, store = step(window)
                if not store and not fresh:  # a decision to wait: make sure it is not on stale data
                    self.seen = None
                    continue
                if not store:
                    return result
                new = (window.sent[-self.rate.limit :], window.blocked_until)
                changed = await _run(
                    conn,
                    _SWAP,
                    {
                        "key": self.key,
                        "new": _text(new[0]),
                        "nb": new[1],
                        "old": _text(old_sent),
                        "ob": old_blocked,
                    },
                )
                if changed:
                    self.seen = new
                    self.pending.clear()
                    return result
                self.seen = None  # another process changed the row: read it again
        # Never seen in practice (each try loses only to a change that succeeded): give up like
        # a full budget, so the job queue tries again later instead of spinning here.
        raise RateLimited(f"rate budget {self.key} is contended", retry_after=1.0)

    async def acquire(self, clock: Clock, max_wait: float, label: str) -> float:
        def reserve(window: LocalBucket) -> tuple[tuple[float, float], bool]:
            now = clock.now()
            wait = window.wait_time(now)
            if wait <= 0:
                bisect.insort(window.sent, now)
            return (wait, now), wait <= 0

        async with self.local:
            while True:
                wait, now = await self._change(reserve)
                if wait <= 0:
                    return now
                if wait > max_wait:  # let the job queue retry later rather than hold a worker
                    raise RateLimited(f"{label} rate limit reached", retry_after=wait)
                await clock.sleep(wait)

    async def try_acquire(self, clock: Clock) -> float | None:
        def reserve(window: LocalBucket) -> tuple[float | None, bool]:
            now = clock.now()
            if window.wait_time(now) > 0:
                return None, False
            bisect.insort(window.sent, now)
            return now, True

        if self.local.locked():  # another caller of this process is at the row, or waits its turn
            return None
        async with self.local:
            return await self._change(reserve)

    async def answered(self, stamp: float, now: float, remaining: int | None, reset: float | None) -> None:
        def settle(window: LocalBucket) -> None:
            window.settle(stamp, now)

        self.pending.append(settle)
        if remaining is None or reset is None or self.seen is None:
            return
        if not self._window().tightened_by(remaining, reset, now):
            return  # the provider knows of no sends we do not: stored with the next change

        def observe(window: LocalBucket) -> tuple[None, bool]:
            window.observe(remaining, reset, now)
            return None, True

        await self._change(observe)

    async def flush(self) -> None:
        """Store settlements still pending (the client is closing)."""
        if self.pending:
            await self._change(lambda window: (None, True))

    async def give_back(self, stamp: float) -> None:
        def release(window: LocalBucket) -> tuple[None, bool]:
            window.release(stamp)
            return None, True

        await self._change(release)

    async def block_until(self, until: float) -> None:
        def block(window: LocalBucket) -> tuple[None, bool]:
            window.blocked_until = max(window.blocked_until, until)
            return None, True

        await self._change(block)
