"""In-process job queue: sync jobs run as asyncio tasks beside the API (embedded default)."""

from __future__ import annotations

import asyncio
from uuid import UUID

import structlog

from finsync.domain.ports import SyncJob

log = structlog.get_logger(__name__)


class InProcessJobQueue:
    def __init__(self, max_concurrent: int = 4) -> None:
        self._job: SyncJob | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_concurrent)

    def bind(self, job: SyncJob) -> None:
        """Set the job body later: the sync service needs the queue, and the queue the service."""
        self._job = job

    async def enqueue_sync(self, run_id: UUID) -> None:
        if self._job is None:
            raise RuntimeError("job queue is not bound to a sync job")
        task = asyncio.create_task(self._run(self._job, run_id), name=f"sync-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: SyncJob, run_id: UUID) -> None:
        async with self._slots:
            try:
                await job(run_id)
            except Exception:
                log.exception("sync_job_crashed", run_id=str(run_id))

    async def drain(self) -> None:
        """Wait for queued jobs (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
