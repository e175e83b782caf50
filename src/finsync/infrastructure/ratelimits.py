"""Provider rate budgets shared by every process through PostgreSQL (``providers.ratelimit.BucketStore``).

With many workers (and API processes validating keys), a per-process limiter cannot keep a
provider account under its limit: each process would spend the whole budget. Here the
sliding-window log of one budget is a row of ``rate_budgets``; a send is reserved in a short
transaction holding that row (``FOR UPDATE``), so every process sees every other's sends.
The window arithmetic is the in-process bucket's, on the callers' clock (system time,
kept in step across machines by NTP). Waiting happens outside any transaction.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from finsync.domain.errors import RateLimited
from finsync.infrastructure.db.tables import RateBudgetRow
from finsync.providers.ratelimit import Bucket, Clock, LocalBucket, RateLimit

budgets = RateBudgetRow.__table__  # type: ignore[attr-defined]
T = TypeVar("T")
CAS_ATTEMPTS = 100


class PgBuckets:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._local: dict[str, asyncio.Lock] = {}  # FIFO among this process's callers of a key

    def bucket(self, key: str, rate: RateLimit) -> Bucket:
        return PgBucket(self._engine, key[:128], rate, self._local.setdefault(key, asyncio.Lock()))


@dataclass(slots=True)
class PgBucket:
    """One budget's row, changed by compare-and-set: each change is one autocommitted
    ``UPDATE ... WHERE`` the row still holds what this bucket last saw, so no lock is held
    across round trips and no process can overwrite another's sends. A sync makes a bucket per
    budget and uses it for every request: after its first read, a reservation or settlement is
    one round trip (it took a transaction of four), unless another process changed the row
    meanwhile; then the row is read again and the change recomputed."""

    engine: AsyncEngine
    key: str
    rate: RateLimit
    local: asyncio.Lock = field(default_factory=asyncio.Lock)
    seen: tuple[list[float], float] | None = None  # the row as this bucket last read or wrote it

    async def _read(self, conn: AsyncConnection) -> tuple[list[float], float]:
        stmt = select(budgets.c.sent, budgets.c.blocked_until).where(budgets.c.key == self.key)
        row = (await conn.execute(stmt)).first()
        if row is None:  # the budget's first use; a concurrent first use leaves one row
            await conn.execute(
                insert(budgets).values(key=self.key, sent=[], blocked_until=0.0).on_conflict_do_nothing()
            )
            row = (await conn.execute(stmt)).one()
        return [float(t) for t in row.sent], float(row.blocked_until)  # compared as stored

    async def _change(self, step: Callable[[LocalBucket], tuple[T, bool]]) -> T:
        """Apply ``step`` to the stored window; it returns its result and whether to store the window."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            fresh = self.seen is None
            for _ in range(CAS_ATTEMPTS):
                if self.seen is None:
                    self.seen, fresh = await self._read(conn), True
                old_sent, old_blocked = self.seen
                window = LocalBucket(self.rate, sent=sorted(old_sent), blocked_until=old_blocked)
                result, store = step(window)
                if not store and not fresh:  # a decision to wait: make sure it is not on stale data
                    self.seen = None
                    continue
                if not store:
                    return result
                new = (window.sent[-self.rate.limit :], window.blocked_until)
                changed = await conn.execute(
                    text(
                        "UPDATE rate_budgets SET sent = CAST(CAST(:new AS text) AS jsonb), "
                        "blocked_until = :nb WHERE key = :key "
                        "AND sent = CAST(CAST(:old AS text) AS jsonb) AND blocked_until = :ob"
                    ),
                    {
                        "key": self.key,
                        "new": json.dumps(new[0]),
                        "nb": new[1],
                        "old": json.dumps(old_sent),
                        "ob": old_blocked,
                    },
                )
                if changed.rowcount == 1:
                    self.seen = new
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

    async def answered(self, stamp: float, now: float, remaining: int | None, reset: float | None) -> None:
        def settle(window: LocalBucket) -> tuple[None, bool]:
            window.settle(stamp, now)
            window.observe(remaining, reset, now)
            return None, True

        await self._change(settle)

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
