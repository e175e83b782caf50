"""Export and erasure cover every table of a user's data, now and for tables added later.

The rows here are made by walking ``metadata``: a new table with a ``user_id`` column gets
a row without anyone touching this file, so erasure that misses it fails the test, and
export must say, column by column, what it shows and what it leaves out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import typing
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Column, LargeBinary, Table, delete, func, insert, select, text

from finsync.bootstrap import Container
from finsync.domain.errors import Conflict
from finsync.infrastructure.db.repositories.operators import ENCRYPTED
from finsync.infrastructure.db.repositories.userdata import (
    ERASED_JOB_ARGS,
    EXPORTED,
    KEPT_JOB_ARGS,
    NOT_EXPORTED,
    SHARED_TABLES,
)
from finsync.infrastructure.db.tables import metadata
from tests.api.test_imports import statement
from tests.factories import seed_user
from tests.sql import until_waiting

pytestmark = pytest.mark.integration


def _owned(table: Table) -> bool:
    return "user_id" in table.c or table.name == "users"


def _value(column: Column[Any], made: dict[str, UUID], user_id: UUID) -> Any:
    if column.name == "user_id" or (column.table.name == "users" and column.name == "id"):
        return user_id
    for fk in column.foreign_keys:  # the parent row made for the same user
        if fk.column.table is column.table:  # a tree (a category's parent): the root has none
            return None
        return made[fk.column.table.name]
    kind = getattr(column.type, "impl_instance", column.type).python_type  # TypeDecorators: their impl
    if column.primary_key and kind is UUID:
        return uuid.uuid4()
    if kind is UUID:  # an id without a foreign key (transactions.account_id): its table's row, if any
        return made.get(column.name.removesuffix("_id") + "s", uuid.uuid4())
    length = getattr(column.type, "length", None) or 32
    return {
        str: lambda: uuid.uuid4().hex[:length],
        bool: lambda: True,
        int: lambda: 1,
        Decimal: lambda: Decimal("12.34"),
        datetime: lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        date: lambda: date(2026, 1, 2),
        object: lambda: {},  # JSON
        bytes: lambda: b"ciphertext",
    }[kind]()


async def _one_row_everywhere(container: Container, user_id: UUID) -> dict[str, UUID]:
    """One row of the user in every table they can own, parents first."""
    made: dict[str, UUID] = {}
    async with container.engine.begin() as conn:
        for table in metadata.sorted_tables:
            if not _owned(table):
                continue
            row = {c.name: _value(c, made, user_id) for c in table.columns}
            await conn.execute(insert(table).values(row))
            # Its key: the id, or (a connection's trading settings) the primary key it has instead.
            key = "id" if "id" in row else next(iter(table.primary_key.columns)).name
            if isinstance(row.get(key), UUID):  # other keys (a user's preferences): no children
                made[table.name] = row[key]
        # The transaction's insert marked its day for cash flow (a trigger): keep the one row made here.
        marks = metadata.tables["cash_flow_dirty"]
        await conn.execute(delete(marks).where(marks.c.user_id == user_id, marks.c.writer != 1))
    return made


async def _counts(container: Container, user_id: UUID) -> dict[str, int]:
    async with container.engine.connect() as conn:
        return {
            table.name: (
                await conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where((table.c.id if table.name == "users" else table.c.user_id) == user_id)
                )
            ).scalar_one()
            for table in metadata.sorted_tables
            if _owned(table)
        }


def test_every_table_is_a_users_data_or_declared_shared() -> None:
    """A table without user_id that holds someone's data would escape erasure and export."""
    for table in metadata.sorted_tables:
        assert _owned(table) or table.name in SHARED_TABLES, (
            f"table {table.name} has no user_id: give it one, or declare it in SHARED_TABLES "
            "(finsync/infrastructure/db/repositories/userdata.py) if it holds nobody's data"
        )


def test_export_decides_about_every_column_of_a_users_data() -> None:
    exported = {table.name: set(columns) for table, columns in EXPORTED.values()}
    for table in filter(_owned, metadata.sorted_tables):
        if table.name in NOT_EXPORTED:
            assert table.name not in exported
            continue
        for column in table.columns:
            shown = column.name in exported.get(table.name, set())
            left_out = f"{table.name}.{column.name}" in NOT_EXPORTED
            assert shown != left_out, (
                f"{table.name}.{column.name}: export it (EXPORTED) or say why not (NOT_EXPORTED)"
            )


