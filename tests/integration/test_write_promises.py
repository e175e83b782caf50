"""Concurrent writers on PostgreSQL: nothing lost, nothing duplicated, whatever the interleaving."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import text

from finsync.bootstrap import Container
from finsync.domain.enums import SyncStatus, SyncTrigger
from finsync.domain.ports import PageRequest
from tests.factories import account, holding, seed_connection, seed_user, txn
from tests.fakes.memory import MemoryProviders
from tests.sql import until_waiting

pytestmark = pytest.mark.integration


async def test_rename_during_a_sync_write_is_kept(
    container: Container, database_url: str, memory_providers: MemoryProviders
) -> None:
    """A rename (and, on odd rounds, a new key) landing while a sync is writing is neither lost
    nor loses the sync's state."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: a rename cannot land inside a sync's write")
    memory_providers.accounts = [account("cur")]
    memory_providers.transactions = {"cur": [txn("t1")]}
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    keys = [{"token": f"fake-token-{n}"} if n % 2 else None for n in range(5)]
    for round_ in range(5):  # the interleaving is forced, so every round must hold
        async with container.engine.connect() as holder, container.engine.connect() as probe:
            await holder.execute(
                text("SELECT id FROM accounts WHERE connection_id = :c FOR UPDATE"), {"c": conn.id}
            )
            run = await container.sync.request(conn.id, user.id, SyncTrigger.MANUAL)
            syncing = asyncio.create_task(container.jobs.drain())
            if round_:  # from the second round on, the account exists and its lock holds the sync
                await until_waiting(probe, "accounts")
            renaming = asyncio.create_task(
                container.connections.update(conn.id, user.id, f"Renamed {round_}", keys[round_])
            )
            if round_:
                await asyncio.wait({renaming}, timeout=0.05)
                if not renaming.done():
                    await until_waiting(probe, "connections")
            await holder.rollback()
            await asyncio.gather(syncing, renaming)
        async with container.uow() as uow:
            stored = await uow.connections.get(conn.id)
            finished = await uow.sync_runs.get(run.id)
        assert finished is not None
        assert finished.status is SyncStatus.SUCCEEDED, finished
        assert stored is not None
        assert stored.name == f"Renamed {round_}"
        newest = next((k for k in reversed(keys[: round_ + 1]) if k), {"token": "fake-token-for-tests"})
        assert container.cipher.decrypt(stored.credentials) == newest
        assert stored.state == {"syncs": round_ + 1}  # the sync's cursor survives the rename too
        assert stored.last_synced_at is not None


async def test_two_connections_of_one_login_never_duplicate_its_accounts(
    container: Container, memory_providers: MemoryProviders
) -> None:
    """Connected twice before anyone could tell: the second sync is refused, naming the first."""
    memory_providers.accounts = [account("acc-1", balance=Decimal("10.00"))]
    user = await seed_user(container)
    first = await seed_connection(container, user)
    second = await seed_connection(container, user)
    runs = []
    for conn in (first, second):
        runs.append(await container.sync.request(conn.id, user.id, SyncTrigger.INITIAL))
        await container.jobs.drain()
    async with container.uow() as uow:
        ok, refused = [await uow.sync_runs.get(r.id) for r in runs]
        held = await uow.accounts.for_connection(first.id)
        copies = await uow.accounts.for_connection(second.id)
    assert ok is not None
    assert ok.status is SyncStatus.SUCCEEDED
    assert refused is not None
    assert refused.status is SyncStatus.FAILED
    assert refused.error_type == "already-connected"
    assert str(first.id) in (refused.error or "")
    assert (len(held), copies) == (1, [])


async def test_two_lots_of_one_security_keep_their_ids(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    lots = [
        holding("XYZ", cusip="123456789", quantity=Decimal("5")),
        holding("XYZ", cusip="123456789", quantity=Decimal("7")),
        holding("VWRL"),
    ]
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        first = await uow.holdings.replace(acct, lots)
        await uow.commit()
    async with container.uow() as uow:
        before = (await uow.holdings.find(user.id, acct.id, PageRequest())).items
        again = await uow.holdings.replace(acct, lots)
        await uow.commit()
    async with container.uow() as uow:
        after = (await uow.holdings.find(user.id, acct.id, PageRequest())).items
    assert (first.inserted, again.unchanged, again.inserted, again.deleted) == (3, 3, 0, 0)
    assert {(h.id, h.quantity) for h in after} == {(h.id, h.quantity) for h in before}
