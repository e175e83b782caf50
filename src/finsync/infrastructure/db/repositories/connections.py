"""Connections, sync runs and pending authorisation flows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    DateTime,
    and_,
    bindparam,
    case,
    delete,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import AuthFlow, Connection, SyncRun
from finsync.domain.enums import ConnectionStatus, SyncStatus
from finsync.domain.ports import DueConnection, Page, PageRequest, WrittenPage
from finsync.domain.webhooks import EXPIRING_WITHIN, FAILING_AFTER, RATE_LIMITED_CODE, Attention
from finsync.infrastructure.db import raw
from finsync.infrastructure.db import written as w
from finsync.infrastructure.db.analytics_tables import HoldingHistoryRow, TransferLinkRow
from finsync.infrastructure.db.cash_flow import mark_written
from finsync.infrastructure.db.mapping import keyset, make_page, to_entity, to_row
from finsync.infrastructure.db.net_worth import NetWorthDeltas
from finsync.infrastructure.db.repositories.userdata import erase_job_args
from finsync.infrastructure.db.tables import (
    ACTIVE_RUN,
    SCHEDULABLE,
    AccountRow,
    AuthFlowRow,
    BalanceSnapshotRow,
    ConnectionRow,
    HoldingRow,
    IdempotencyKeyRow,
    SyncRunRow,
    TradingSettingsRow,
    TransactionRow,
    WebhookRow,
)

connections = ConnectionRow.__table__  # type: ignore[attr-defined]
runs = SyncRunRow.__table__  # type: ignore[attr-defined]
_RUN_JSON = {  # SyncRunPublic's fields, see db/written.py
    "id": w.quoted("id", nullable=False),
    "connection_id": w.quoted("connection_id", nullable=False),
    "trigger": w.quoted("trigger", nullable=False),
    "status": w.quoted("status", nullable=False),
    "queued_at": w.utc("queued_at", nullable=True),
    "started_at": w.utc("started_at"),
    "finished_at": w.utc("finished_at", nullable=True),
    "counts": w.counts("counts"),
    "warnings": w.strings("warnings"),
    "error": w.text("error"),
    "error_type": w.text("error_type"),
}
flows = AuthFlowRow.__table__  # type: ignore[attr-defined]
idempotency_keys = IdempotencyKeyRow.__table__  # type: ignore[attr-defined]
accounts = AccountRow.__table__  # type: ignore[attr-defined]
links = TransferLinkRow.__table__  # type: ignore[attr-defined]
webhooks = WebhookRow.__table__  # type: ignore[attr-defined]
_ACCOUNT_CHILDREN = (
    HoldingRow.__table__,  # type: ignore[attr-defined]
    HoldingHistoryRow.__table__,  # type: ignore[attr-defined]
    TransactionRow.__table__,  # type: ignore[attr-defined]
    BalanceSnapshotRow.__table__,  # type: ignore[attr-defined]
)


def _attention_rules(now: Any, soon: Any) -> list[tuple[ColumnElement[bool], Attention]]:
    """``finsync.domain.webhooks.attention`` in SQL, rule by rule in its order (keep the two in
    step): ``now`` and ``soon`` (``now`` + EXPIRING_WITHIN) as values or SQL expressions."""
    c = connections.c
    live = c.status.in_([ConnectionStatus.ACTIVE.value, ConnectionStatus.ERROR.value])
    return [
        (
            or_(c.status == ConnectionStatus.NEEDS_REAUTH.value, and_(live, c.expires_at <= now)),
            Attention.NEEDS_REAUTH,
        ),
        (and_(c.status == ConnectionStatus.ERROR.value, c.failure_count >= FAILING_AFTER), Attention.FAILING),
        (and_(live, c.expires_at <= soon), Attention.EXPIRING),
        (and_(live, c.last_error_code == RATE_LIMITED_CODE), Attention.RATE_LIMITED),
    ]


def _needs_attention(now: datetime) -> ColumnElement[bool]:
    """SQL of ``attention(...) is not None``: any of the rules (a NULL expiry matches none)."""
    return or_(*(rule for rule, _ in _attention_rules(now, now + EXPIRING_WITHIN)))


@cache  # one placeholder (the statement's first argument): compiled once
def _connection_json(now: str) -> dict[str, str]:
    """ConnectionPublic's fields (``now``: the statement's argument), see db/written.py; its
    ``attention`` by ``_attention_rules``."""
    at = literal_column(now, DateTime(timezone=True))
    rules = [
        (rule, literal(f'"{value.value}"')) for rule, value in _attention_rules(at, at + EXPIRING_WITHIN)
    ]
    attention = raw.inline(case(*rules, else_=literal("null")))
    return {
        "id": w.quoted("id", nullable=False),
        **{c: w.text(c, nullable=False) for c in ("provider", "name")},
        "status": w.quoted("status", nullable=False),
        "environment": w.text("environment"),
        "expires_at": w.utc("expires_at", nullable=True),
        "attention": attention,
        "last_synced_at": w.utc("last_synced_at", nullable=True),
        "last_error": w.text("last_error"),
        "provider_messages": w.strings_or_null("provider_messages"),
        "sync_interval_minutes": w.number("sync_interval_minutes"),
        "sync_enabled": w.boolean("sync_enabled"),
        "next_sync_at": w.utc("next_sync_at", nullable=True),
        "created_at": w.utc("created_at"),
        "updated_at": w.utc("updated_at"),
    }


class SqlConnectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, connection: Connection) -> None:
        await self._s.execute(insert(connections).values(to_row(connection)))

    async def get(
        self, connection_id: UUID, user_id: UUID | None = None, *, lock: bool = False
    ) -> Connection | None:
        """``lock``: read for writing (``FOR UPDATE`` on PostgreSQL), so that changes made by
        another writer meanwhile (a rename during a sync) wait instead of being overwritten."""
        stmt = select(connections).where(connections.c.id == connection_id)
        if user_id is not None:
            stmt = stmt.where(connections.c.user_id == user_id)
        if lock:
            await self._sqlite_write_lock(connections.c.id == connection_id)
            stmt = stmt.with_for_update()
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Connection, row)

    async def _sqlite_write_lock(self, where: ColumnElement[bool]) -> None:
        """SQLite has no ``FOR UPDATE`` and runs a transaction's reads before its first write
        outside it: a no-op write first takes the database's write lock, so the read that
        follows is current and stays so until commit (a rename during a sync is not lost)."""
        if self._s.get_bind().dialect.name == "sqlite":
            await self._s.execute(update(connections).where(where).values(id=connections.c.id))

    async def find(
        self,
        user_id: UUID,
        page: PageRequest,
        status: ConnectionStatus | None = None,
        attention_at: datetime | None = None,
    ) -> Page[Connection]:
        stmt = select(connections).where(connections.c.user_id == user_id)
        if status is not None:
            stmt = stmt.where(connections.c.status == status.value)
        if attention_at is not None:
            stmt = stmt.where(_needs_attention(attention_at))
        stmt = keyset(stmt, [(connections.c.id, UUID)], page, descending=False)
        items = [to_entity(Connection, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda c: (c.id,), of=connections)

    async def written(self, user_id: UUID, page: PageRequest, now: datetime) -> WrittenPage | None:
        """``find``'s page (no filter) as ``ConnectionPublic`` JSON, ``attention`` as of ``now``;
        see ``db/written.py``."""

        def fields(args: w.Args) -> dict[str, str]:
            return _connection_json(args(now, "::timestamptz"))

        return await w.written(self._s, connections, fields, {"user_id": user_id}, page, descending=False)

    async def save(self, connection: Connection) -> None:
        values = to_row(connection)
        values.pop("id")
        await self._s.execute(update(connections).where(connections.c.id == connection.id).values(values))

    async def delete(self, connection_id: UUID) -> None:
        """Delete the connection and, explicitly, everything under it (no reliance on FK cascades).

        The caller holds the connection's lock (``get(..., lock=True)``); its accounts are locked
        next, as every writer does: an import or sync writing to one of them commits before its
        rows are deleted, instead of leaving transactions behind (they have no FK).
        """
        locked = (  # in id order, like every writer: see SqlAccountRepository.upsert
            select(accounts.c.id)
            .where(accounts.c.connection_id == connection_id)
            .order_by(accounts.c.id)
            .with_for_update()
        )
        account_ids = list((await self._s.execute(locked)).scalars())
        tx = TransactionRow.__table__.c  # type: ignore[attr-defined]
        legs = select(tx.id).where(tx.account_id.in_(account_ids))
        await self._s.execute(
            delete(links).where(or_(links.c.outflow_id.in_(legs), links.c.inflow_id.in_(legs)))
        )
        for table in _ACCOUNT_CHILDREN:
            await self._s.execute(delete(table).where(table.c.account_id.in_(account_ids)))
        await self._s.execute(delete(accounts).where(accounts.c.connection_id == connection_id))
        await self._s.execute(delete(runs).where(runs.c.connection_id == connection_id))
        await self._s.execute(delete(flows).where(flows.c.connection_id == connection_id))
        trading = TradingSettingsRow.__table__  # type: ignore[attr-defined]  # orders stay: the audit trail
        await self._s.execute(delete(trading).where(trading.c.connection_id == connection_id))
        # Keys whose answers name it: a retry runs again rather than replaying deleted rows.
        keys = idempotency_keys.c
        await self._s.execute(delete(idempotency_keys).where(keys.connection_id == connection_id))
        owner = (
            await self._s.execute(select(connections.c.user_id).where(connections.c.id == connection_id))
        ).scalar()
        await self._s.execute(delete(connections).where(connections.c.id == connection_id))
        await erase_job_args(self._s, [connection_id])  # who asked for its syncs
        if owner is not None:
            await NetWorthDeltas(self._s).rebuild(owner)  # its snapshots are gone: recompute
            mark_written(self._s, [owner])  # so are its transactions and links: recomputed at commit

    async def add_or_get(self, connection: Connection) -> Connection:
        """Insert unless the user already has a connection with this provider and identity; return
        the one that is stored, locked for writing. A concurrent insert of the same identity
        waits for the other transaction (PostgreSQL) or the single writer (SQLite), then finds
        its row."""
        dialect = self._s.get_bind().dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(connections)
        stmt = stmt.values(to_row(connection)).on_conflict_do_nothing(
            index_elements=["user_id", "provider", "identity"]
        )
        await self._s.execute(stmt)
        found = await self.by_identity(
            connection.user_id, connection.provider, connection.identity or "", lock=True
        )
        assert found is not None  # inserted, or held by the row that conflicted
        return found

    async def by_identity(
        self, user_id: UUID, provider: str, identity: str, *, lock: bool = False
    ) -> Connection | None:
        stmt = select(connections).where(
            connections.c.user_id == user_id,
            connections.c.provider == provider,
            connections.c.identity == identity,
        )
        if lock:
            await self._sqlite_write_lock(
                (connections.c.user_id == user_id)
                & (connections.c.provider == provider)
                & (connections.c.identity == identity)
            )
            stmt = stmt.with_for_update()
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Connection, row)

    async def expire_lapsed(self, user_id: UUID | None, now: datetime) -> list[Connection]:
        stmt = (
            update(connections)
            .where(connections.c.expires_at <= now, connections.c.status == ConnectionStatus.ACTIVE.value)
            .values(
                status=ConnectionStatus.NEEDS_REAUTH.value,
                last_error="access expired: reconnect with POST /api/v1/connections/{id}/reauthorize",
                last_error_code="access-expired",
                updated_at=now,
            )
            .returning(*connections.c)
        )
        if user_id is not None:
            stmt = stmt.where(connections.c.user_id == user_id)
        return [to_entity(Connection, r) for r in (await self._s.execute(stmt)).mappings()]

    async def expiring(self, now: datetime, within: timedelta, limit: int) -> list[Connection]:
        has_webhook = select(webhooks.c.id).where(webhooks.c.user_id == connections.c.user_id).exists()
        stmt = (
            select(connections)
            .where(
                connections.c.expires_at > now,
                connections.c.expires_at <= now + within,
                connections.c.status.in_([ConnectionStatus.ACTIVE.value, ConnectionStatus.ERROR.value]),
                has_webhook,
            )
            .order_by(connections.c.expires_at)
            .limit(limit)
        )
        return [to_entity(Connection, r) for r in (await self._s.execute(stmt)).mappings()]

    async def claim_due(self, now: datetime, limit: int) -> list[DueConnection]:
        """Seeks the partial index ``ix_connections_due`` (same predicate text): O(due), not O(all).
        ``SKIP LOCKED`` lets ticks of several workers, and syncs holding a row, pass each other."""
        c = connections.c
        stmt = (
            select(c.id, c.user_id, c.provider, c.sync_interval_minutes)
            .where(text(SCHEDULABLE), c.next_sync_at <= now)
            .order_by(c.next_sync_at)
            .limit(limit)
        )
        if self._s.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return [DueConnection(*row) for row in await self._s.execute(stmt)]

    async def reschedule_and_queue(
        self,
        next_at: Sequence[tuple[UUID, datetime | None]],
        runs: Sequence[SyncRun],
        *,
        claimed_at: datetime,
    ) -> list[SyncRun]:
        """A tick's writes for the connections it claimed. On PostgreSQL one statement (the
        ``next_sync_at`` moves ride in a data-modifying CTE of the runs' insert): one round trip
        and one plan instead of two; elsewhere the two writes one after the other.

        The moves repeat the claim's condition (true of every claimed row: the claim locks them),
        so that the planner, which sees a thousand ids, finds the rows through the same partial
        index as the claim: without it a custom plan hash-joined the ids against a sequential
        scan of the whole table, O(all connections) instead of O(due)."""
        if self._s.get_bind().dialect.name != "postgresql" or not _one_kind(runs):
            await self._reschedule(next_at)
            return await SqlSyncRunRepository(self._s).add_many_if_idle(runs)
        moves = {"claimed_at": claimed_at, "moved": [c for c, _ in next_at], "ats": [at for _, at in next_at]}
        result = await self._s.execute(text(_MOVE_AND_INSERT_RUNS), moves | _one_kind_params(runs))
        return _kept(runs, result.scalars())

    async def _reschedule(self, next_at: Sequence[tuple[UUID, datetime | None]]) -> None:
        if not next_at:
            return
        if self._s.get_bind().dialect.name == "postgresql":  # one statement for the whole batch
            await self._s.execute(
                text(
                    "UPDATE connections SET next_sync_at = v.at FROM (SELECT "
                    "unnest(CAST(:ids AS uuid[])) AS id, unnest(CAST(:ats AS timestamptz[])) AS at) v "
                    "WHERE connections.id = v.id"
                ),
                {"ids": [cid for cid, _ in next_at], "ats": [at for _, at in next_at]},
            )
            return
        stmt = (
            update(connections)
            .where(connections.c.id == bindparam("b_id"))
            .values(next_sync_at=bindparam("b_at"))
        )
        conn = await self._s.connection()
        await conn.execute(stmt, [{"b_id": cid, "b_at": at} for cid, at in next_at])


class SqlSyncRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, run: SyncRun) -> None:
        await self._s.execute(insert(runs).values(to_row(run)))

    async def add_if_idle(self, run: SyncRun) -> bool:
        """Insert the run unless the connection already has a queued or running one (atomic)."""
        return bool(await self.add_many_if_idle([run]))

    async def add_many_if_idle(self, items: Sequence[SyncRun]) -> list[SyncRun]:
        if not items:
            return []
        dialect = self._s.get_bind().dialect.name
        if dialect == "postgresql" and _one_kind(items):  # one statement over arrays
            result = await self._s.execute(text(_INSERT_RUNS), _one_kind_params(items))
            return _kept(items, result.scalars())
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(runs)
        stmt = stmt.on_conflict_do_nothing(index_elements=["connection_id"], index_where=text(ACTIVE_RUN))
        # executemany: one cached statement, batched by SQLAlchemy ("insertmanyvalues"), not a
        # thousand-row VALUES construct compiled anew (most of a big tick's cost).
        result = await self._s.execute(stmt.returning(runs.c.id), [to_row(run) for run in items])
        return _kept(items, result.scalars())

    async def save(self, run: SyncRun) -> None:
        values = to_row(run)
        values.pop("id")
        await self._s.execute(update(runs).where(runs.c.id == run.id).values(values))

    async def get(self, run_id: UUID, user_id: UUID | None = None, *, lock: bool = False) -> SyncRun | None:
        """``lock``: ``FOR UPDATE`` on PostgreSQL (SQLite has one writer at a time)."""
        stmt = select(runs).where(runs.c.id == run_id)
        if user_id is not None:
            stmt = stmt.where(runs.c.user_id == user_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(SyncRun, row)

    async def find(self, user_id: UUID, connection_id: UUID, page: PageRequest) -> Page[SyncRun]:
        stmt = select(runs).where(runs.c.user_id == user_id, runs.c.connection_id == connection_id)
        stmt = keyset(stmt, [(runs.c.id, UUID)], page, descending=True)
        items = [to_entity(SyncRun, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda r: (r.id,), of=runs)

    async def written(self, user_id: UUID, connection_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page as ``SyncRunPublic`` JSON, see ``db/written.py``."""
        scope = {"user_id": user_id, "connection_id": connection_id}
        return await w.written(self._s, runs, _RUN_JSON, scope, page, descending=True)

    async def active_for(self, connection_id: UUID) -> SyncRun | None:
        stmt = select(runs).where(runs.c.connection_id == connection_id, text(ACTIVE_RUN))
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(SyncRun, row)

    async def start(self, run_id: UUID, when: datetime) -> SyncRun | None:
        stmt = (
            update(runs)
            .where(runs.c.id == run_id, text(ACTIVE_RUN))
            .values(status=SyncStatus.RUNNING.value, started_at=when, attempts=runs.c.attempts + 1)
            .returning(*runs.c)
        )
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(SyncRun, row)

    async def close_lost(self, run_ids: Sequence[UUID], when: datetime, error: str) -> list[UUID]:
        """A run whose sync is finishing is locked by it (``SyncRunner._still_ours``): this waits,
        then PostgreSQL checks the status again on the committed row, and a run that finished
        meanwhile is not closed (nor returned, so no sync.failed for it)."""
        stmt = (
            update(runs)
            .where(runs.c.id.in_(run_ids), text(ACTIVE_RUN))
            .values(status=SyncStatus.FAILED.value, finished_at=when, error=error, error_type="interrupted")
            .returning(runs.c.id)
        )
        return [UUID(str(i)) for i in (await self._s.execute(stmt)).scalars()]

    async def stale(self, before: datetime, limit: int) -> list[SyncRun]:
        stmt = (
            select(runs)
            .where(text(ACTIVE_RUN), runs.c.started_at < before)
            .order_by(runs.c.started_at)
            .limit(limit)
        )
        return [to_entity(SyncRun, r) for r in (await self._s.execute(stmt)).mappings()]


class SqlAuthFlowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, flow: AuthFlow) -> None:
        await self._s.execute(insert(flows).values(to_row(flow)))

    async def get_by_state_hash(self, state_hash: str) -> AuthFlow | None:
        row = (
            (await self._s.execute(select(flows).where(flows.c.state_hash == state_hash))).mappings().first()
        )
        return None if row is None else to_entity(AuthFlow, row)

    async def claim(self, flow_id: UUID, when: datetime) -> bool:
        """Single use: only the first caller gets True, even under concurrent callbacks."""
        stmt = update(flows).where(flows.c.id == flow_id, flows.c.used_at.is_(None)).values(used_at=when)
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]


# Runs of one kind (``_one_kind``) differ only in id, user and connection: those go as arrays,
# the rest once (asyncpg checks every array element it encodes). The ones inserted come back.
_INSERT_RUNS = (
    "INSERT INTO sync_runs (id, user_id, connection_id, trigger, status, queued_at, started_at, "
    "counts, warnings, attempts) SELECT r.*, :trigger, :status, CAST(:queued AS timestamptz), "
    "CAST(:started AS timestamptz), '{}'::jsonb, '[]'::jsonb, 0 FROM unnest("
    "CAST(:ids AS uuid[]), CAST(:users AS uuid[]), CAST(:connections AS uuid[])) AS r "
    "ON CONFLICT (connection_id) WHERE status IN ('queued', 'running') DO NOTHING RETURNING id"
)
# A tick's writes as one statement: the claimed connections' moves in a data-modifying CTE,
# then its runs.
_MOVE_AND_INSERT_RUNS = "".join(
    (
        "WITH moved AS (UPDATE connections SET next_sync_at = v.at FROM unnest("
        "CAST(:moved AS uuid[]), CAST(:ats AS timestamptz[])) AS v(id, at) WHERE connections.id = v.id AND ",
        SCHEDULABLE,  # the claim's condition, see reschedule_and_queue
        " AND next_sync_at <= :claimed_at) ",
        _INSERT_RUNS,
    )
)


