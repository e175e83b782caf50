"""Real `finsync worker` processes on PostgreSQL against fake Alpaca accounts on loopback.

Workers run with a 0.5 s heartbeat, a 2 s stall limit and a 1 s scheduler tick, so a crash
is detected and recovered within seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from sqlalchemy import text

from finsync.api.app import create_app
from finsync.bootstrap import Container
from finsync.config import Settings
from finsync.domain.entities import Connection, SyncRun, User, utcnow
from finsync.domain.enums import ConnectionStatus, SyncStatus, SyncTrigger
from finsync.domain.ports import AccountFilter, PageRequest, TransactionFilter
from tests.conftest import FAKE_FERNET_KEY, FAKE_JWT_SECRET, built, make_settings
from tests.fakes.server import serve
from tests.fakes.tenants import SECRET, Tenants, key_of

pytestmark = pytest.mark.integration
T = TypeVar("T")
FAST = {
    "scheduler_tick_seconds": 1,
    "job_heartbeat_seconds": 0.5,
    "job_stall_seconds": 2.0,
    "run_grace_seconds": 5,
    "provider_timeout_seconds": 15.0,
}


class Workers:
    """`finsync worker` subprocesses with the test's settings in their environment."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FINSYNC_")}
        self.env |= {
            "FINSYNC_DATABASE_URL": settings.database_url,
            "FINSYNC_ENCRYPTION_KEYS": FAKE_FERNET_KEY,
            "FINSYNC_JWT_SECRET": FAKE_JWT_SECRET,
            "FINSYNC_DATA_DIR": str(workdir),
            "FINSYNC_ALPACA_PAPER_URL": settings.providers["alpaca"]["paper_url"],
            "FINSYNC_LOG_LEVEL": "WARNING",
        } | {f"FINSYNC_{k.upper()}": str(v) for k, v in FAST.items()}
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 4) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"worker-{len(self.procs)}.log").open("wb")
        finsync = Path(sys.executable).parent / "finsync"
        proc = subprocess.Popen(  # cwd: no stray .env is read
            [str(finsync), "worker", "--concurrency", str(concurrency)],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def pg_url(pg_database: str | None) -> str:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    return pg_database


@pytest.fixture
def tenants() -> Iterator[tuple[Tenants, str]]:
    fake = Tenants(latency=0.02)
    with serve(fake) as url:
        yield fake, url


@pytest.fixture
async def fleet(
    pg_url: str, tenants: tuple[Tenants, str], tmp_path: Path
) -> AsyncIterator[tuple[Container, Workers, Tenants]]:
    settings = make_settings(pg_url, tmp_path, alpaca_paper_url=tenants[1], **FAST)
    workers = Workers(settings, tmp_path)
    async with built(settings) as container:
        try:
            yield container, workers, tenants[0]
        finally:
            tenants[0].gate.set()
            workers.stop()


async def eventually(probe: Callable[[], Awaitable[T | None]], seconds: float = 30.0) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


async def _owner(container: Container) -> User:
    user = User(email=f"{time.time_ns()}@example.com", password_hash="not-a-real-hash")
    async with container.uow() as uow:
        await uow.users.add(user)
        await uow.commit()
    return user


async def _connect(container: Container, tenants: Tenants, n: int, same_as: int | None = None) -> Connection:
    """Through the use case: credentials checked against the fake, then the initial sync queued."""
    tenants.add(key_of(n), None if same_as is None else tenants.stores[key_of(same_as)])
    user = await _owner(container)
    created = await container.connections.create(
        user.id, "alpaca", f"Paper {n}", "paper", {"key_id": key_of(n), "secret_key": SECRET}
    )
    return created.connection


async def _runs(container: Container, connection_id: UUID) -> list[SyncRun]:
    async with container.uow() as uow:
        conn = await uow.connections.get(connection_id)
        assert conn is not None
        return (await uow.sync_runs.find(conn.user_id, connection_id, PageRequest(limit=200))).items


async def _finished(container: Container, connection_id: UUID) -> SyncRun | None:
    runs = await _runs(container, connection_id)
    if runs and all(r.status in (SyncStatus.SUCCEEDED, SyncStatus.FAILED) for r in runs):
        return runs[0]
    return None


async def _data(container: Container, user_id: UUID) -> list[Any]:
    """What a user holds, without ids or times: comparable between two connections."""
    async with container.uow() as uow:
        accounts = (await uow.accounts.find(user_id, AccountFilter(), PageRequest())).items
        txns = (await uow.transactions.find(user_id, TransactionFilter(), PageRequest(limit=500))).items
        holdings = (await uow.holdings.find(user_id, None, PageRequest())).items
    return [
        sorted((a.provider_account_id, a.balance, a.cash_value, a.currency) for a in accounts),
        sorted((t.provider_transaction_id, t.amount, t.type, t.subtype, t.quantity) for t in txns),
        sorted((h.symbol, h.quantity, h.market_value) for h in holdings),
    ]


async def test_a_scheduled_sync_happens_without_any_request(
    fleet: tuple[Container, Workers, Tenants],
) -> None:
    container, workers, tenants = fleet
    tenants.add(key_of(1))
    user = await _owner(container)
    credentials = container.cipher.encrypt({"key_id": key_of(1), "secret_key": SECRET})
    due = Connection(
        user_id=user.id,
        provider="alpaca",
        name="Due",
        environment="paper",
        status=ConnectionStatus.ACTIVE,
        credentials=credentials,
        sync_interval_minutes=60,
        next_sync_at=utcnow() - timedelta(minutes=1),
    )
    async with container.uow() as uow:
        await uow.connections.add(due)
        await uow.commit()
    workers.start()
    run = await eventually(lambda: _finished(container, due.id))
    assert (run.trigger, run.status) == (SyncTrigger.SCHEDULED, SyncStatus.SUCCEEDED)
    accounts, txns, holdings = await _data(container, user.id)
    assert len(accounts) == 1
    assert txns
    assert holdings
    async with container.uow() as uow:
        stored = await uow.connections.get(due.id)
    assert stored is not None
    assert stored.next_sync_at is not None
    assert stored.next_sync_at > utcnow() + timedelta(minutes=55)


async def test_two_workers_never_run_the_same_connection_at_once(
    fleet: tuple[Container, Workers, Tenants],
) -> None:
    container, workers, tenants = fleet
    tenants.latency = 0.05
    connections = [await _connect(container, tenants, n) for n in range(4)]
    workers.start()
    workers.start()
    for conn in connections:  # the initial syncs: both workers are up
        await eventually(lambda conn=conn: _finished(container, conn.id))  # type: ignore[misc]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # every connection's button, pressed again and again
        await asyncio.gather(
            *(container.sync.request(c.id, c.user_id, SyncTrigger.MANUAL) for c in connections)
        )
        await asyncio.sleep(0.05)
    for conn in connections:
        await eventually(lambda conn=conn: _finished(container, conn.id))  # type: ignore[misc]
        runs = await _runs(container, conn.id)
        assert len(runs) >= 2
        assert all(r.status is SyncStatus.SUCCEEDED for r in runs)
    async with container.engine.connect() as db:
        ran_on = (
            await db.execute(
                text(
                    "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs "
                    "WHERE task_name = 'sync_connection'"
                )
            )
        ).scalar()
    assert ran_on == 2  # both workers took syncs of these connections...
    assert set(tenants.max_inflight.values()) == {1}  # ...yet never two of one connection at once
    assert tenants.throttled == 0


async def test_a_killed_worker_s_sync_is_finished_by_another(
    fleet: tuple[Container, Workers, Tenants],
) -> None:
    container, workers, tenants = fleet
    reference = await _connect(container, tenants, 1)
    await container.jobs.drain()  # synced without interruption, here
    conn = await _connect(container, tenants, 2, same_as=1)  # its sync waits for a worker
    tenants.gate.clear()  # every provider answer now waits
    victim = workers.start()
    await eventually(lambda: _inflight(tenants, key_of(2)))  # the victim is mid-sync
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    tenants.gate.set()
    workers.start()
    run = await eventually(lambda: _finished(container, conn.id))
    assert run.status is SyncStatus.SUCCEEDED
    assert run.attempts == 2  # picked up again after the kill
    assert await _data(container, conn.user_id) == await _data(container, reference.user_id)
    async with container.engine.connect() as db:
        active = (
            await db.execute(text("SELECT count(*) FROM sync_runs WHERE status IN ('queued', 'running')"))
        ).scalar()
    assert active == 0


async def _inflight(tenants: Tenants, key: str) -> bool | None:
    return True if tenants.inflight[key] > 0 else None


async def test_an_api_restart_closes_no_live_run(
    fleet: tuple[Container, Workers, Tenants], tmp_path: Path
) -> None:
    container, workers, tenants = fleet
    conn = await _connect(container, tenants, 1)
    tenants.gate.clear()
    workers.start()
    await eventually(lambda: _inflight(tenants, key_of(1)))
    for _ in range(2):  # an API process starts and stops, twice
        app = create_app(container.settings)
        async with app.router.lifespan_context(app):
            pass
    (run,) = await _runs(container, conn.id)
    assert run.status is SyncStatus.RUNNING
    tenants.gate.set()
    run = await eventually(lambda: _finished(container, conn.id))
    assert run.status is SyncStatus.SUCCEEDED
    assert run.attempts == 1


async def test_serve_with_worker_runs_jobs_in_the_api_process(
    fleet: tuple[Container, Workers, Tenants],
) -> None:
    """`finsync serve --with-worker` (single box): no worker process, the API runs the job."""
    container, _, tenants = fleet
    conn = await _connect(container, tenants, 1)
    app = create_app(container.settings, with_worker=True)
    async with app.router.lifespan_context(app):
        run = await eventually(lambda: _finished(container, conn.id))
    assert (run.trigger, run.status) == (SyncTrigger.INITIAL, SyncStatus.SUCCEEDED)
