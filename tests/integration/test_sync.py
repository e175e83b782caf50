"""The sync core against real databases, driven by the in-memory provider."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from sqlalchemy import text

from finsync.application.labels import id_floor, label_new_transactions
from finsync.bootstrap import Container
from finsync.domain.entities import Account, Holding, SyncRun, Transaction
from finsync.domain.enums import (
    ConnectionStatus,
    SnapshotSource,
    SyncStatus,
    SyncTrigger,
    TransactionStatus,
    TransactionSubtype,
)
from finsync.domain.errors import Conflict, NeedsReauthorization, ProviderAuthError, Unavailable
from finsync.domain.jobs import SyncConnection
from finsync.domain.ports import AccountFilter, PageRequest, TransactionFilter
from finsync.domain.webhooks import Webhook
from tests.factories import account, holding, seed_connection, seed_user, txn
from tests.fakes.memory import MemoryProviders
from tests.sql import until_waiting

pytestmark = pytest.mark.integration


async def _sync(container: Container, connection_id: UUID, user_id: UUID, trigger: SyncTrigger) -> SyncRun:
    run = await container.sync.request(connection_id, user_id, trigger)
    await container.jobs.drain()
    async with container.uow() as uow:
        stored = await uow.sync_runs.get(run.id)
    assert stored is not None
    return stored


async def _state(
    container: Container, user_id: UUID
) -> tuple[list[Account], list[Transaction], list[Holding]]:
    async with container.uow() as uow:
        accounts = (await uow.accounts.find(user_id, AccountFilter(), PageRequest())).items
        txns = (await uow.transactions.find(user_id, TransactionFilter(), PageRequest(limit=500))).items
        holdings = (await uow.holdings.find(user_id, None, PageRequest())).items
    return accounts, txns, holdings


@pytest.fixture
def bank(memory_providers: MemoryProviders) -> MemoryProviders:
    memory_providers.accounts = [account("cur"), account("isa", currency="GBP", balance=Decimal("5000"))]
    memory_providers.transactions = {"cur": [txn("t1"), txn("t2", "100.00")], "isa": [txn("i1")]}
    memory_providers.holdings = {"isa": [holding("VWRL"), holding("SGLN")]}
    return memory_providers


async def test_sync_writes_everything_and_a_snapshot_per_account(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    run = await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    assert run.status is SyncStatus.SUCCEEDED
    assert run.counts["accounts_inserted"] == 2
    assert run.counts["transactions_inserted"] == 3
    assert run.counts["holdings_inserted"] == 2
    accounts, txns, holdings = await _state(container, user.id)
    assert len(accounts) == 2
    assert len(txns) == 3
    assert len(holdings) == 2
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
        for acct in accounts:
            snaps = await uow.snapshots.find(user.id, acct.id, None, None, PageRequest())
            assert [s.source for s in snaps.items] == [SnapshotSource.INITIAL]
            assert snaps.items[0].balance == acct.balance
    assert stored is not None
    assert stored.status is ConnectionStatus.ACTIVE
    assert stored.last_synced_at is not None
    assert stored.state == {"syncs": 2}  # adapter state persisted after success


async def test_resync_changes_nothing_but_adds_snapshots(container: Container, bank: MemoryProviders) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    before = await _state(container, user.id)
    run = await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
    after = await _state(container, user.id)
    assert run.counts["transactions_inserted"] == 0
    assert run.counts["transactions_unchanged"] == 3
    assert run.counts["accounts_unchanged"] == 2
    assert [t.id for t in before[1]] == [t.id for t in after[1]]
    async with container.uow() as uow:
        snaps = await uow.snapshots.find(user.id, before[0][0].id, None, None, PageRequest())
    assert [s.source for s in snaps.items] == [SnapshotSource.MANUAL, SnapshotSource.INITIAL]


async def test_failed_sync_leaves_data_untouched_and_marks_connection(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    before = await _state(container, user.id)
    bank.transactions["cur"].append(txn("t3"))
    bank.accounts[0].balance = Decimal("1")
    bank.fail_on["fetch_holdings"] = Unavailable("memory bank is down (HTTP 503)")
    run = await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
    after = await _state(container, user.id)
    assert run.status is SyncStatus.FAILED
    assert run.error_type == "provider-unavailable"
    assert [(a.id, a.balance) for a in before[0]] == [(a.id, a.balance) for a in after[0]]
    assert len(after[1]) == 3
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
    assert stored is not None
    assert stored.status is ConnectionStatus.ERROR
    assert stored.last_error == "memory bank is down (HTTP 503)"
    assert stored.state == {"syncs": 2}  # cursor not advanced by the failed run


async def test_auth_error_needs_reauth_and_next_success_recovers(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    bank.fail_on["fetch_accounts"] = ProviderAuthError("memory bank rejected the token")
    run = await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
    assert run.status is SyncStatus.FAILED
    assert stored is not None
    assert stored.status is ConnectionStatus.NEEDS_REAUTH
    del bank.fail_on["fetch_accounts"]
    calls = len(bank.calls)
    with pytest.raises(NeedsReauthorization, match="PATCH"):  # no use asking the provider again
        await container.sync.request(conn.id, user.id, SyncTrigger.MANUAL)
    assert len(bank.calls) == calls
    await container.connections.update(conn.id, user.id, None, {"token": "fake-new-token-for-tests"})
    await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
    assert stored is not None
    assert stored.status is ConnectionStatus.ACTIVE
    assert stored.last_error is None


async def test_unexpected_adapter_crash_is_recorded_not_raised(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    bank.transactions["cur"] = [txn("bad", currency=None)]  # a mapper bug: NOT NULL violated on write
    run = await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    assert run.status is SyncStatus.FAILED
    assert "stored data is unchanged" in (run.error or "")
    assert (await _state(container, user.id))[0] == []


async def test_pending_rows_replaced_so_pending_to_booked_leaves_one(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    bank.replace_pending = True
    bank.transactions = {"cur": [txn("pending-hash-1", status=TransactionStatus.PENDING)]}
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    bank.transactions = {"cur": [txn("booked-42", status=TransactionStatus.SETTLED)]}
    run = await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
    _, txns, _ = await _state(container, user.id)
    assert [(t.provider_transaction_id, t.status) for t in txns] == [("booked-42", TransactionStatus.SETTLED)]
    assert run.counts["transactions_deleted"] == 1


async def test_concurrent_request_returns_the_running_sync(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    first = await container.sync.request(conn.id, user.id, SyncTrigger.MANUAL)
    second = await container.sync.request(conn.id, user.id, SyncTrigger.MANUAL)
    await container.jobs.drain()
    assert first.id == second.id


async def test_sync_keeps_changes_made_while_it_ran(container: Container, bank: MemoryProviders) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    await container.sync.request(conn.id, user.id, SyncTrigger.MANUAL)
    await container.connections.update(conn.id, user.id, "Renamed meanwhile", None)
    await container.jobs.drain()
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
    assert stored is not None
    assert stored.name == "Renamed meanwhile"
    assert stored.status is ConnectionStatus.ACTIVE


async def test_unreadable_credentials_fail_the_run_and_ask_for_reauth(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        conn.credentials = b"not-a-fernet-token"
        await uow.connections.save(conn)
        await uow.commit()
    run = await _sync(container, conn.id, user.id, SyncTrigger.SCHEDULED)
    assert run.status is SyncStatus.FAILED
    assert run.error_type == "credentials-unreadable"
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
        assert await uow.sync_runs.active_for(conn.id) is None  # nothing left stuck
    assert stored is not None
    assert stored.status is ConnectionStatus.NEEDS_REAUTH


async def test_pending_connection_cannot_sync(container: Container, bank: MemoryProviders) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    async with container.uow() as uow:
        conn.status = ConnectionStatus.PENDING
        await uow.connections.save(conn)
        await uow.commit()
    with pytest.raises(Conflict):
        await container.sync.request(conn.id, user.id, SyncTrigger.MANUAL)


async def test_one_running_sync_even_under_concurrent_requests(
    container: Container, bank: MemoryProviders
) -> None:
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    bank.delay = 0.5  # in-process jobs start at once: the sync must still be running meanwhile
    runs = await asyncio.gather(
        *(container.sync.request(conn.id, user.id, SyncTrigger.MANUAL) for _ in range(5)),
        return_exceptions=True,
    )
    await container.jobs.drain()
    ids = {r.id for r in runs if not isinstance(r, BaseException)}
    assert len(ids) == 1
    assert all(isinstance(r, Conflict) for r in runs if isinstance(r, BaseException))
    async with container.uow() as uow:
        stored = await uow.connections.get(conn.id)
    assert stored is not None
    assert stored.status is ConnectionStatus.ACTIVE


async def test_accounts_with_decimal_raw_count_as_unchanged(
    container: Container, bank: MemoryProviders
) -> None:
    bank.accounts = [account("cur", raw={"equity": Decimal("10.50"), "nested": {"qty": Decimal("2")}})]
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    run = await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
    assert run.counts["accounts_unchanged"] == 1
    assert run.counts["accounts_updated"] == 0


async def test_reaper_fails_a_run_whose_job_is_gone(container: Container, bank: MemoryProviders) -> None:
    """A run left running by a stopped process (SQLite: its job died with it; PostgreSQL: no
    job in the queue) is closed as failed, with the reason."""
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    run = SyncRun(user_id=user.id, connection_id=conn.id, trigger=SyncTrigger.SCHEDULED)
    async with container.uow() as uow:
        await uow.sync_runs.add(run)
        await uow.commit()
    reaped = await container.scheduler.reap_stale_runs(grace=timedelta(0))
    assert reaped.runs_failed == 1
    async with container.uow() as uow:
        stored = await uow.sync_runs.get(run.id)
    assert stored is not None
    assert stored.status is SyncStatus.FAILED
    assert "interrupted" in (stored.error or "")


async def test_a_run_the_reaper_closes_as_its_sync_finishes_ends_once(
    container: Container, bank: MemoryProviders
) -> None:
    """PostgreSQL: a worker whose heartbeat was late had its job ended (a newer one waited)
    while its sync still ran, so the reaper finds the run's job gone and closes the run just
    as the sync writes its outcome. The sync had checked that the run was still its own
    (running, its attempt) without locking it: the reaper's close committed in between, then
    the sync overwrote it as succeeded, and both sync.failed and sync.succeeded went out.
    The run's row is locked from that check to the commit: one outcome, one event."""
    if container.settings.is_sqlite:
        pytest.skip("SQLite: the sync takes the database's write lock before it checks the run")
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)  # accounts to hold the sync on
    hook = Webhook(
        user_id=user.id,
        url="https://hooks.example.com/finsync",
        events=["sync.succeeded", "sync.failed"],
        secret=b"not-a-secret",  # never sent: the webhook goes before its deliveries would be
    )
    run = SyncRun(
        user_id=user.id, connection_id=conn.id, trigger=SyncTrigger.SCHEDULED, status=SyncStatus.QUEUED
    )
    async with container.uow() as uow:
        await uow.webhooks.add(hook)
        await uow.sync_runs.add(run)
        await uow.commit()
    job = SyncConnection(connection_id=conn.id, run_id=run.id, provider=conn.provider)  # not queued
    async with container.engine.connect() as holder, container.engine.connect() as probe:
        # Holds the sync between its check of the run and its write of the outcome: its
        # snapshots' foreign keys wait for these rows.
        await holder.execute(
            text("SELECT id FROM accounts WHERE connection_id = :c FOR UPDATE"), {"c": conn.id}
        )
        finishing = asyncio.create_task(container.runner.run(job))
        await until_waiting(probe, "", 1, unless=finishing)
        assert not finishing.done()
        reaping = asyncio.create_task(container.scheduler.reap_stale_runs(grace=timedelta(0)))
        await until_waiting(probe, "UPDATE sync_runs", 1, unless=reaping)  # or it closed the run
        await holder.rollback()
        finished, reaped = await asyncio.wait_for(asyncio.gather(finishing, reaping), timeout=30)
    async with container.uow() as uow:
        stored = await uow.sync_runs.get(run.id)
    async with container.engine.connect() as db:
        events = (
            await db.execute(
                text("SELECT event FROM webhook_deliveries WHERE webhook_id = :h"), {"h": hook.id}
            )
        ).scalars()
        sent = [str(e) for e in events]
        await db.execute(text("DELETE FROM webhooks WHERE id = :h"), {"h": hook.id})  # no delivery jobs
        await db.commit()
    assert stored is not None
    assert finished is not None
    assert (stored.status, sent, reaped.runs_failed) == (SyncStatus.SUCCEEDED, ["sync.succeeded"], 0)


