"""The procrastinate adapter on PostgreSQL, in the test process: per-provider concurrency caps
and the batch hand-over (a queueing-lock clash refuses a batch whole; each job then goes on its own)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import asyncpg
import pytest

from finsync.domain.jobs import JobRegistry, JobType, Periodic, RetryPolicy
from finsync.infrastructure.jobs import ConcurrencyCaps
from finsync.infrastructure.jobs.procrastinate_queue import ProcrastinateJobQueue
from tests.conftest import JOB_TABLES

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Deliver:
    kind: ClassVar[str] = "capped_delivery"
    target: str
    name: str


class Recorder:
    """Holds every job until released; records what ran at once, per target."""

    def __init__(self) -> None:
        self.running: dict[str, str] = {}  # name -> target
        self.most: Counter[str] = Counter()  # target -> most jobs of it running at once
        self.done: list[str] = []
        self.release = asyncio.Event()

    async def handle(self, job: Deliver) -> None:
        self.running[job.name] = job.target
        at_once = Counter(self.running.values())
        self.most[job.target] = max(self.most[job.target], at_once[job.target])
        try:
            await self.release.wait()
        finally:
            del self.running[job.name]
        self.done.append(job.name)


async def eventually(probe: Callable[[], Awaitable[bool] | bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found if isinstance(found, bool) else await found:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


@pytest.fixture
async def jobs_db(pg_database: str | None) -> AsyncIterator[str]:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    dsn = pg_database.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {', '.join(JOB_TABLES)} CASCADE")
        yield pg_database
    finally:
        await conn.execute(f"TRUNCATE {', '.join(JOB_TABLES)} CASCADE")
        await conn.close()


def _queue(recorder: Recorder, database_url: str) -> ProcrastinateJobQueue:
    registry = JobRegistry()
    registry.register(
        JobType(
            job=Deliver,
            handler=recorder.handle,
            queueing_lock=lambda j: f"deliver:{j.name}",
            concurrency_key=lambda j: f"provider:{j.target}",
        )
    )
    return ProcrastinateJobQueue(
        registry, database_url=database_url, caps=ConcurrencyCaps(1), poll_seconds=0.1
    )


async def _jobs(queue: ProcrastinateJobQueue) -> dict[str, dict[str, Any]]:
    rows = await queue.app.connector.execute_query_all_async(
        "SELECT args->>'name' AS name, status::text AS status, attempts FROM procrastinate_jobs"
    )
    return {row["name"]: row for row in rows}


async def test_a_provider_at_its_cap_leaves_worker_slots_to_other_providers(jobs_db: str) -> None:
    recorder = Recorder()
    queue = _queue(recorder, jobs_db)
    batch = [Deliver("slow-bank", "a1"), Deliver("slow-bank", "a2"), Deliver("broker", "b1")]
    assert await queue.enqueue_many(batch) == 3
    worker = asyncio.create_task(queue.run_worker(3, periodic=False))
    try:
        # One slow-bank job runs; the other was refused by the cap and went back to the queue
        # as a fresh copy (it spent no slot and no attempt), rather than waiting inside a slot.
        await eventually(lambda: Counter(recorder.running.values()) == {"slow-bank": 1, "broker": 1})
        held = next(n for n, t in recorder.running.items() if t == "slow-bank")
        refused = "a2" if held == "a1" else "a1"

        async def requeued() -> bool:
            return any(r["status"] == "todo" and r["attempts"] == 0 for r in await _rows(queue, refused))

        await eventually(requeued)
        # The third slot is free: another provider's job starts while both others are held.
        assert await queue.enqueue(Deliver("exchange", "x1"))
        await eventually(lambda: set(recorder.running) == {held, "b1", "x1"})
        recorder.release.set()
        await eventually(lambda: len(recorder.done) == 4)
    finally:
        recorder.release.set()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await queue.aclose()
    assert sorted(recorder.done) == ["a1", "a2", "b1", "x1"]
    assert recorder.most == {"slow-bank": 1, "broker": 1, "exchange": 1}  # the cap held, per provider
    finished = await _jobs_after(jobs_db)
    assert finished == {"a1": "succeeded", "a2": "succeeded", "b1": "succeeded", "x1": "succeeded"}


async def _rows(queue: ProcrastinateJobQueue, name: str) -> list[dict[str, Any]]:
    """Every job of that name (a bounced job's copies included), oldest first."""
    return list(
        await queue.app.connector.execute_query_all_async(
            "SELECT status::text AS status, attempts FROM procrastinate_jobs "
            "WHERE args->>'name' = %(name)s ORDER BY id",
            name=name,
        )
    )


async def test_bounces_off_the_cap_leave_a_job_its_retries(jobs_db: str) -> None:
    """A bounce is not a failed attempt: a job that bounced off its provider's cap several times
    still has every retry of its policy when it then fails for real (a database blip)."""
    release, failed = asyncio.Event(), set[str]()

    async def handle(job: Deliver) -> None:
        if job.name == "hog":
            await release.wait()
        elif job.name not in failed:
            failed.add(job.name)
            raise RuntimeError("a database blip")

    registry = JobRegistry()
    registry.register(
        JobType(
            job=Deliver,
            handler=handle,
            retry=RetryPolicy(max_attempts=2, base_seconds=0.1, cap_seconds=0.2),
            concurrency_key=lambda job: job.target,
        )
    )
    queue = ProcrastinateJobQueue(registry, database_url=jobs_db, caps=ConcurrencyCaps(1), poll_seconds=0.1)
    assert await queue.enqueue(Deliver("bank", "hog"))
    worker = asyncio.create_task(queue.run_worker(2, periodic=False))
    try:
        await eventually(lambda: True)
        assert await queue.enqueue(Deliver("bank", "victim"))

        async def bounced_thrice() -> bool:
            return len(await _rows(queue, "victim")) >= 4  # the job and three copies

        await eventually(bounced_thrice, 30)
        release.set()

        async def done() -> bool:
            return (await _rows(queue, "victim"))[-1]["status"] == "succeeded"

        await eventually(done, 30)
        rows = await _rows(queue, "victim")
    finally:
        release.set()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await queue.aclose()
    assert len(rows) >= 4
    assert {r["status"] for r in rows} == {"succeeded"}  # the bounced ones ended, the last one ran
    assert failed == {"victim"}  # one real failure, retried under a policy of two attempts


async def _jobs_after(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT args->>'name' AS name, status::text AS status FROM procrastinate_jobs"
        )
    finally:
        await conn.close()
    return {row["name"]: row["status"] for row in rows}


async def test_a_batch_with_a_job_already_queued_queues_the_others(jobs_db: str) -> None:
    recorder = Recorder()
    queue = _queue(recorder, jobs_db)
    try:
        assert await queue.enqueue(Deliver("broker", "b1"))
        # The batch clashes on b1's queueing lock: refused whole, then each on its own.
        batch = [Deliver("broker", "b0"), Deliver("broker", "b1"), Deliver("bank", "c1")]
        assert await queue.enqueue_many(batch) == 2
        assert await queue.enqueue_many([]) == 0
    finally:
        await queue.aclose()
    assert await _jobs_after(jobs_db) == {"b0": "todo", "b1": "todo", "c1": "todo"}


async def test_the_job_fetch_and_only_it_is_planned_for_the_jobs_actually_queued(jobs_db: str) -> None:
    """procrastinate's fetch is a PL/pgSQL function; its cached generic plan checked every
    waiting job's lock before picking one (~300 ms of server CPU per job with 2,000 queued), so
    the function plans each call (migration 0016). The queue's connections keep PostgreSQL's
    default: forcing fresh plans on them made deferring a tick's jobs plan procrastinate's insert
    triggers once per job (about twice the hand-over's cost)."""
    queue = _queue(Recorder(), jobs_db)
    try:
        await queue.enqueue(Deliver("broker", "b1"))  # opens the pool
        fetch = await queue.app.connector.execute_query_all_async(
            "SELECT proconfig FROM pg_proc WHERE proname = 'procrastinate_fetch_job_v2'"
        )
        assert [row["proconfig"] for row in fetch] == [["plan_cache_mode=force_custom_plan"]]
        session = await queue.app.connector.execute_query_one_async(
            "SELECT current_setting('plan_cache_mode') AS mode"
        )
        assert session["mode"] == "auto"
    finally:
        await queue.aclose()


async def test_draining_never_defers_a_periodic_tick(jobs_db: str) -> None:
    """``drain`` runs what is queued. A worker's periodic deferrer would also defer each periodic
    task's latest tick by the real clock (up to ten minutes late): a task due every minute is
    always that late, so only the drain keeping it off leaves none queued."""
    recorder = Recorder()
    queue = _queue(recorder, jobs_db)
    ticks: list[datetime] = []

    async def tick(at: datetime) -> None:
        ticks.append(at)

    queue._registry.periodic.append(Periodic(name="tick", cron="* * * * *", call=tick))
    queue.register(periodic=True)
    try:
        assert await queue.enqueue(Deliver("exchange", "held"))
        asyncio.get_running_loop().call_later(0.5, recorder.release.set)  # the deferrer's time
        await queue.drain()
        rows = await queue.app.connector.execute_query_all_async(
            "SELECT task_name FROM procrastinate_jobs ORDER BY id"
        )
        assert [row["task_name"] for row in rows] == ["capped_delivery"]
        assert not ticks
        assert queue.app.periodic_registry.periodic_tasks  # registered still, for a real worker
    finally:
        await queue.aclose()