def test_key_rotation_knows_every_encrypted_column() -> None:
    binary = {
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary == {(table.name, column) for table, column in ENCRYPTED.values()}


def test_erasure_decides_about_every_argument_of_every_job(container: Container) -> None:
    """The job queue keeps jobs' arguments (PostgreSQL: finished jobs too): an argument that is
    not an id is erased with the user's connections, or declared nobody's data."""
    erased = {f"{kind}.{name}" for kind, names in ERASED_JOB_ARGS.items() for name in names}
    known: set[str] = set()
    for kind in container.job_types.types.values():
        hints = typing.get_type_hints(kind.job)
        names = {f.name for f in dataclasses.fields(kind.job)}
        known |= {f"{kind.kind}.{name}" for name in names}
        for name in names:
            if hints[name] in (UUID, UUID | None):
                continue
            qualified = f"{kind.kind}.{name}"
            assert (qualified in erased) != (qualified in KEPT_JOB_ARGS), (
                f"job argument {qualified}: erase it (ERASED_JOB_ARGS) or say why it is kept (KEPT_JOB_ARGS)"
            )
        if kind.kind in ERASED_JOB_ARGS:  # erasure finds the jobs by their connection
            assert "connection_id" in names, kind.kind
    declared = erased | set(KEPT_JOB_ARGS)
    assert declared <= known, declared - known


async def test_erase_empties_every_table_of_the_user_and_no_one_elses(container: Container) -> None:
    ada, bob = uuid.uuid4(), uuid.uuid4()
    await _one_row_everywhere(container, ada)
    await _one_row_everywhere(container, bob)
    assert set((await _counts(container, ada)).values()) == {1}
    async with container.uow() as uow:
        deleted = await uow.user_data.erase(ada)
        await uow.commit()
    # Cash flow's marks are taken by the recomputation at commit (deleting the transactions marks them).
    assert deleted == dict.fromkeys(set(await _counts(container, ada)) - {"cash_flow_dirty"}, 1)
    assert set((await _counts(container, ada)).values()) == {0}
    assert set((await _counts(container, bob)).values()) == {1}


async def test_export_streams_every_row_of_every_section(container: Container) -> None:
    ada, bob = uuid.uuid4(), uuid.uuid4()
    made = await _one_row_everywhere(container, ada)
    await _one_row_everywhere(container, bob)
    chunks = [chunk async for chunk in container.userdata.export(ada)]
    doc = json.loads(b"".join(chunks))
    for section, (table, _) in EXPORTED.items():
        rows = [doc[section]] if table.name == "users" else doc[section]
        key = "id" if "id" in table.c else next(iter(table.primary_key.columns)).name
        assert [row[key] for row in rows] == [str(made[table.name])], section


async def test_export_reads_one_snapshot_while_a_sync_writes(container: Container) -> None:
    """Rows committed after the export began are not in it (REPEATABLE READ; SQLite's read transaction)."""
    ada = uuid.uuid4()
    made = await _one_row_everywhere(container, ada)
    stream = container.userdata.export(ada)
    head = b""
    async for chunk in stream:  # up to the connections: the snapshot is taken
        head += chunk
        if b'"connections"' in head:
            break
    transactions = metadata.tables["transactions"]
    late = {c.name: _value(c, made, ada) for c in transactions.columns}
    async with container.engine.begin() as conn:
        await conn.execute(insert(transactions).values(late))
    doc = json.loads(head + b"".join([chunk async for chunk in stream]))
    assert [t["id"] for t in doc["transactions"]] == [str(made["transactions"])]


async def _blocked(container: Container, sessions: int = 1) -> None:
    async with container.engine.connect() as probe:
        await until_waiting(probe, sessions=sessions)


@pytest.mark.parametrize("first_import", [True, False], ids=["new-accounts", "existing-accounts"])
async def test_delete_while_an_import_is_written_waits_and_leaves_nothing(
    container: Container, database_url: str, first_import: bool
) -> None:
    """The import is held inside its transaction, between its account rows and its COPY of
    transactions (which have no foreign key), while the delete arrives."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: there is no interleaving to test")
    user = await seed_user(container)
    if not first_import:  # the file connection and its account exist: the import locks the account
        await container.imports.import_file(user.id, statement(range(10)), "a.ofx")
    async with container.engine.begin() as gate:
        await gate.execute(text("LOCK TABLE transactions IN SHARE MODE"))  # holds up the COPY
        importing = asyncio.create_task(
            container.imports.import_file(user.id, statement(range(500)), "b.ofx")
        )
        await _blocked(container)
        deleting = asyncio.create_task(container.userdata.delete_account(user.id))
        await _blocked(container, 2)  # the delete waits for the import, not the other way round
    result = await importing  # it was being written: it commits, and the delete then takes it all
    await deleting
    assert result.summary().transactions_inserted == 500 - (0 if first_import else 10)
    assert set((await _counts(container, user.id)).values()) == {0}


async def test_an_import_after_an_uncommitted_delete_fails_cleanly(container: Container) -> None:
    user = await seed_user(container)
    await container.imports.import_file(user.id, statement(range(10)), "a.ofx")
    async with container.uow() as deleting:
        await deleting.user_data.erase(user.id)
        importing = asyncio.create_task(
            container.imports.import_file(user.id, statement(range(500)), "b.ofx")
        )
        if container.engine.dialect.name == "postgresql":
            await _blocked(container)
        else:  # SQLite: the import's first write waits for the database lock
            await asyncio.sleep(0.5)
        await deleting.commit()
    with pytest.raises(Conflict):
        await importing
    assert set((await _counts(container, user.id)).values()) == {0}
