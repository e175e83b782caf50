"""procrastinate (PostgreSQL) adapter of the ``JobQueue`` port: the only module that imports it.

Every ``JobType`` of the registry becomes a procrastinate task of the same name, with the
type's lock (one at a time across machines), queueing lock (at most one waiting) and retry
policy; every ``Periodic`` becomes a periodic task (deferred once per tick for the whole
deployment, whichever workers run). procrastinate talks psycopg 3 through its own small
pool beside SQLAlchemy's asyncpg one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from procrastinate import App, PsycopgConnector, RetryDecision
from procrastinate import jobs as pjobs
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.retry import BaseRetryStrategy
from sqlalchemy.engine import make_url

from finsync.domain.entities import utcnow
from finsync.domain.jobs import Job, JobRegistry, JobType, Periodic, RetryPolicy, decode, encode
from finsync.infrastructure.jobs.caps import ConcurrencyCaps

log = structlog.get_logger(__name__)
PERIODIC_PRIORITY = 100  # procrastinate runs higher priorities first; jobs default to 0


def psycopg_dsn(database_url: str) -> str:
    """SQLAlchemy's ``postgresql+asyncpg://`` URL as a libpq connection string."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class _Retry(BaseRetryStrategy):
    """A ``RetryPolicy`` as procrastinate's retry strategy (``job.attempts`` counts tries so far)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def get_retry_decision(self, *, exception: BaseException, job: pjobs.Job) -> RetryDecision | None:
        now = utcnow()
        delay = self._policy.delay(job.attempts, exception, now)
        return None if delay is None else RetryDecision(retry_at=now + timedelta(seconds=delay))


class ProcrastinateJobQueue:
    def __init__(
        self,
        registry: JobRegistry,
        *,
        database_url: str,
        caps: ConcurrencyCaps,
        pool_size: int = 3,
        heartbeat_seconds: float = 10.0,
        stall_seconds: float = 30.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self._registry = registry
        self._poll = poll_seconds
        self._caps = caps
        self._heartbeat, self._stall = heartbeat_seconds, stall_seconds
        connector = PsycopgConnector(
            conninfo=psycopg_dsn(database_url),
            min_size=1,
            max_size=pool_size,
            # No session-wide plan_cache_mode: the job fetch function carries force_custom_plan
            # itself (migration 0016), so the defer's insert triggers keep their cached plans.
        )
        self.app = App(connector=connector)
        self._opened = False
        self._opening = asyncio.Lock()
        self._tasks_registered = self._periodic_registered = False

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened:
                await self.app.open_async()
                self._opened = True

    def _deferrer(self, job: Job, schedule_at: datetime | None = None) -> pjobs.JobDeferrer:
        kind = self._registry.of(job)
        return self.app.configure_task(
            name=kind.kind,
            lock=kind.lock(job) if kind.lock else None,
            queueing_lock=kind.queueing_lock(job) if kind.queueing_lock else None,
            schedule_at=schedule_at,
        )

    async def enqueue(self, job: Job, schedule_at: datetime | None = None) -> bool:
        await self._open()
        try:
            await self._deferrer(job, schedule_at).defer_async(**encode(job))
        except AlreadyEnqueued:
            return False  # one already waits: it will do this job's work
        return True

    async def enqueue_many(self, jobs: Sequence[Job]) -> int:
        """One round trip for the lot (a scheduler tick's thousand jobs took a thousand, each
        three statements). A queueing-lock clash refuses the whole batch (nothing of it is
        stored), so then each job goes on its own and a clash means "already queued" for
        that job only. A tick rarely clashes: it queues only connections with no active run."""
        if len(jobs) < 2:
            return sum([await self.enqueue(job) for job in jobs])
        await self._open()
        try:
            await self.app.job_manager.batch_defer_jobs_async(
                [self._deferrer(job).make_new_job(**encode(job)) for job in jobs]
            )
        except AlreadyEnqueued:
            slots = asyncio.Semaphore(4)

            async def one(job: Job) -> bool:
                async with slots:
                    return await self.enqueue(job)

            return sum(await asyncio.gather(*(one(job) for job in jobs)))
        return len(jobs)

    async def pending(self, kind: str, locks: Sequence[str]) -> set[str]:
        await self._open()
        rows = await self.app.connector.execute_query_all_async(
            "SELECT DISTINCT lock FROM procrastinate_jobs WHERE task_name = %(kind)s "
            "AND lock = ANY(%(locks)s) AND status IN ('todo', 'doing')",
            kind=kind,
            locks=list(locks),
        )
        return {row["lock"] for row in rows}

    async def retry_stalled(self) -> int:
        """procrastinate records heartbeats but never requeues a dead worker's jobs itself. A
        worker pruned by ``prune_stalled_workers`` leaves its jobs with no worker; those are
        stalled too (the query includes them)."""
        await self._open()
        manager = self.app.job_manager
        retried = 0
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=self._stall):
            try:
                await manager.retry_job(job)
                retried += 1
            except UniqueViolation:  # a newer job of its queueing lock waits: that one does its work
                await self._supersede(job)
            except Exception:  # finished (or retried by another reaper) meanwhile
                log.info("stalled_job_not_retried", job_id=job.id)
        return retried

    async def _supersede(self, job: pjobs.Job) -> None:
        """End a stalled job as failed when it cannot go back to the queue because a newer one
        of its queueing lock waits there (one waiting job per connection). Left ``doing``, it
        would hold its lock for ever and the newer job could never start; failed, its run is
        closed by the reaper and the newer job runs."""
        try:
            await self.app.job_manager.finish_job(job, pjobs.Status.FAILED, delete_job=False)
            log.warning("stalled_job_superseded", job_id=job.id, queueing_lock=job.queueing_lock)
        except Exception:  # finished meanwhile
            log.info("stalled_job_not_retried", job_id=job.id)

    def register(self, periodic: bool) -> None:
        """Make every job type (and with ``periodic`` every periodic task) a procrastinate task."""
        if not self._tasks_registered:
            for kind in self._registry:
                self.app.task(name=kind.kind, retry=_Retry(kind.retry))(self._body(kind))
            self._tasks_registered = True
        if periodic and not self._periodic_registered:
            for task in self._registry.periodic:
                name = f"periodic.{task.name}"
                # Ahead of every waiting sync: a tick stuck behind a queue of syncs would delay
                # every due connection by that queue (due → started).
                body = self.app.task(name=name, queueing_lock=name, priority=PERIODIC_PRIORITY)(_tick(task))
                self.app.periodic(cron=task.cron, periodic_id=task.name)(body)
            self._periodic_registered = True

    def _body(self, kind: JobType[Any]) -> Any:
        caps = self._caps

        async def body(**args: Any) -> None:
            job = decode(kind.job, args)
            key = kind.concurrency_key(job) if kind.concurrency_key else None
            if not caps.try_acquire(key):  # give the slot back to other providers' jobs
                # A copy of the job, a second or two later, and this one ends: a procrastinate
                # retry would count the bounce as a failed attempt, and a job that bounced a few
                # times would get no retry after a real failure. (Its queueing lock lets the copy
                # in, this job being no longer waiting; if another copy waits, it does the work.)
                await self.enqueue(job, utcnow() + timedelta(seconds=1 + random.random()))
                log.info("job_bounced_off_concurrency_cap", kind=kind.kind, key=key)
                return
            try:
                await kind.handler(job)
            finally:
                await caps.release(key)

        body.__name__ = body.__qualname__ = kind.kind
        return body

    def _options(self, **overrides: Any) -> dict[str, Any]:
        return {
            "update_heartbeat_interval": self._heartbeat,
            "stalled_worker_timeout": self._stall,
            # New jobs wake workers at once (LISTEN/NOTIFY); retried ones only by this poll.
            "fetch_job_polling_interval": self._poll,
            "abort_job_polling_interval": max(self._poll, 5.0),
            "install_signal_handlers": False,
        } | overrides

    async def run_worker(self, concurrency: int, *, periodic: bool = True, signals: bool = False) -> None:
        """A worker until stopped (SIGTERM/SIGINT with ``signals``, else cancellation)."""
        self.register(periodic)
        await self._open()
        await self.app.run_worker_async(
            **self._options(concurrency=concurrency, install_signal_handlers=signals, name="finsync")
        )

    async def drain(self, limit_seconds: float = 60.0) -> None:
        """Run every job that can run now in this process, until none is left (the test helper
        equivalent of the in-process queue's ``drain``); periodic tasks are not run, nor
        deferred: a worker's periodic deferrer defers each registered task's latest tick by the
        real clock (up to ten minutes late), which is not the drain's to add (a test of a
        virtual day got the real day's market-data refresh when run between 16:30 and 16:40)."""
        self.register(periodic=False)
        await self._open()
        deadline = time.monotonic() + limit_seconds
        registered, self.app.periodic_registry.periodic_tasks = self.app.periodic_registry.periodic_tasks, {}
        try:
            while await self._runnable():
                if time.monotonic() > deadline:
                    raise TimeoutError("jobs still queued after draining")
                await self.app.run_worker_async(
                    **self._options(wait=False, concurrency=4, listen_notify=False, name="drain")
                )
        finally:
            self.app.periodic_registry.periodic_tasks = registered

    async def _runnable(self) -> bool:
        row = await self.app.connector.execute_query_one_async(
            "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status = 'todo' "
            "AND (scheduled_at IS NULL OR scheduled_at <= now())) AS any"
        )
        return bool(row["any"])

    def start(self) -> None:
        """Nothing runs in an API process on PostgreSQL: workers do (``finsync worker``)."""

    async def aclose(self) -> None:
        if self._opened:
            await self.app.close_async()
            self._opened = False


def _tick(task: Periodic) -> Any:
    async def tick(timestamp: int) -> None:
        await task.call(datetime.fromtimestamp(timestamp, UTC))

    tick.__name__ = tick.__qualname__ = task.name
    return tick
