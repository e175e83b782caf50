"""Repositories against real SQLite and PostgreSQL: the same tests on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import inspect

from finsync.bootstrap import Container
from finsync.domain.entities import Account
from finsync.domain.enums import TransactionStatus
from finsync.domain.errors import Conflict, InvalidInput
from finsync.domain.ports import PageRequest, TransactionFilter
from finsync.domain.records import DeferredTransactions, ProviderTransaction
from tests.factories import account, holding, seed_connection, seed_user, txn
from tests.sql import until_waiting

pytestmark = pytest.mark.integration


async def test_transaction_upsert_counts_and_never_duplicates(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        first = await uow.transactions.upsert(acct, [txn("t1"), txn("t2"), txn("t3")])
        again = await uow.transactions.upsert(acct, [txn("t1"), txn("t2"), txn("t3")])
        changed = await uow.transactions.upsert(acct, [txn("t1", "-99.99"), txn("t4"), txn("t4")])
        await uow.commit()
        count = await uow.transactions.count_for(acct.id)
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert (changed.inserted, changed.updated, changed.unchanged) == (1, 1, 1)
    assert count == 4


async def test_pending_to_settled_updates_the_same_row(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        await uow.transactions.upsert(acct, [txn("p1", status=TransactionStatus.PENDING)])
        counts = await uow.transactions.upsert(acct, [txn("p1", status=TransactionStatus.SETTLED)])
        await uow.commit()
        page = await uow.transactions.find(user.id, TransactionFilter(), PageRequest())
    assert counts.updated == 1
    assert [t.status for t in page.items] == [TransactionStatus.SETTLED]


async def test_money_is_exact_and_timestamps_aware(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    big = Decimal("123456789012345.123456789")
    at = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5)))
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account(balance=big, balance_at=at)])
        await uow.transactions.upsert(acct, [txn("a", "0.1"), txn("b", "0.2"), txn("c", "-0.30")])
        await uow.commit()
    async with container.uow() as uow:
        stored = await uow.accounts.get(acct.id, user.id)
        page = await uow.transactions.find(user.id, TransactionFilter(account_id=acct.id), PageRequest())
    assert stored is not None
    assert stored.balance == big
    assert isinstance(stored.balance, Decimal)
    assert stored.balance_at == at
    assert stored.balance_at.tzinfo is not None
    assert sum((t.amount for t in page.items), Decimal(0)) == Decimal("0.00")
    assert {str(t.amount) for t in page.items} == {"0.1", "0.2", "-0.30"}


async def test_account_upsert_matches_by_provider_id(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        first, c1 = await uow.accounts.upsert(conn, [account("a"), account("b")])
        second, c2 = await uow.accounts.upsert(conn, [account("a"), account("b", balance=Decimal("1"))])
        await uow.commit()
    assert (c1.inserted, c2.unchanged, c2.updated) == (2, 1, 1)
    assert [a.id for a in first] == [a.id for a in second]


async def test_holdings_are_replaced_as_a_set(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        await uow.holdings.replace(acct, [holding("AAA"), holding("BBB")])
        counts = await uow.holdings.replace(acct, [holding("AAA"), holding("CCC", quantity=Decimal("2"))])
        await uow.commit()
        page = await uow.holdings.find(user.id, acct.id, PageRequest())
    assert (counts.inserted, counts.unchanged, counts.deleted) == (1, 1, 1)
    assert sorted(h.symbol for h in page.items) == ["AAA", "CCC"]


async def test_keyset_pages_walk_every_row_once_in_stable_order(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        items = [txn(f"t{i:03}", day=date(2026, 1, 1) + timedelta(days=i % 7)) for i in range(53)]
        await uow.transactions.upsert(acct, items)
        await uow.commit()
    seen, after = [], None
    async with container.uow() as uow:
        while True:
            page = await uow.transactions.find(
                user.id, TransactionFilter(), PageRequest(limit=10, after=after)
            )
            seen.extend(page.items)
            if page.next_key is None:
                break
            after = page.next_key
    assert len(seen) == 53
    assert len({t.id for t in seen}) == 53
    keys = [(t.transaction_date, t.id) for t in seen]
    assert keys == sorted(keys, reverse=True)


async def test_filters_and_text_search(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        await uow.transactions.upsert(
            acct,
            [
                txn("a", description="Coffee 100% arabica", day=date(2026, 1, 1)),
                txn("b", description="Rent", day=date(2026, 2, 1)),
                txn("c", description="Buy VWRL", symbol="VWRL", day=date(2026, 3, 1)),
            ],
        )
        await uow.commit()
        by_text = await uow.transactions.find(user.id, TransactionFilter(text="100%"), PageRequest())
        by_symbol = await uow.transactions.find(user.id, TransactionFilter(symbol="vwrl"), PageRequest())
        by_date = await uow.transactions.find(
            user.id, TransactionFilter(date_from=date(2026, 1, 15), date_to=date(2026, 2, 15)), PageRequest()
        )
    assert [t.provider_transaction_id for t in by_text.items] == ["a"]
    assert [t.provider_transaction_id for t in by_symbol.items] == ["c"]
    assert [t.provider_transaction_id for t in by_date.items] == ["b"]


async def test_bad_cursor_is_invalid_input(container: Container) -> None:
    user = await seed_user(container)
    async with container.uow() as uow:
        with pytest.raises(InvalidInput):
            await uow.transactions.find(user.id, TransactionFilter(), PageRequest(after=("x",)))


async def test_delete_connection_removes_everything_under_it(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    other = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        (kept,), _ = await uow.accounts.upsert(other, [account("acc-2")])
        await uow.transactions.upsert(acct, [txn("t1")])
        await uow.transactions.upsert(kept, [txn("t1")])
        await uow.holdings.replace(acct, [holding()])
        await uow.commit()
    await container.connections.delete(conn.id, user.id)
    async with container.uow() as uow:
        assert await uow.connections.get(conn.id) is None
        assert await uow.accounts.get(acct.id, user.id) is None
        assert await uow.transactions.count_for(acct.id) == 0
        assert await uow.transactions.count_for(kept.id) == 1
        assert (await uow.holdings.find(user.id, acct.id, PageRequest())).items == []


async def test_unit_of_work_rolls_back_without_commit(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        await uow.accounts.upsert(conn, [account()])
    async with container.uow() as uow:
        assert await uow.accounts.for_connection(conn.id) == []


def _deferred(items: list[ProviderTransaction], built: list[int]) -> DeferredTransactions:
    """A provider's deferred group that records which positions the store asked it to build."""

    def build(positions: list[int]) -> Iterator[ProviderTransaction]:
        for at in positions:
            built.append(at)
            yield items[at]

    items = [replace(t, fingerprint=t.fingerprint or f"fp-{t.provider_transaction_id}") for t in items]
    keys = [(t.provider_transaction_id, t.fingerprint or "") for t in items]
    return DeferredTransactions(keys=keys, build=build)


