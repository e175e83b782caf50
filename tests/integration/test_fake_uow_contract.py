"""The fake unit of work answers like the SQL one, for everything it fakes.

The same assertions run on tests/fakes/uow.py and on the SQL repositories of both databases,
so the fast use-case tests in tests/unit/application cannot pass on a fake that drifted from
what the databases do. (Concurrency is not compared: the fake has none, by design.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from finsync.domain.categories import Category, CategoryKind, Rule, RuleConditions
from finsync.domain.entities import Account, AuthFlow, Connection, SyncRun, User
from finsync.domain.enums import AccountType, ConnectionStatus, SyncStatus, SyncTrigger
from finsync.domain.ports import PageRequest, UnitOfWorkFactory
from finsync.domain.reach import normalise_iban
from finsync.domain.records import ProviderAccount
from finsync.providers.registry import ProviderRegistry
from tests.conftest import built, make_settings
from tests.fakes.uow import MemoryDatabase, fake_uow_factory

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Store:
    uow: UnitOfWorkFactory
    new_user: Callable[[], Awaitable[UUID]]
    # Accounts as a sync writes them (the fake has no write path: it stores them directly).
    add_accounts: Callable[[Connection, list[ProviderAccount]], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """None for the fake, else the database URL (resolved here: those fixtures are synchronous)."""
    if request.param == "memory":
        return None
    url = request.getfixturevalue("sqlite_database" if request.param == "sqlite" else "pg_database")
    if url is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    return str(url)


@pytest.fixture
async def store(backend: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    if backend is None:
        db = MemoryDatabase()

        async def memory_user() -> UUID:
            return User(email="x@example.com", password_hash="x").id

        async def memory_accounts(connection: Connection, records: list[ProviderAccount]) -> None:
            for r in records:
                account = Account(
                    user_id=connection.user_id,
                    connection_id=connection.id,
                    provider=connection.provider,
                    provider_account_id=r.provider_account_id,
                    name=r.name,
                    type=r.type,
                    currency=r.currency,
                    iban=normalise_iban(r.iban),
                )
                db.add(account)

        yield Store(fake_uow_factory(db), memory_user, memory_accounts)
        return
    async with built(make_settings(backend, tmp_path), registry=ProviderRegistry([])) as c:
        count = 0

        async def sql_user() -> UUID:
            nonlocal count
            count += 1
            user = User(email=f"user{count}@example.com", password_hash="x")
            async with c.uow() as uow:
                await uow.users.add(user)
                await uow.commit()
            return user.id

        async def sql_accounts(connection: Connection, records: list[ProviderAccount]) -> None:
            async with c.uow() as uow:
                await uow.accounts.upsert(connection, records)
                await uow.commit()

        yield Store(c.uow, sql_user, sql_accounts)


def _connection(user: UUID, **fields: object) -> Connection:
    values: dict[str, object] = {
        "user_id": user,
        "provider": "broker",
        "name": "B",
        "status": ConnectionStatus.ACTIVE,
    } | fields
    return Connection(**values)  # type: ignore[arg-type]


async def test_claim_due_takes_schedulable_due_connections_earliest_first(store: Store) -> None:
    user = await store.new_user()
    late = _connection(user, next_sync_at=NOW - timedelta(minutes=1))
    early = _connection(user, next_sync_at=NOW - timedelta(minutes=9), status=ConnectionStatus.ERROR)
    earliest = _connection(user, next_sync_at=NOW - timedelta(minutes=10))
    skipped = [
        _connection(user, next_sync_at=NOW + timedelta(seconds=1)),
        _connection(user, next_sync_at=NOW - timedelta(hours=1), sync_enabled=False),
        _connection(user, next_sync_at=NOW - timedelta(hours=1), status=ConnectionStatus.NEEDS_REAUTH),
        _connection(user, next_sync_at=NOW - timedelta(hours=1), status=ConnectionStatus.PENDING),
        _connection(user, next_sync_at=None),
    ]
    async with store.uow() as uow:
        for c in (late, early, earliest, *skipped):
            await uow.connections.add(c)
        await uow.commit()
    async with store.uow() as uow:
        assert [c.id for c in await uow.connections.claim_due(NOW, 2)] == [earliest.id, early.id]
        assert [c.id for c in await uow.connections.claim_due(NOW, 10)] == [earliest.id, early.id, late.id]
        await uow.sync_runs.add(_run(early, SyncStatus.RUNNING))  # a manual sync is running
        await uow.commit()
    wanted = [_run(earliest), _run(early)]
    async with store.uow() as uow:
        moves = [(earliest.id, NOW + timedelta(hours=1)), (early.id, None)]
        added = await uow.connections.reschedule_and_queue(moves, wanted, claimed_at=NOW)
        assert [r.id for r in added] == [wanted[0].id]  # the busy one keeps its run
        await uow.commit()
    async with store.uow() as uow:
        assert [c.id for c in await uow.connections.claim_due(NOW, 10)] == [late.id]
        moved = await uow.connections.get(earliest.id)
        assert moved is not None
        assert moved.next_sync_at == NOW + timedelta(hours=1)
        queued = await uow.sync_runs.active_for(earliest.id)
        assert queued is not None
        assert queued.id == wanted[0].id
        running = await uow.sync_runs.active_for(early.id)
        assert running is not None
        assert running.status is SyncStatus.RUNNING


async def test_lapsed_active_connections_expire_and_nothing_else(store: Store) -> None:
    user, other = await store.new_user(), await store.new_user()
    lapsed = _connection(user, expires_at=NOW)
    mine_later = _connection(user, expires_at=NOW + timedelta(seconds=1))
    theirs = _connection(other, expires_at=NOW - timedelta(days=1))
    errored = _connection(user, expires_at=NOW - timedelta(days=1), status=ConnectionStatus.ERROR)
    async with store.uow() as uow:
        for c in (lapsed, mine_later, theirs, errored):
            await uow.connections.add(c)
        await uow.commit()
    async with store.uow() as uow:
        assert [c.id for c in await uow.connections.expire_lapsed(user, NOW)] == [lapsed.id]
        assert [c.id for c in await uow.connections.expire_lapsed(None, NOW)] == [theirs.id]
        await uow.commit()
    async with store.uow() as uow:
        statuses = {c.id: (await uow.connections.get(c.id)) for c in (lapsed, mine_later, theirs, errored)}
    assert {k: v.status if v else None for k, v in statuses.items()} == {
        lapsed.id: ConnectionStatus.NEEDS_REAUTH,
        mine_later.id: ConnectionStatus.ACTIVE,
        theirs.id: ConnectionStatus.NEEDS_REAUTH,
        errored.id: ConnectionStatus.ERROR,
    }
    stored = statuses[lapsed.id]
    assert stored is not None
    assert stored.updated_at == NOW
    assert stored.last_error is not None


async def test_one_login_per_user_and_provider(store: Store) -> None:
    user, other = await store.new_user(), await store.new_user()
    first = _connection(user, identity="login-1")
    async with store.uow() as uow:
        assert (await uow.connections.add_or_get(first)).id == first.id
        assert (await uow.connections.add_or_get(_connection(user, identity="login-1"))).id == first.id
        theirs = _connection(other, identity="login-1")
        assert (await uow.connections.add_or_get(theirs)).id == theirs.id
        await uow.commit()
    async with store.uow() as uow:
        found = await uow.connections.by_identity(user, "broker", "login-1")
        assert found is not None
        assert found.id == first.id
        assert await uow.connections.by_identity(user, "other", "login-1") is None
        assert await uow.connections.get(first.id, other) is None  # another user's: not there


async def test_connection_pages_and_status_filter(store: Store) -> None:
    user = await store.new_user()
    made = [_connection(user) for _ in range(4)]
    paused = _connection(user, status=ConnectionStatus.ERROR)
    async with store.uow() as uow:
        for c in (*made, paused):
            await uow.connections.add(c)
        await uow.commit()
    async with store.uow() as uow:
        first = await uow.connections.find(user, PageRequest(limit=3))
        assert first.next_key is not None
        rest = await uow.connections.find(user, PageRequest(limit=3, after=first.next_key))
        errors = await uow.connections.find(user, PageRequest(), ConnectionStatus.ERROR)
    assert [c.id for c in first.items + rest.items] == sorted(c.id for c in (*made, paused))
    assert rest.next_key is None
    assert [c.id for c in errors.items] == [paused.id]


def _run(connection: Connection, status: SyncStatus = SyncStatus.QUEUED, started: datetime = NOW) -> SyncRun:
    return SyncRun(
        user_id=connection.user_id,
        connection_id=connection.id,
        trigger=SyncTrigger.SCHEDULED,
        status=status,
        queued_at=started,
        started_at=started,
    )


async def test_one_active_run_per_connection_and_the_reaper_reads(store: Store) -> None:
    user = await store.new_user()
    busy, idle, done = _connection(user), _connection(user), _connection(user)
    running = _run(busy, SyncStatus.RUNNING, NOW - timedelta(minutes=30))
    finished = _run(done, SyncStatus.SUCCEEDED, NOW - timedelta(hours=1))
    async with store.uow() as uow:
        for c in (busy, idle, done):
            await uow.connections.add(c)
        await uow.sync_runs.add(running)
        await uow.sync_runs.add(finished)
        await uow.commit()
    wanted = [_run(busy), _run(idle), _run(done)]
    async with store.uow() as uow:
        added = await uow.sync_runs.add_many_if_idle(wanted)
        assert [r.id for r in added] == [wanted[1].id, wanted[2].id]
        assert not await uow.sync_runs.add_if_idle(_run(idle))
        await uow.commit()
    async with store.uow() as uow:
        active = await uow.sync_runs.active_for(busy.id)
        assert active is not None
        assert active.id == running.id
        stale = await uow.sync_runs.stale(NOW - timedelta(minutes=1), 10)
        assert [r.id for r in stale] == [running.id]
        started = await uow.sync_runs.start(wanted[1].id, NOW + timedelta(seconds=5))
        assert started is not None
        assert (started.status, started.attempts) == (SyncStatus.RUNNING, 1)
        assert await uow.sync_runs.start(finished.id, NOW) is None
        closed = await uow.sync_runs.close_lost([running.id, finished.id], NOW, "lost")
        assert closed == [running.id]
        await uow.commit()
    async with store.uow() as uow:
        lost = await uow.sync_runs.get(running.id)
        assert lost is not None
        assert (lost.status, lost.error, lost.error_type, lost.finished_at) == (
            SyncStatus.FAILED,
            "lost",
            "interrupted",
            NOW,
        )
        page = await uow.sync_runs.find(user, done.id, PageRequest())
        assert [r.id for r in page.items] == [wanted[2].id, finished.id]  # newest first


async def test_deleting_a_connection_takes_its_runs_and_flows(store: Store) -> None:
    user = await store.new_user()
    connection = _connection(user)
    flow = AuthFlow(
        state_hash="h" * 64, user_id=user, connection_id=connection.id, provider="broker", expires_at=NOW
    )
    async with store.uow() as uow:
        await uow.connections.add(connection)
        await uow.sync_runs.add(_run(connection))
        await uow.auth_flows.add(flow)
        await uow.commit()
    async with store.uow() as uow:
        assert await uow.auth_flows.claim(flow.id, NOW)
        assert not await uow.auth_flows.claim(flow.id, NOW)  # single use
        await uow.connections.delete(connection.id)
        await uow.commit()
    async with store.uow() as uow:
        assert await uow.connections.get(connection.id) is None
        assert await uow.sync_runs.active_for(connection.id) is None
        assert await uow.auth_flows.get_by_state_hash("h" * 64) is None


async def test_categories_seed_once_list_by_name_and_lift_children(store: Store) -> None:
    user = await store.new_user()
    top = Category(user_id=user, name="Food", kind=CategoryKind.EXPENSE)
    child = Category(user_id=user, name="Cafe", kind=CategoryKind.EXPENSE, parent_id=top.id)
    async with store.uow() as uow:
        assert await uow.categories.seed(user, [top, child])
        assert not await uow.categories.seed(
            user, [Category(user_id=user, name="X", kind=CategoryKind.INCOME)]
        )
        await uow.commit()
    async with store.uow() as uow:
        assert [c.name for c in await uow.categories.list(user)] == ["Cafe", "Food"]
        await uow.categories.delete(top.id, user)
        await uow.commit()
    async with store.uow() as uow:
        lifted = await uow.categories.get(child.id, user)
        assert lifted is not None
        assert lifted.parent_id is None
        assert await uow.categories.get(top.id, user) is None


async def test_rules_list_by_priority_and_only_enabled_ones_count(store: Store) -> None:
    user = await store.new_user()
    when = RuleConditions(description_contains="x")
    later = Rule(user_id=user, name="later", conditions=when, tags=["a"], priority=200)
    first = Rule(user_id=user, name="first", conditions=when, tags=["b"], priority=10, enabled=False)
    async with store.uow() as uow:
        await uow.rules.add(later)
        await uow.rules.add(first)
        assert [r.id for r in await uow.rules.list(user)] == [first.id, later.id]
        assert await uow.rules.any_for(user)
        assert await uow.rules.delete(later.id, user)
        assert not await uow.rules.delete(later.id, user)
        assert not await uow.rules.any_for(user)  # only a disabled rule is left


async def test_reaches_name_accounts_sharing_iban_and_currency_across_connections(store: Store) -> None:
    user, other_user = await store.new_user(), await store.new_user()
    old = _connection(user, provider="gocardless", created_at=NOW - timedelta(days=400))
    new = _connection(user, provider="enablebanking", status=ConnectionStatus.NEEDS_REAUTH, created_at=NOW)
    stranger = _connection(other_user, provider="enablebanking")
    async with store.uow() as uow:
        for connection in (old, new, stranger):
            await uow.connections.add(connection)
        await uow.commit()

    def account(key: str, iban: str | None, currency: str = "EUR") -> ProviderAccount:
        return ProviderAccount(
            provider_account_id=key, name=key, type=AccountType.CHECKING, currency=currency, iban=iban
        )

    iban = "DE89370400440532013000"
    await store.add_accounts(
        old, [account("saver", iban), account("usd", iban, "USD"), account("other", "GB33BUKB20201555555555")]
    )
    await store.add_accounts(new, [account("saver-eb", "de89 3704 0044 0532 0130 00"), account("none", None)])
    await store.add_accounts(stranger, [account("saver-x", iban)])
    async with store.uow() as uow:
        found = await uow.accounts.reaches(user)
        by_key = {a.id: a.provider_account_id for a in await uow.accounts.for_connection(old.id)}
        by_key |= {a.id: a.provider_account_id for a in await uow.accounts.for_connection(new.id)}
        assert await uow.accounts.reaches(other_user) == []  # alone with its IBAN: no pair
    assert sorted(by_key[r.account_id] for r in found) == ["saver", "saver-eb"]
    eb = next(r for r in found if r.connection_id == new.id)
    assert (eb.iban, eb.currency, eb.provider) == (iban, "EUR", "enablebanking")
    assert (eb.status, eb.connected_at, eb.expires_at) == (ConnectionStatus.NEEDS_REAUTH, NOW, None)
