"""The fake unit of work keeps the promises use cases rely on (else its tests would lie)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from finsync.domain.entities import Connection
from finsync.domain.jobs import SyncConnection
from finsync.domain.ports import PageRequest
from tests.fakes.uow import MemoryDatabase, NotFaked

USER = uuid4()


async def test_nothing_written_or_queued_survives_without_commit(db: MemoryDatabase) -> None:
    connection = Connection(user_id=USER, provider="broker", name="B")
    job = SyncConnection(connection_id=connection.id, run_id=uuid4(), provider="broker")
    async with db.uow() as uow:
        await uow.connections.add(connection)
        uow.enqueue(job)
        assert await uow.connections.get(connection.id) == connection  # seen inside
    assert (db.tables.connections, db.jobs) == ({}, [])

    async with db.uow() as uow:
        await uow.connections.add(connection)
        uow.enqueue(job)
        await uow.rollback()
        assert await uow.connections.get(connection.id) is None
        await uow.commit()
    assert (db.tables.connections, db.jobs) == ({}, [])

    async with db.uow() as uow:
        await uow.connections.add(connection)
        uow.enqueue(job)
        await uow.commit()
    assert db.get(Connection, connection.id) == connection
    assert db.jobs == [job]


async def test_entities_are_copies_so_only_save_changes_what_is_stored(db: MemoryDatabase) -> None:
    connection = Connection(user_id=USER, provider="broker", name="B")
    db.add(connection)
    async with db.uow() as uow:
        read = await uow.connections.get(connection.id)
        assert read is not None
        read.name = "changed, not saved"
        await uow.commit()
    assert db.get(Connection, connection.id) == connection


async def test_pages_follow_the_sql_keyset_rules(db: MemoryDatabase) -> None:
    made = [Connection(user_id=USER, provider="broker", name=str(i)) for i in range(5)]
    db.add(*made, Connection(user_id=uuid4(), provider="broker", name="other user"))
    async with db.uow() as uow:
        first = await uow.connections.find(USER, PageRequest(limit=3))
        assert first.next_key is not None
        rest = await uow.connections.find(USER, PageRequest(limit=3, after=first.next_key))
    assert [c.id for c in first.items + rest.items] == sorted(c.id for c in made)
    assert rest.next_key is None


async def test_a_repository_it_does_not_fake_says_so(db: MemoryDatabase) -> None:
    async with db.uow() as uow:
        with pytest.raises(NotFaked, match=r"uow\.transactions\.upsert is not faked"):
            await uow.transactions.upsert(None, [])  # type: ignore[arg-type]
