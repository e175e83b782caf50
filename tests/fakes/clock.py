"""A virtual clock: rate-limit and backoff waits advance virtual time instead of sleeping.

Concurrent sleepers behave like real ones: time jumps to the *earliest* pending
deadline, so three tasks each waiting 60 s cost 60 virtual seconds, not 180. A
sleeper waits a few real milliseconds before moving time so that other tasks busy
with (real, loopback) I/O get the chance to register earlier deadlines first;
alone in its event loop, it has no one to wait for and moves time at once (a sync
paging through a rate limit sleeps hundreds of times: 3 ms each was most of a
Gate.io test's time).
"""

from __future__ import annotations

import asyncio

EPOCH = 1_760_000_000.0  # 2025-10-09, so reset headers look like real Unix times


class VirtualClock:
    def __init__(self, start: float = EPOCH, *, grace: float = 0.003) -> None:
        self._now = self.start = start
        self._pending: list[float] = []
        self.grace = grace
        self.slept = 0.0  # total virtual seconds requested, for assertions

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward from the test itself (e.g. 'a day later')."""
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        self.slept += seconds
        deadline = self._now + seconds
        self._pending.append(deadline)
        try:
            while self._now < deadline:
                await asyncio.sleep(0 if _alone() else self.grace)
                if self._now < deadline and min(self._pending) >= deadline:
                    self._now = deadline  # we are the earliest sleeper: time moves to us
        finally:
            self._pending.remove(deadline)


def _alone() -> bool:
    """Whether the running task is the only one of its event loop: no other task can be busy
    with I/O before registering an earlier deadline."""
    return len(asyncio.all_tasks()) == 1
