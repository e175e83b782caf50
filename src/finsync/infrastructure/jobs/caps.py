"""Per-process concurrency caps by a job's concurrency key (the provider, for syncs).

One provider's outage (every request hanging until its timeout) must not fill every worker
slot: at most ``limit`` jobs of one key run at once in this process, the rest wait (in
process) or go back to the queue for a moment (procrastinate), leaving the slots to others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager


class ConcurrencyCaps:
    def __init__(self, limit: int, overrides: Mapping[str, int] | None = None) -> None:
        self._limit = max(1, limit)
        self._overrides = dict(overrides or {})
        self._running: dict[str, int] = {}
        self._freed = asyncio.Condition()

    def limit(self, key: str) -> int:
        return max(1, self._overrides.get(key, self._limit))

    def try_acquire(self, key: str | None) -> bool:
        if key is None:
            return True
        if self._running.get(key, 0) >= self.limit(key):
            return False
        self._running[key] = self._running.get(key, 0) + 1
        return True

    async def release(self, key: str | None) -> None:
        if key is None:
            return
        self._running[key] -= 1
        async with self._freed:
            self._freed.notify_all()

    @asynccontextmanager
    async def hold(self, key: str | None) -> AsyncIterator[None]:
        """Wait for a free place under the key's cap, then hold it."""
        async with self._freed:
            await self._freed.wait_for(lambda: self.try_acquire(key))
        try:
            yield
        finally:
            await self.release(key)
