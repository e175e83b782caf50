"""The in-process job queue (SQLite, `make run`): registered job types, caps, retries, schedules."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from finsync.api.app import create_app
from finsync.domain.entities import utcnow
from finsync.domain.enums import SyncStatus, SyncTrigger
from finsync.domain.jobs import JobRegistry, JobType, RetryPolicy
from finsync.domain.ports import PageRequest
from finsync.infrastructure.jobs import ConcurrencyCaps, InProcessJobQueue
from finsync.providers.registry import ProviderRegistry, builtin_providers
from tests.conftest import empty_database, make_settings
from tests.factories import account, seed_connection, seed_user
from tests.fakes.memory import MemoryProviders, memory_provider_metadata

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Deliver:
    """A job type of the kind a later feature adds (e.g. a webhook delivery)."""

    kind: ClassVar[str] = "deliver"
    target: str
    name: str


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.running: set[str] = set()
        self.overlaps: list[set[str]] = []
        self.done: list[str] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.release = asyncio.Event()

    async def handle(self, job: Deliver) -> None:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            raise ConnectionError("target refused")
        self.running.add(job.name)
        self.overlaps.append(set(self.running))
        await self.release.wait()
        self.running.discard(job.name)
        self.done.append(job.name)


def _queue(recorder: Recorder, retry: RetryPolicy = RetryPolicy(max_attempts=1)) -> InProcessJobQueue:
    registry = JobRegistry()
    registry.register(
        JobType(
            job=Deliver,
            handler=recorder.handle,
            retry=retry,
            queueing_lock=lambda j: f"deliver:{j.name}",
            concurrency_key=lambda j: j.target,
        )
    )
    return InProcessJobQueue(registry, concurrency=4, caps=ConcurrencyCaps(1))


async def test_a_target_s_cap_leaves_slots_to_others() -> None:
    recorder = Recorder()
    queue = _queue(recorder)
    for name, target in (("a1", "slow-bank"), ("a2", "slow-bank"), ("b1", "broker")):
        assert await queue.enqueue(Deliver(target=target, name=name))
    assert not await queue.enqueue(Deliver(target="slow-bank", name="a2"))  # already queued
    await asyncio.sleep(0.05)
    assert recorder.running == {"a1", "b1"}  # a2 waits for its provider, not for a slot
    recorder.release.set()
    await queue.drain()
    assert sorted(recorder.done) == ["a1", "a2", "b1"]
    assert all(not {"a1", "a2"} <= seen for seen in recorder.overlaps)


async def test_a_failing_job_is_retried_by_its_policy() -> None:
    recorder = Recorder(fail_first=2)
    recorder.release.set()
    queue = _queue(recorder, RetryPolicy(max_attempts=3, base_seconds=0.01, cap_seconds=0.02))
    await queue.enqueue(Deliver(target="hook", name="x"))
    for _ in range(100):
        if recorder.done:
            break
        await asyncio.sleep(0.01)
    assert (recorder.attempts, recorder.done) == (3, ["x"])
    await queue.aclose()


async def test_make_run_syncs_on_schedule_with_nothing_else(tmp_path: Path, sqlite_database: str) -> None:
    """SQLite: the serving process runs the scheduler tick and the sync jobs itself."""
    bank = MemoryProviders(accounts=[account("cur")])
    registry = ProviderRegistry([*builtin_providers(), memory_provider_metadata(bank)])
    settings = make_settings(sqlite_database, tmp_path, scheduler_tick_seconds=1)
    app = create_app(settings, registry=registry)
    async with app.router.lifespan_context(app):
        container = app.state.container
        user = await seed_user(container, "scheduled@example.com")
        conn = await seed_connection(container, user)
        async with container.uow() as uow:
            stored = await uow.connections.get(conn.id)
            assert stored is not None
            stored.next_sync_at = utcnow() - timedelta(seconds=1)
            await uow.connections.save(stored)
            await uow.commit()
        for _ in range(100):
            async with container.uow() as uow:
                runs = (await uow.sync_runs.find(user.id, conn.id, PageRequest())).items
            if runs and runs[0].status is SyncStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.1)
        assert [(r.trigger, r.status) for r in runs] == [(SyncTrigger.SCHEDULED, SyncStatus.SUCCEEDED)]
        await empty_database(container)
