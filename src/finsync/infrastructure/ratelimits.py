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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from finsync.domain.errors import RateLimited
from finsync.infrastructure.db.tables import RateBudgetRow
from finsync.providers.ratelimit import Bucket, Clock, LocalBucket, RateLimit

budgets = RateBudgetRow.__table__  # type: ignore[attr-defined]


class PgBuckets:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._local: dict[str, asyncio.Lock] = {}  # FIFO among this process's callers of a key

    def bucket(self, key: str, rate: RateLimit) -> Bucket:
        return PgBucket(self._engine, key[:128], rate, self._local.setdefault(key, asyncio.Lock()))


@dataclass(slots=True)
class PgBucket:
    engine: AsyncEngine
    key: str
    rate: RateLimit
    local: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _window(self, conn: AsyncConnection) -> LocalBucket:
        """The budget's row, locked. Every provider request reads it twice (reserve, then settle):
        the row exists but for a budget's first use, so it is read first and created only when
        missing (one round trip where an insert-then-select took two)."""
        locked = select(budgets).where(budgets.c.key == self.key).with_for_update()
        row = (await conn.execute(locked)).first()
        if row is None:
            await conn.execute(
                insert(budgets).values(key=self.key, sent=[], blocked_until=0.0).on_conflict_do_nothing()
            )
            row = (await conn.execute(locked)).one()
        return LocalBucket(self.rate, sent=sorted(row.sent), blocked_until=float(row.blocked_until))

    async def _save(self, conn: AsyncConnection, window: LocalBucket) -> None:
        values: dict[str, Any] = {
            "sent": window.sent[-self.rate.limit :],
            "blocked_until": window.blocked_until,
        }
        await conn.execute(update(budgets).where(budgets.c.key == self.key).values(values))

    async def acquire(self, clock: Clock, max_wait: float, label: str) -> float:
        async with self.local:
            while True:
                async with self.engine.begin() as conn:
                    window = await self._window(conn)
                    now = clock.now()
                    wait = window.wait_time(now)
                    if wait <= 0:
                        bisect.insort(window.sent, now)
                        await self._save(conn, window)
                        return now
                if wait > max_wait:  # let the job queue retry later rather than hold a worker
                    raise RateLimited(f"{label} rate limit reached", retry_after=wait)
                await clock.sleep(wait)

    async def answered(self, stamp: float, now: float, remaining: int | None, reset: float | None) -> None:
        async with self.engine.begin() as conn:
            window = await self._window(conn)
            window.settle(stamp, now)
            window.observe(remaining, reset, now)
            await self._save(conn, window)

    async def give_back(self, stamp: float) -> None:
        async with self.engine.begin() as conn:
            window = await self._window(conn)
            window.release(stamp)
            await self._save(conn, window)

    async def block_until(self, until: float) -> None:
        async with self.engine.begin() as conn:
            window = await self._window(conn)
            window.blocked_until = max(window.blocked_until, until)
            await self._save(conn, window)