def _one_kind_params(items: Sequence[SyncRun]) -> dict[str, object]:
    first = items[0]
    return {
        "ids": [r.id for r in items],
        "users": [r.user_id for r in items],
        "connections": [r.connection_id for r in items],
        "trigger": first.trigger.value,
        "status": first.status.value,
        "queued": first.queued_at,
        "started": first.started_at,
    }


def _kept(items: Sequence[SyncRun], inserted: Iterable[UUID]) -> list[SyncRun]:
    """The runs an insert kept (the others' connections had an active run)."""
    ids = list(inserted)
    if len(ids) == len(items):  # the usual case, no connection busy: no look-ups
        return list(items)
    kept = set(ids)
    return [run for run in items if run.id in kept]


def _one_kind(items: Sequence[SyncRun]) -> bool:
    """Runs not started yet that share trigger, status and times (a tick's batch)."""
    if not items:
        return False
    first = items[0]
    trigger, status, queued, started = first.trigger, first.status, first.queued_at, first.started_at
    return all(
        r.trigger is trigger
        and r.status is status
        and r.queued_at == queued
        and r.started_at == started
        and _fresh(r)
        for r in items
    )


def _fresh(run: SyncRun) -> bool:
    return not (run.counts or run.warnings or run.error or run.finished_at or run.attempts)
