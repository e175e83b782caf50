"""The scheduler tick, the failure policy and jobs-after-commit, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from finsync.application.schedule import Scheduler
from finsync.bootstrap import Container
from finsync.domain.entities import Connection, SyncRun, User, utcnow
from finsync.domain.enums import ConnectionStatus, SyncStatus, SyncTrigger
from finsync.domain.errors import Conflict, ProviderAuthError, RateLimited, Unavailable
from finsync.domain.jobs import SyncConnection
from finsync.domain.ports import PageRequest
from tests.factories import account, seed_connection, seed_user, txn
from tests.fakes.memory import MemoryProviders
from tests.sql import statements

pytestmark = pytest.mark.integration


@pytest.fixture
def bank(memory_providers: MemoryProviders) -> MemoryProviders:
    memory_providers.accounts = [account("cur")]
    memory_providers.transactions = {"cur": [txn("t1")]}
    return memory_providers


async def _connection(container: Container, user: User, **fields: Any) -> Connection:
    """A memory-bank connection of its own user (two connections of one login would be refused)."""
    owner = User(email=f"{uuid4().hex}@example.com", password_hash="not-a-real-hash")
    async with container.uow() as uow:  # no password hashing: a user row is all a sync needs
        await uow.users.add(owner)
        await uow.commit()
    conn = await seed_connection(container, owner)
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
        assert stored is not None
        for name, value in fields.items():
            setattr(stored, name, value)
        await uow.connections.save(stored)
        await uow.commit()
    return stored


async def _get(container: Container, connection_id: UUID) -> Connection:
    async with container.uow() as uow:
        stored = await uow.connections.get(connection_id)
    assert stored is not None
    return stored


async def _runs(container: Container, user: User, connection_id: UUID) -> list[Any]:
    async with container.uow() as uow:
        conn = await uow.connections.get(connection_id)
        assert conn is not None
        return (await uow.sync_runs.find(conn.user_id, connection_id, PageRequest())).items


async def test_due_connections_get_one_scheduled_sync_each(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    past, future = utcnow() - timedelta(minutes=1), utcnow() + timedelta(hours=1)
    due = await _connection(container, user, next_sync_at=past, sync_interval_minutes=60)
    later = await _connection(container, user, next_sync_at=future)
    paused = await _connection(container, user, next_sync_at=past, sync_enabled=False)
    reauth = await _connection(container, user, next_sync_at=past, status=ConnectionStatus.NEEDS_REAUTH)
    failing = await _connection(container, user, next_sync_at=past, status=ConnectionStatus.ERROR)
    before = utcnow()
    assert await container.scheduler.enqueue_due() == 2  # due + failing (backing off, now due)
    for skipped in (later, paused, reauth):
        assert await _runs(container, user, skipped.id) == []
    (run,) = await _runs(container, user, due.id)
    assert run.trigger is SyncTrigger.SCHEDULED
    assert run.status in (SyncStatus.QUEUED, SyncStatus.RUNNING)  # in-process jobs start at once
    moved = (await _get(container, due.id)).next_sync_at
    assert moved is not None
    assert before + timedelta(minutes=60) <= moved <= utcnow() + timedelta(minutes=65)
    assert await container.scheduler.enqueue_due() == 0  # moved forward: not due again
    await container.jobs.drain()
    (run,) = await _runs(container, user, due.id)
    assert run.status is SyncStatus.SUCCEEDED
    assert len(await _runs(container, user, failing.id)) == 1


async def test_a_busy_connection_keeps_its_run_and_moves_on(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await _connection(container, user, next_sync_at=utcnow() - timedelta(minutes=1))
    bank.delay = 0.5  # in-process jobs start at once: the manual sync must still be running
    manual = await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
    assert await container.scheduler.enqueue_due() == 0
    assert [r.id for r in await _runs(container, user, conn.id)] == [manual.id]
    assert (await _get(container, conn.id)).next_sync_at > utcnow()  # type: ignore[operator]
    await container.jobs.drain()


async def test_transient_failures_back_off_and_success_resets(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await _connection(container, user, sync_interval_minutes=60)
    bank.fail_on["fetch_accounts"] = Unavailable("memory bank is down (HTTP 503)")
    for failures, (low, high) in ((1, (2.5, 5)), (2, (5, 10))):
        before = utcnow()
        await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
        await container.jobs.drain()
        stored = await _get(container, conn.id)
        assert (stored.status, stored.failure_count) == (ConnectionStatus.ERROR, failures)
        assert stored.last_error == "memory bank is down (HTTP 503)"  # the reason, surfaced
        assert stored.next_sync_at is not None
        assert before + timedelta(minutes=low) <= stored.next_sync_at <= utcnow() + timedelta(minutes=high)
    del bank.fail_on["fetch_accounts"]
    before = utcnow()
    await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
    await container.jobs.drain()
    stored = await _get(container, conn.id)
    assert (stored.status, stored.failure_count, stored.last_error) == (ConnectionStatus.ACTIVE, 0, None)
    assert stored.next_sync_at is not None
    assert stored.next_sync_at >= before + timedelta(minutes=60)


async def test_auth_failures_are_never_retried(container: Container, bank: MemoryProviders) -> None:
    user = await seed_user(container)
    conn = await _connection(container, user)
    bank.fail_on["fetch_accounts"] = ProviderAuthError("memory bank rejected the token")
    await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
    await container.jobs.drain()
    await _connection_due(container, conn.id)
    assert await container.scheduler.enqueue_due() == 0
    stored = await _get(container, conn.id)
    assert stored.status is ConnectionStatus.NEEDS_REAUTH
    assert stored.last_error == "memory bank rejected the token"


async def _connection_due(container: Container, connection_id: UUID) -> None:
    async with container.uow() as uow:
        stored = await uow.connections.get(connection_id)
        assert stored is not None
        stored.next_sync_at = utcnow() - timedelta(minutes=1)
        await uow.connections.save(stored)
        await uow.commit()


async def test_a_rate_limit_waits_for_its_reset(container: Container, bank: MemoryProviders) -> None:
    user = await seed_user(container)
    conn = await _connection(container, user)
    reset = utcnow() + timedelta(hours=5)
    bank.fail_on["fetch_accounts"] = RateLimited("daily allowance used", retry_after=18000, retry_at=reset)
    await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
    await container.jobs.drain()
    stored = await _get(container, conn.id)
    assert stored.status is ConnectionStatus.ACTIVE  # not the connection's fault
    assert stored.failure_count == 0
    assert stored.next_sync_at is not None
    assert reset <= stored.next_sync_at <= reset + timedelta(minutes=5)


async def test_a_rate_limit_that_only_says_how_long_waits_that_long(
    container: Container, bank: MemoryProviders
) -> None:
    """A shared budget knows how long to wait, not when the provider resets (``retry_after``
    only): the next sync waits that long too, instead of trying every few minutes."""
    user = await seed_user(container)
    conn = await _connection(container, user)
    bank.fail_on["fetch_accounts"] = RateLimited("budget spent", retry_after=3600.0)
    before = utcnow()
    await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
    await container.jobs.drain()
    stored = await _get(container, conn.id)
    assert stored.next_sync_at is not None
    assert before + timedelta(hours=1) <= stored.next_sync_at <= utcnow() + timedelta(hours=1, minutes=5)


async def test_a_stalled_job_a_newer_one_waits_behind_gives_way_to_it(
    container: Container, bank: MemoryProviders
) -> None:
    """A worker committed its run and died before procrastinate marked the job finished; the
    user asked again meanwhile. The stalled job cannot go back to the queue (one waiting job
    per connection), so the reaper ends it: left 'doing', it held the connection's lock and
    the newer run stayed queued for ever."""
    if container.settings.is_sqlite:
        pytest.skip("procrastinate's jobs: PostgreSQL")
    user = await seed_user(container)
    conn = await _connection(container, user)
    first = await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
    async with container.engine.begin() as db:  # the dead worker's state
        await db.execute(text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL"))
        await db.execute(
            text("UPDATE sync_runs SET status = 'succeeded', finished_at = now() WHERE id = :id"),
            {"id": first.id},
        )
    second = await container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL)
    assert second.id != first.id
    await container.scheduler.reap_stale_runs(grace=timedelta(0))
    await container.jobs.drain()
    async with container.uow() as uow:
        run = await uow.sync_runs.get(second.id)
    assert run is not None
    assert run.status is SyncStatus.SUCCEEDED


async def test_jobs_are_enqueued_only_after_commit(container: Container, bank: MemoryProviders) -> None:
    user = await seed_user(container)
    conn = await _connection(container, user)
    lock = SyncConnection.lock_of(conn.id)
    job = SyncConnection(connection_id=conn.id, run_id=conn.id, provider="memory")
    async with container.uow() as uow:
        uow.enqueue(job)
        await uow.rollback()
        await uow.commit()  # nothing buffered any more: the rollback dropped it
    assert await container.jobs.pending(SyncConnection.kind, [lock]) == set()
    async with container.uow() as uow:
        uow.enqueue(job)
        assert await container.jobs.pending(SyncConnection.kind, [lock]) == set()  # not before commit
        await uow.commit()
    assert await container.jobs.pending(SyncConnection.kind, [lock]) == {lock}
    await container.jobs.drain()


async def test_a_mashed_button_queues_one_sync(container: Container, bank: MemoryProviders) -> None:
    user = await seed_user(container)
    conn = await _connection(container, user)
    bank.delay = 0.5  # in-process jobs start at once: the first sync is still running meanwhile
    runs = await asyncio.gather(
        *(container.sync.request(conn.id, conn.user_id, SyncTrigger.MANUAL) for _ in range(10)),
        return_exceptions=True,
    )
    assert len({r.id for r in runs if not isinstance(r, BaseException)}) == 1
    if not container.settings.is_sqlite:
        async with container.engine.connect() as db:
            jobs = (await db.execute(text("SELECT count(*) FROM procrastinate_jobs"))).scalar()
        assert jobs == 1
    await container.jobs.drain()
    assert len(await _runs(container, user, conn.id)) == 1


async def test_concurrent_ticks_queue_each_connection_once(
    container: Container, bank: MemoryProviders
) -> None:
    """PostgreSQL: ticks of several workers at once claim disjoint connections (SKIP LOCKED) and
    the partial unique index keeps one active run per connection."""
    if container.settings.is_sqlite:
        pytest.skip("one process per SQLite database: ticks never overlap")
    user = await seed_user(container)
    past = utcnow() - timedelta(minutes=1)
    conns = [await _connection(container, user, next_sync_at=past) for _ in range(40)]
    counts = await asyncio.gather(*(container.scheduler.enqueue_due() for _ in range(5)))
    assert sum(counts) == 40
    for conn in conns:
        assert len(await _runs(container, user, conn.id)) == 1


async def test_a_locked_connection_is_skipped_not_waited_for(
    container: Container, bank: MemoryProviders
) -> None:
    if container.settings.is_sqlite:
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    user = await seed_user(container)
    past = utcnow() - timedelta(minutes=1)
    busy = await _connection(container, user, next_sync_at=past)
    free = await _connection(container, user, next_sync_at=past)
    async with container.uow() as writer:
        await writer.connections.get(busy.id, lock=True)  # a sync writing this connection
        assert await asyncio.wait_for(container.scheduler.enqueue_due(), timeout=10) == 1
    assert len(await _runs(container, user, free.id)) == 1
    assert await _runs(container, user, busy.id) == []
    assert await container.scheduler.enqueue_due() == 1  # released: due at the next tick
    await container.jobs.drain()


async def _add_run(container: Container, user_id: UUID, connection_id: UUID) -> None:
    async with container.uow() as uow:
        await uow.sync_runs.add(
            SyncRun(user_id=user_id, connection_id=connection_id, trigger=SyncTrigger.SCHEDULED)
        )
        await uow.commit()


async def test_a_run_can_only_name_the_owner_of_its_connection(
    container: Container, bank: MemoryProviders
) -> None:
    """One composite foreign key (user_id, connection_id) → connections(user_id, id): a run
    whose user does not own its connection is refused by the database, on both."""
    owner = await seed_user(container)
    stranger = await seed_user(container, "eve@example.com")
    conn = await seed_connection(container, owner)
    with pytest.raises(Conflict):
        await _add_run(container, stranger.id, conn.id)
    await _add_run(container, owner.id, conn.id)
    assert len(await _runs(container, owner, conn.id)) == 1


async def test_exactly_a_full_batch_due_claims_once(container: Container, bank: MemoryProviders) -> None:
    """The claim reads one row past its batch, so a tick with exactly a full batch due runs no
    second, empty, claim transaction; one more due connection takes a second batch."""
    user = await seed_user(container)
    past = utcnow() - timedelta(minutes=1)
    scheduler = Scheduler(container.uow, container.providers, container.jobs, batch=3)
    for due, claimed in ((3, 1), (4, 2)):
        for _ in range(due):
            await _connection(container, user, next_sync_at=past)
        async with statements(container) as seen:
            assert await scheduler.enqueue_due() == due
        claims = [s for s in seen if "FROM connections" in s and "next_sync_at <=" in s]
        assert len(claims) == claimed, claims
        await container.jobs.drain()
