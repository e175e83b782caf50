"""The test suite's virtual clock (``tests/fakes/clock.py``): waits cost virtual time, not real."""

from __future__ import annotations

import asyncio
import time

from tests.fakes.clock import VirtualClock


async def test_a_lone_sleeper_moves_time_at_once() -> None:
    """Alone in its loop, nothing can register an earlier deadline: 500 sleeps (a sync paced
    by a rate limit) take no grace each."""
    clock = VirtualClock(grace=0.05)
    started, real = clock.now(), time.perf_counter()
    for _ in range(500):
        await clock.sleep(2.0)
    assert clock.now() - started == 1000.0
    assert time.perf_counter() - real < 5.0  # 500 graces of 50 ms would be 25 s


async def test_concurrent_sleepers_wake_in_deadline_order_and_share_the_time() -> None:
    """Three tasks waiting 60 s cost 60 virtual seconds, not 180, and one that starts its wait
    after some real I/O (here a real 10 ms) still wakes first when its deadline is earlier."""
    clock = VirtualClock(grace=0.05)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float, after: float = 0.0) -> None:
        await asyncio.sleep(after)  # busy with real I/O before its wait
        await clock.sleep(seconds)
        woke.append(name)

    started = clock.now()
    await asyncio.gather(sleeper("a", 60), sleeper("b", 60), sleeper("c", 60), sleeper("late", 30, 0.01))
    assert woke == ["late", "a", "b", "c"]
    assert clock.now() - started == 60.0
