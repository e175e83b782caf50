"""In-process job queue (SQLite, the embedded default): jobs run as asyncio tasks of the
serving process, with the same registry, locks, caps, retry policies and periodic use cases
as the procrastinate workers. One process per database, so a lock is an ``asyncio.Lock``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from croniter import croniter  # type: ignore[import-untyped]

from finsync.domain.entities import utcnow
from finsync.domain.jobs import Job, JobRegistry, JobType, Periodic
from finsync.infrastructure.jobs.caps import ConcurrencyCaps

log = structlog.get_logger(__name__)


class InProcessJobQueue:
    def __init__(
        self,
        registry: JobRegistry,
        *,
        concurrency: int = 4,
        caps: ConcurrencyCaps | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``clock`` and ``sleep`` time the periodic use cases (tests pass virtual ones)."""
        self._registry = registry
        self._clock, self._pause = clock, sleep
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._caps = caps or ConcurrencyCaps(concurrency)
        self._waiting: set[str] = set()  # queueing locks of jobs not started yet
        self._alive: Counter[tuple[str, str]] = Counter()  # (kind, lock) of waiting or running jobs
        self._mutexes: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sleeping: set[asyncio.Task[None]] = set()  # waiting for a retry: not drained
        self._loops: list[asyncio.Task[None]] = []

    async def enqueue(self, job: Job) -> bool:
        kind = self._registry.of(job)
        queueing = kind.queueing_lock(job) if kind.queueing_lock else None
        if queueing is not None:
            if queueing in self._waiting:
                return False  # already queued
            self._waiting.add(queueing)
        lock = kind.lock(job) if kind.lock else None
        if lock is not None:
            self._alive[(kind.kind, lock)] += 1
        task = asyncio.create_task(self._run(kind, job, queueing, lock), name=f"job-{kind.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def enqueue_many(self, jobs: Sequence[Job]) -> int:
        return sum([await self.enqueue(job) for job in jobs])

    async def pending(self, kind: str, locks: Sequence[str]) -> set[str]:
        return {lock for lock in locks if self._alive[(kind, lock)] > 0}

    async def retry_stalled(self) -> int:
        return 0  # a job of this process dies with it; the reaper fails its run

    async def _run(self, kind: JobType[Any], job: Job, queueing: str | None, lock: str | None) -> None:
        attempt = 0
        try:
            while True:
                async with self._mutex(lock), self._caps.hold(self._key(kind, job)), self._slots:
                    if queueing is not None:
                        self._waiting.discard(queueing)
                    try:
                        await kind.handler(job)
                        return
                    except Exception as exc:
                        delay = kind.retry.delay(attempt, exc, utcnow())
                        if delay is None:
                            log.exception("job_failed", kind=kind.kind, attempts=attempt + 1)
                            return
                        log.warning(
                            "job_retry", kind=kind.kind, attempt=attempt + 1, delay=delay, error=repr(exc)
                        )
                attempt += 1
                await self._sleep(delay)
        finally:
            if lock is not None:
                self._alive[(kind.kind, lock)] -= 1

    async def _sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sleeping.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._sleeping.discard(task)

    @staticmethod
    def _key(kind: JobType[Any], job: Job) -> str | None:
        return kind.concurrency_key(job) if kind.concurrency_key else None

    def _mutex(self, lock: str | None) -> asyncio.Lock:
        if lock is None:
            return asyncio.Lock()
        return self._mutexes.setdefault(lock, asyncio.Lock())

    def start(self) -> None:
        """Run the periodic use cases (scheduler tick, expiry, reaper) in this process."""
        for periodic in self._registry.periodic:
            self._loops.append(asyncio.create_task(self._every(periodic), name=f"periodic-{periodic.name}"))

    async def run_worker(self, concurrency: int, *, periodic: bool = True, signals: bool = False) -> None:
        """This process already runs its jobs; with ``periodic`` it also runs the scheduled work."""
        if periodic and not self._loops:
            self.start()
        await asyncio.Event().wait()

    async def _every(self, periodic: Periodic) -> None:
        """Interval tasks run at once, then every ``seconds``; cron tasks at their next time (a
        time missed while no process ran is not caught up, as with procrastinate's periodic
        deferrer beyond its delay limit)."""
        while True:
            at = self._clock()
            if periodic.seconds is None:
                at = croniter(periodic.cron, at).get_next(datetime)
                while (left := (at - self._clock()).total_seconds()) > 0:
                    await self._pause(left)
            try:
                await periodic.call(at)
            except Exception:
                log.exception("periodic_task_failed", task=periodic.name)
            if periodic.seconds is not None:
                await self._pause(periodic.seconds)

    async def drain(self) -> None:
        """Wait until every job that can run now has finished (tests, shutdown); jobs waiting
        for a retry later are not waited for."""
        while busy := self._tasks - self._sleeping:
            await asyncio.wait(busy, timeout=0.05)  # a task may start sleeping meanwhile

    async def aclose(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        await self.drain()
        for task in list(self._sleeping):
            task.cancel()
