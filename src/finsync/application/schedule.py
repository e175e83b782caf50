"""Scheduled work as plain use cases; periodic tasks (procrastinate's, or the in-process loop)
merely call them.

- ``enqueue_due``: claim due connections, queue one sync each, move ``next_sync_at`` on.
- ``expire_lapsed``: consent or refresh token past ``expires_at`` → ``needs_reauth``.
- ``reap_stale_runs``: jobs of dead workers go back to the queue; runs whose job is gone
  (a crash between commit and enqueue, a job that failed for good) are closed as failed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from finsync.application.webhooks import WebhookEvents, connection_data, run_data
from finsync.domain.entities import SyncRun, utcnow
from finsync.domain.enums import SyncStatus, SyncTrigger
from finsync.domain.jobs import SyncConnection
from finsync.domain.ports import DueConnection, JobQueue, Now, ProviderGateway, UnitOfWorkFactory
from finsync.domain.schedule import Random, SyncSchedule
from finsync.domain.webhooks import EventType

log = structlog.get_logger(__name__)
LOST = "interrupted: its job was lost (a worker or the service stopped); the next sync is scheduled"


@dataclass(frozen=True, slots=True)
class Reaped:
    jobs_retried: int
    runs_failed: int


class Scheduler:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        providers: ProviderGateway,
        jobs: JobQueue,
        clock: Now = utcnow,
        *,
        batch: int = 500,
        grace: timedelta = timedelta(minutes=2),
        rand: Random = random.random,
        events: WebhookEvents | None = None,
    ) -> None:
        self._events = events or WebhookEvents(clock)
        self._uow = uow
        self._providers = providers
        self._jobs = jobs
        self._clock = clock
        self._batch = batch
        self._grace = grace
        self._rand = rand

    def _schedule(self, provider: str) -> SyncSchedule | None:
        info = self._providers.info(provider)
        return None if info is None else info.schedule

    async def enqueue_due(self) -> int:
        """Queue a scheduled sync for every due connection, in batches; how many were queued.
        Each batch is one transaction; its jobs are enqueued one by one after it commits. A
        claim takes one row more than the batch to learn whether another batch is due: exactly
        a full batch due then costs no extra, empty, transaction."""
        queued = 0
        more = True
        while more:
            async with self._uow() as uow:
                now = self._clock()
                due = await uow.connections.claim_due(now, self._batch + 1)
                more = len(due) > self._batch
                due = due[: self._batch]  # the extra row stays due (its lock ends at commit)
                runs, moves = [], []
                schedules: dict[str, SyncSchedule | None] = {}  # one look-up per provider, not row
                for connection in due:
                    if connection.provider not in schedules:
                        schedules[connection.provider] = self._schedule(connection.provider)
                    schedule = schedules[connection.provider]
                    nxt = (
                        None
                        if schedule is None
                        else schedule.next_at(now, connection.sync_interval_minutes, self._rand)
                    )
                    moves.append((connection.id, nxt))
                    if nxt is not None:
                        runs.append(_scheduled_run(connection, now))
                # One write: next_sync_at moved, runs inserted (busy connections keep theirs).
                added = await uow.connections.reschedule_and_queue(moves, runs, claimed_at=now)
                providers = {c.id: c.provider for c in due}
                for run in added:
                    uow.enqueue(
                        SyncConnection(
                            connection_id=run.connection_id,
                            run_id=run.id,
                            provider=providers[run.connection_id],
                        )
                    )
                await uow.commit()
            queued += len(added)
        if queued:
            log.info("scheduled_syncs_queued", count=queued)
        return queued

    async def expire_lapsed(self) -> int:
        """Consent or refresh token past ``expires_at`` → ``needs_reauth``, visibly (was done on
        every GET of a connection; a periodic write keeps reads read-only)."""
        async with self._uow() as uow:
            expired = await uow.connections.expire_lapsed(None, self._clock())
            for connection in expired:
                await self._events.publish(
                    uow,
                    connection.user_id,
                    EventType.CONNECTION_NEEDS_REAUTH,
                    connection_data(connection) | {"reason": connection.last_error},
                )
            await uow.commit()
        if expired:
            log.info("connections_expired", count=len(expired))
        return len(expired)

    async def reap_stale_runs(self, grace: timedelta | None = None) -> Reaped:
        """Retry the jobs of dead workers, then fail runs older than ``grace`` whose job is gone.
        A run is closed only when its job is: a live job (waiting or running) keeps it open."""
        retried = await self._jobs.retry_stalled()
        before = self._clock() - (self._grace if grace is None else grace)
        async with self._uow() as uow:
            stale = await uow.sync_runs.stale(before, self._batch)
        locks = {SyncConnection.lock_of(r.connection_id): r for r in stale}
        alive = await self._jobs.pending(SyncConnection.kind, list(locks)) if locks else set()
        lost = [run for lock, run in locks.items() if lock not in alive]
        failed = 0
        if lost:
            async with self._uow() as uow:
                now = self._clock()
                closed = set(await uow.sync_runs.close_lost([r.id for r in lost], now, LOST))
                for run in (r for r in lost if r.id in closed):  # a failed sync: sync.failed
                    connection = await uow.connections.get(run.connection_id)
                    if connection is None:
                        continue
                    run.status, run.finished_at, run.counts = SyncStatus.FAILED, now, {}
                    run.error, run.error_type = LOST, "interrupted"
                    await self._events.publish(
                        uow, run.user_id, EventType.SYNC_FAILED, run_data(connection, run)
                    )
                await uow.commit()
            failed = len(closed)
        if retried or failed:
            log.warning("stale_work_reaped", jobs_retried=retried, runs_failed=failed)
        return Reaped(jobs_retried=retried, runs_failed=failed)


def _scheduled_run(connection: DueConnection, now: datetime) -> SyncRun:
    return SyncRun(
        user_id=connection.user_id,
        connection_id=connection.id,
        trigger=SyncTrigger.SCHEDULED,
        status=SyncStatus.QUEUED,
        queued_at=now,
        started_at=now,
    )
