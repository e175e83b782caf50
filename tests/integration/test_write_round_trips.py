"""The per-account cost of writing transactions on PostgreSQL (issue 10): a multi-account import
locks each account once per transaction, in the round trip that also asks whether it holds
transactions, and an empty batch costs nothing. Counted from the statements sent, not timed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event

from finsync.bootstrap import Container
from finsync.domain.records import DeferredTransactions, ProviderTransaction
from tests.factories import account, seed_connection, seed_user, txn

pytestmark = pytest.mark.integration


def _deferred(items: list[ProviderTransaction]) -> DeferredTransactions:
    built = [replace(t, fingerprint=f"fp-{t.provider_transaction_id}") for t in items]

    def build(positions: list[int]) -> Iterator[ProviderTransaction]:
        return (built[at] for at in positions)

    return DeferredTransactions(
        keys=[(t.provider_transaction_id, t.fingerprint or "") for t in built], build=build
    )


async def test_each_account_is_locked_once_per_transaction(container: Container, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the account lock is PostgreSQL's; SQLite serialises writers itself")
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    locks: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FOR UPDATE" in statement and "WHERE accounts.id = " in statement:
            locks.append(statement)

    event.listen(container.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with container.uow() as uow:
            (first, second), _ = await uow.accounts.upsert(conn, [account("a1"), account("a2")])
            assert (await uow.transactions.upsert(first, [])).inserted == 0  # nothing to write
            assert locks == []
            assert (await uow.transactions.upsert(first, [txn("t1")])).inserted == 1
            assert (await uow.transactions.upsert_deferred(first, _deferred([txn("t2")]))).inserted == 1
            assert (await uow.transactions.upsert(second, [txn("t3")])).inserted == 1
            assert len(locks) == 2  # one per account, however many batches it got
            await uow.commit()
            # A new transaction holds no lock yet: the account is locked again.
            assert (await uow.transactions.upsert(first, [txn("t1"), txn("t4")])).inserted == 1
            assert len(locks) == 3
            await uow.commit()
            assert await uow.transactions.count_for(first.id) == 3
    finally:
        event.remove(container.engine.sync_engine, "before_cursor_execute", count)
