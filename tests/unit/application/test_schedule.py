"""The scheduler's use cases on the fake unit of work: what is due, queued, moved on and reaped.

``SKIP LOCKED`` between competing ticks, the partial index and the job queues themselves are
tested on the databases (tests/integration/test_scheduler.py, test_workers.py).
"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from finsync.application.schedule import LOST, Scheduler
from finsync.domain.entities import Connection, SyncRun
from finsync.domain.enums import ConnectionStatus, SyncStatus, SyncTrigger
from finsync.domain.jobs import SyncConnection
from finsync.domain.schedule import SyncSchedule
from tests.fakes.uow import FakeJobQueue, FakeProviders, MemoryDatabase, fake_uow_factory
from tests.unit.application.conftest import SettableNow

USER = uuid4()


@pytest.fixture
def scheduler(
    db: MemoryDatabase, providers: FakeProviders, queue: FakeJobQueue, now: SettableNow
) -> Scheduler:
    providers.describe("broker", schedule=SyncSchedule(default_minutes=60))
    providers.describe("bank", schedule=SyncSchedule(default_minutes=480, minimum_minutes=360))
    return Scheduler(
        fake_uow_factory(db), providers, queue, now, batch=2, grace=timedelta(minutes=2), rand=lambda: 0.0
    )


def _connection(now: SettableNow, provider: str = "broker", **fields: object) -> Connection:
    values: dict[str, object] = {
        "status": ConnectionStatus.ACTIVE,
        "next_sync_at": now() - timedelta(minutes=1),
    } | fields
    return Connection(user_id=USER, provider=provider, name=provider, **values)  # type: ignore[arg-type]


async def test_due_connections_get_one_queued_run_and_move_on(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    hourly = _connection(now)
    custom = _connection(now, sync_interval_minutes=240)
    bank = _connection(now, "bank", status=ConnectionStatus.ERROR)  # failing ones retry on schedule
    db.add(hourly, custom, bank)

    assert await scheduler.enqueue_due() == 3

    runs = {r.connection_id: r for r in db.tables.sync_runs.values()}
    assert set(runs) == {hourly.id, custom.id, bank.id}
    assert {(r.trigger, r.status, r.queued_at) for r in runs.values()} == {
        (SyncTrigger.SCHEDULED, SyncStatus.QUEUED, now())
    }
    assert {(j.connection_id, j.run_id, j.provider) for j in db.jobs if isinstance(j, SyncConnection)} == {
        (c.id, runs[c.id].id, c.provider) for c in (hourly, custom, bank)
    }
    moved = {c.id: c.next_sync_at for c in db.tables.connections.values()}
    assert moved == {
        hourly.id: now() + timedelta(minutes=60),
        custom.id: now() + timedelta(minutes=240),
        bank.id: now() + timedelta(minutes=480),
    }
    assert await scheduler.enqueue_due() == 0  # nothing is due any more


async def test_batches_are_separate_transactions_until_nothing_is_due(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    db.add(*(_connection(now) for _ in range(5)))
    assert await scheduler.enqueue_due() == 5
    assert db.commits == 3  # batch=2: 2 + 2 + 1
    assert len(db.jobs) == 5


async def test_exactly_full_batches_cost_no_extra_empty_transaction(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    """A claim looks one row past its batch: with 4 due and batches of 2, two transactions."""
    db.add(*(_connection(now) for _ in range(4)))
    assert await scheduler.enqueue_due() == 4
    assert db.commits == 2
    assert await scheduler.enqueue_due() == 0  # then nothing due: one (empty) claim
    assert db.commits == 3


async def test_what_is_not_due_or_not_schedulable_is_left_alone(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    later = _connection(now, next_sync_at=now() + timedelta(minutes=5))
    paused = _connection(now, sync_enabled=False)
    reauth = _connection(now, status=ConnectionStatus.NEEDS_REAUTH)
    pending = _connection(now, status=ConnectionStatus.PENDING)
    never = _connection(now, next_sync_at=None)
    db.add(later, paused, reauth, pending, never)

    assert await scheduler.enqueue_due() == 0
    assert (db.tables.sync_runs, db.jobs) == ({}, [])
    for connection in (later, paused, reauth, pending, never):
        assert db.get(Connection, connection.id) == connection


async def test_a_busy_connection_keeps_its_run_and_still_moves_on(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    busy = _connection(now)
    running = SyncRun(user_id=USER, connection_id=busy.id, trigger=SyncTrigger.MANUAL, started_at=now())
    db.add(busy, running)

    assert await scheduler.enqueue_due() == 0
    assert list(db.tables.sync_runs) == [running.id]
    assert db.jobs == []
    stored = db.get(Connection, busy.id)
    assert stored is not None
    assert stored.next_sync_at == now() + timedelta(minutes=60)


async def test_a_provider_no_longer_installed_is_never_scheduled_again(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    gone = _connection(now, "uninstalled")
    db.add(gone)
    assert await scheduler.enqueue_due() == 0
    stored = db.get(Connection, gone.id)
    assert stored is not None
    assert stored.next_sync_at is None


async def test_lapsed_consents_need_reauthorization(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    lapsed = _connection(now, "bank", expires_at=now() - timedelta(seconds=1))
    valid = _connection(now, "bank", expires_at=now() + timedelta(days=1))
    db.add(lapsed, valid)

    assert await scheduler.expire_lapsed() == 1
    stored = db.get(Connection, lapsed.id)
    assert stored is not None
    assert stored.status is ConnectionStatus.NEEDS_REAUTH
    assert stored.last_error is not None
    assert "reauthorize" in stored.last_error
    assert db.get(Connection, valid.id) == valid
    assert await scheduler.expire_lapsed() == 0


async def test_stale_runs_whose_job_is_gone_are_failed_and_live_ones_kept(
    scheduler: Scheduler, db: MemoryDatabase, queue: FakeJobQueue, now: SettableNow
) -> None:
    lost, alive, fresh = (_connection(now) for _ in range(3))
    old = now() - timedelta(minutes=10)
    runs = {
        c.id: SyncRun(
            user_id=USER,
            connection_id=c.id,
            trigger=SyncTrigger.SCHEDULED,
            status=SyncStatus.QUEUED,
            started_at=start,
        )
        for c, start in ((lost, old), (alive, old), (fresh, now() - timedelta(minutes=1)))
    }
    db.add(lost, alive, fresh, *runs.values())
    queue.alive = {SyncConnection.lock_of(alive.id)}
    queue.stalled = 2

    reaped = await scheduler.reap_stale_runs()

    assert (reaped.jobs_retried, reaped.runs_failed) == (2, 1)
    failed = db.get(SyncRun, runs[lost.id].id)
    assert failed is not None
    assert (failed.status, failed.error, failed.error_type, failed.finished_at) == (
        SyncStatus.FAILED,
        LOST,
        "interrupted",
        now(),
    )
    for kept in (alive, fresh):
        assert db.get(SyncRun, runs[kept.id].id) == runs[kept.id]


async def test_a_start_without_grace_closes_every_run_without_a_job(
    scheduler: Scheduler, db: MemoryDatabase, now: SettableNow
) -> None:
    """An embedded (SQLite) process starting: runs left by the previous one have no job."""
    connection = _connection(now)
    run = SyncRun(
        user_id=USER,
        connection_id=connection.id,
        trigger=SyncTrigger.MANUAL,
        status=SyncStatus.RUNNING,
        started_at=now() - timedelta(seconds=1),
    )
    db.add(connection, run)
    assert (await scheduler.reap_stale_runs(grace=timedelta(0))).runs_failed == 1
