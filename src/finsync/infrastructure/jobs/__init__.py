"""Job queue adapters: in-process asyncio (SQLite) and procrastinate workers (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from finsync.domain.jobs import Job, JobRegistry
from finsync.infrastructure.jobs.caps import ConcurrencyCaps
from finsync.infrastructure.jobs.inprocess import InProcessJobQueue


class JobBackend(Protocol):
    """The ``JobQueue`` port plus what the process that hosts it needs."""

    async def enqueue(self, job: Job) -> bool: ...
    async def enqueue_many(self, jobs: Sequence[Job]) -> int: ...
    async def pending(self, kind: str, locks: Sequence[str]) -> set[str]: ...
    async def retry_stalled(self) -> int: ...
    async def drain(self) -> None:
        """Run what can run now until nothing is left (tests, shutdown)."""
        ...

    def start(self) -> None:
        """Start the periodic use cases where this process is the worker (SQLite)."""
        ...

    async def run_worker(self, concurrency: int, *, periodic: bool = True, signals: bool = False) -> None:
        """Run jobs (and with ``periodic`` the scheduled use cases) until stopped."""
        ...

    async def aclose(self) -> None: ...


def job_backend(
    registry: JobRegistry,
    database_url: str,
    *,
    concurrency: int,
    caps: ConcurrencyCaps,
    pool_size: int = 3,
    heartbeat_seconds: float = 10.0,
    stall_seconds: float = 30.0,
    poll_seconds: float = 1.0,
) -> JobBackend:
    if database_url.startswith("sqlite"):
        return InProcessJobQueue(registry, concurrency=concurrency, caps=caps)
    from finsync.infrastructure.jobs.procrastinate_queue import ProcrastinateJobQueue

    return ProcrastinateJobQueue(
        registry,
        database_url=database_url,
        caps=caps,
        pool_size=pool_size,
        heartbeat_seconds=heartbeat_seconds,
        stall_seconds=stall_seconds,
        poll_seconds=poll_seconds,
    )


__all__ = ["ConcurrencyCaps", "InProcessJobQueue", "JobBackend", "job_backend"]