async def test_deferred_upsert_builds_only_new_or_changed_items(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    items = [txn(f"d{i}", fingerprint=f"v1-{i}") for i in range(3)]
    changed = [items[0], txn("d1", "-99.00", fingerprint="v2-1"), items[2], txn("d3", fingerprint="v1-3")]
    first_built: list[int] = []
    again_built: list[int] = []
    changed_built: list[int] = []
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        first = await uow.transactions.upsert_deferred(acct, _deferred(items, first_built))
        await uow.commit()
    async with container.uow() as uow:
        again = await uow.transactions.upsert_deferred(acct, _deferred(items, again_built))
        later = await uow.transactions.upsert_deferred(acct, _deferred(changed, changed_built))
        await uow.commit()
        page = await uow.transactions.find(user.id, TransactionFilter(account_id=acct.id), PageRequest())
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    assert sorted(first_built) == [0, 1, 2]
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert again_built == []  # nothing stored with the same fingerprint is ever mapped again
    assert (later.inserted, later.updated, later.unchanged) == (1, 1, 2)
    assert sorted(changed_built) == [1, 3]
    amounts = {t.provider_transaction_id: t.amount for t in page.items}
    assert amounts == {
        "d0": Decimal("-12.34"),
        "d1": Decimal("-99.00"),
        "d2": Decimal("-12.34"),
        "d3": Decimal("-12.34"),
    }


async def test_a_provider_fingerprint_decides_what_changed(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        await uow.transactions.upsert(acct, [txn("t1", fingerprint="source-a")])
        same_source = await uow.transactions.upsert(acct, [txn("t1", fingerprint="source-a")])
        new_source = await uow.transactions.upsert(acct, [txn("t1", "-1.00", fingerprint="source-b")])
        # Without a fingerprint the values are hashed: different from "source-b", so an update.
        hashed = await uow.transactions.upsert(acct, [txn("t1", "-1.00")])
        await uow.commit()
    assert (same_source.unchanged, new_source.updated, hashed.updated) == (1, 1, 1)


async def test_deferred_items_after_eager_ones_of_the_same_id_win(container: Container) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        eager = await uow.transactions.upsert(acct, [txn("x", "-1.00", fingerprint="e")])
        deferred = await uow.transactions.upsert_deferred(
            acct, _deferred([txn("x", "-2.00", fingerprint="d")], [])
        )
        await uow.commit()
        (stored,) = (await uow.transactions.find(user.id, TransactionFilter(), PageRequest())).items
    assert (eager.inserted, deferred.updated, stored.amount) == (1, 1, Decimal("-2.00"))


async def test_transactions_have_no_foreign_keys_to_slow_bulk_inserts(container: Container) -> None:
    async with container.engine.connect() as conn:
        foreign_keys = await conn.run_sync(lambda sync: inspect(sync).get_foreign_keys("transactions"))
    assert foreign_keys == []


async def test_deleting_a_connection_waits_for_a_writer_of_its_accounts(
    container: Container, database_url: str
) -> None:
    """Without a foreign key, the account lock is what keeps rows from outliving their account."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: there is no interleaving to test")
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
        await uow.commit()
    async with container.uow() as writer:
        await writer.transactions.upsert_deferred(acct, _deferred([txn("w1"), txn("w2")], []))
        deleting = asyncio.create_task(container.connections.delete(conn.id, user.id))
        async with container.engine.connect() as probe:
            await until_waiting(probe)  # the delete has reached the writer's lock, and waits there
        assert not deleting.done(), "the delete must wait for the writer's account lock"
        await writer.commit()
    await deleting
    async with container.uow() as uow:
        assert await uow.transactions.count_for(acct.id) == 0


async def test_writing_to_a_vanished_account_is_a_conflict(container: Container, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the account lock is PostgreSQL's; SQLite serialises writers itself")
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        (acct,), _ = await uow.accounts.upsert(conn, [account()])
    # Not committed: the account row does not exist for the next unit of work.
    async with container.uow() as uow:
        with pytest.raises(Conflict):
            await uow.transactions.upsert_deferred(acct, _deferred([txn("v1")], []))


async def test_a_deadlock_between_writers_is_a_conflict_to_retry(
    container: Container, database_url: str
) -> None:
    """Two writers locking the same accounts in opposite orders: PostgreSQL aborts one of
    them, which must come out as a 409-style Conflict with nothing of it saved."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: it cannot deadlock")
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        first, second = (await uow.accounts.upsert(conn, [account("a"), account("b")]))[0]
        await uow.commit()
    both_hold_one = asyncio.Barrier(2)

    async def write(order: tuple[Account, Account], pid: str) -> None:
        async with container.uow() as uow:
            await uow.transactions.upsert_deferred(order[0], _deferred([txn(pid)], []))
            await both_hold_one.wait()
            await uow.transactions.upsert_deferred(order[1], _deferred([txn(pid)], []))
            await uow.commit()

    results = await asyncio.gather(
        write((first, second), "one"), write((second, first), "two"), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1, results
    assert isinstance(failed[0], Conflict)
    assert "try again" in str(failed[0])
    async with container.uow() as uow:
        stored = {
            t.provider_transaction_id
            for t in (await uow.transactions.find(user.id, TransactionFilter(), PageRequest())).items
        }
    assert stored in ({"one"}, {"two"})  # the winner's rows, none of the loser's