async def test_reaper_keeps_a_run_whose_job_waits(container: Container, bank: MemoryProviders) -> None:
    """PostgreSQL: a queued run whose job waits for a worker is alive, however old."""
    if container.settings.is_sqlite:
        pytest.skip("in-process jobs start at once; the PostgreSQL queue keeps them waiting")
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    run = await container.sync.request(conn.id, user.id, SyncTrigger.MANUAL)
    reaped = await container.scheduler.reap_stale_runs(grace=timedelta(0))
    assert reaped.runs_failed == 0
    async with container.uow() as uow:
        stored = await uow.sync_runs.get(run.id)
    assert stored is not None
    assert stored.status is SyncStatus.QUEUED
    await container.jobs.drain()
    async with container.uow() as uow:
        stored = await uow.sync_runs.get(run.id)
    assert stored is not None
    assert stored.status is SyncStatus.SUCCEEDED


async def test_an_account_listed_twice_is_bad_data_and_changes_nothing(
    container: Container, bank: MemoryProviders
) -> None:
    """A provider that lists one account key twice (e.g. two bank accounts sharing an IBAN and
    currency) must not record two snapshots of it in one sync, nor count its change twice in
    net worth: the sync fails as the provider's bad data, stored data as it was."""
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    bank.accounts = [account("cur", balance=Decimal("1500")), account("cur", balance=Decimal("1500"))]
    run = await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
    assert run.status is SyncStatus.FAILED
    assert run.error_type == "provider-bad-data"
    assert "cur" in (run.error or "")
    accounts, _, _ = await _state(container, user.id)
    current = next(a for a in accounts if a.provider_account_id == "cur")
    assert current.balance == Decimal("1234.56")
    async with container.uow() as uow:
        snaps = await uow.snapshots.find(user.id, current.id, None, None, PageRequest())
        deltas = await uow.analytics.net_worth_deltas(user.id, date(2100, 1, 1))
    assert len(snaps.items) == 1
    assert sum(d for c, _, d in deltas if c == "GBP") == Decimal("1234.56") + Decimal("5000")


async def test_an_account_listed_twice_on_a_first_sync_says_so(
    container: Container, bank: MemoryProviders
) -> None:
    """Not a misleading 'created at the same time, try again' conflict that no retry fixes."""
    bank.accounts = [account("cur"), account("cur")]
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    run = await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    assert run.status is SyncStatus.FAILED
    assert run.error_type == "provider-bad-data"
    assert (await _state(container, user.id))[0] == []


async def test_a_pending_transfer_booked_under_a_new_id_stays_paired(
    container: Container, bank: MemoryProviders
) -> None:
    """A pending leg of an own transfer, paired on one sync and booked under a new id on the
    next: the dropped pending row took its link with it, or the booked row could never pair
    (its counterpart stayed linked to a row that no longer exists) and cash flow counted the
    own transfer as spending."""
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    bank.replace_pending = True
    bank.accounts = [account("cur"), account("sav")]
    inflow = txn("s1", "100.00", subtype=TransactionSubtype.DEPOSIT)
    bank.transactions = {"cur": [txn("p1", "-100.00", status=TransactionStatus.PENDING)], "sav": [inflow]}
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    bank.transactions = {"cur": [txn("b1", "-100.00")], "sav": [inflow]}
    run = await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
    assert run.counts["transactions_deleted"] == 1
    _, txns, _ = await _state(container, user.id)
    ids = {t.provider_transaction_id: t.id for t in txns}
    assert set(ids) == {"b1", "s1"}
    async with container.uow() as uow:
        links = (await uow.transfers.find(user.id, None, PageRequest())).items
    assert [(link.outflow_id, link.inflow_id) for link in links] == [(ids["b1"], ids["s1"])]


async def test_two_writers_of_a_users_two_accounts_at_once_pair_their_legs(
    container: Container, bank: MemoryProviders
) -> None:
    """Two syncs (or imports) at once, one writing the money out of one account, the other the
    money in to another: each pairs its new rows before the other has committed. Pairing waits
    for the user's other pairing to commit, so the second sees the first's leg and links them
    (without it, neither saw the other and the own transfer counted as spending and income)."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL's promise (SQLite has one writer at a time)")
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    bank.accounts = [account("cur"), account("sav")]
    bank.transactions = {"cur": [], "sav": []}
    await _sync(container, conn.id, user.id, SyncTrigger.INITIAL)
    accounts, _, _ = await _state(container, user.id)
    cur, sav = sorted(accounts, key=lambda a: a.provider_account_id)
    floor = id_floor()
    async with container.uow() as first, container.uow() as second, container.engine.connect() as probe:
        await first.transactions.upsert(cur, [txn("out", "-100.00")])
        await second.transactions.upsert(sav, [txn("in", "100.00", subtype=TransactionSubtype.DEPOSIT)])
        await label_new_transactions(first, user.id, [cur.id], floor)
        pairing = asyncio.create_task(label_new_transactions(second, user.id, [sav.id], floor))
        await until_waiting(probe, "", 1, unless=pairing)
        await first.commit()
        await asyncio.wait_for(pairing, timeout=30)
        await second.commit()
    _, txns, _ = await _state(container, user.id)
    ids = {t.provider_transaction_id: t.id for t in txns}
    async with container.uow() as uow:
        links = (await uow.transfers.find(user.id, None, PageRequest())).items
    assert [(link.outflow_id, link.inflow_id) for link in links] == [(ids["out"], ids["in"])]


async def _pairs(container: Container, user_id: UUID) -> set[tuple[str, str]]:
    _, txns, _ = await _state(container, user_id)
    pid = {t.id: t.provider_transaction_id for t in txns}
    async with container.uow() as uow:
        links = (await uow.transfers.find(user_id, None, PageRequest())).items
    return {(pid[link.outflow_id], pid[link.inflow_id]) for link in links}


async def test_a_transfer_leg_a_sync_updates_is_paired_again(
    container: Container, bank: MemoryProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leg whose amount or status a later sync changes (same id): its link was kept, pairing
    -100 with +90 or with a cancelled payment (the own transfer hid real spending from cash
    flow); and a leg that came to match its counterpart was never paired (only rows inserted
    by a sync were), so the own transfer counted as spending and income."""
    # Rows inserted up to a second before a write count as new (id_floor's margin): without
    # the margin, only this sync's rows do, as they would a minute after the last sync.
    monkeypatch.setattr("finsync.application.sync.id_floor", lambda: id_floor(0.0))
    user = await seed_user(container)
    conn = await seed_connection(container, user)
    bank.accounts = [account("cur"), account("sav")]

    def legs(out: str, into: str, **kw: object) -> dict[str, list[Transaction]]:
        inflow = txn("in", into, subtype=TransactionSubtype.DEPOSIT)
        return {"cur": [txn("out", out, **kw)], "sav": [inflow]}  # type: ignore[dict-item]

    async def sync_now() -> None:
        await asyncio.sleep(0.01)  # a later millisecond: the rows written before are older
        run = await _sync(container, conn.id, user.id, SyncTrigger.MANUAL)
        assert run.status is SyncStatus.SUCCEEDED

    bank.transactions = legs("-100.00", "100.00")
    await sync_now()
    assert await _pairs(container, user.id) == {("out", "in")}
    bank.transactions = legs("-100.00", "90.00")  # the inflow's amount corrected
    await sync_now()
    assert await _pairs(container, user.id) == set()
    bank.transactions = legs("-100.00", "100.00")  # and back: it matches again
    await sync_now()
    assert await _pairs(container, user.id) == {("out", "in")}
    bank.transactions = legs("-100.00", "100.00", status=TransactionStatus.CANCELLED)
    await sync_now()
    assert await _pairs(container, user.id) == set()
