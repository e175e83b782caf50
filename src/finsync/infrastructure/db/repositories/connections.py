"""Connections, sync runs and pending authorisation flows."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.entities import AuthFlow, Connection, SyncRun
from finsync.domain.enums import ConnectionStatus
from finsync.domain.ports import Page, PageRequest
from finsync.infrastructure.db.mapping import keyset, make_page, to_entity, to_row
from finsync.infrastructure.db.tables import (
    AccountRow,
    AuthFlowRow,
    BalanceSnapshotRow,
    ConnectionRow,
    HoldingRow,
    SyncRunRow,
    TransactionRow,
)

connections = ConnectionRow.__table__  # type: ignore[attr-defined]
runs = SyncRunRow.__table__  # type: ignore[attr-defined]
flows = AuthFlowRow.__table__  # type: ignore[attr-defined]
accounts = AccountRow.__table__  # type: ignore[attr-defined]
_ACCOUNT_CHILDREN = (
    HoldingRow.__table__,  # type: ignore[attr-defined]
    TransactionRow.__table__,  # type: ignore[attr-defined]
    BalanceSnapshotRow.__table__,  # type: ignore[attr-defined]
)


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
            stmt = stmt.with_for_update()
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Connection, row)

    async def find(
        self, user_id: UUID, page: PageRequest, status: ConnectionStatus | None = None
    ) -> Page[Connection]:
        stmt = select(connections).where(connections.c.user_id == user_id)
        if status is not None:
            stmt = stmt.where(connections.c.status == status.value)
        stmt = keyset(stmt, [(connections.c.id, UUID)], page, descending=False)
        items = [to_entity(Connection, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda c: (c.id,))

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
        for table in _ACCOUNT_CHILDREN:
            await self._s.execute(delete(table).where(table.c.account_id.in_(account_ids)))
        await self._s.execute(delete(accounts).where(accounts.c.connection_id == connection_id))
        await self._s.execute(delete(runs).where(runs.c.connection_id == connection_id))
        await self._s.execute(delete(flows).where(flows.c.connection_id == connection_id))
        await self._s.execute(delete(connections).where(connections.c.id == connection_id))

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
            stmt = stmt.with_for_update()
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Connection, row)

    async def expire_lapsed(self, user_id: UUID | None, now: datetime) -> int:
        stmt = (
            update(connections)
            .where(connections.c.expires_at <= now, connections.c.status == ConnectionStatus.ACTIVE.value)
            .values(
                status=ConnectionStatus.NEEDS_REAUTH.value,
                last_error="access expired: reconnect with POST /api/v1/connections/{id}/reauthorize",
                updated_at=now,
            )
        )
        if user_id is not None:
            stmt = stmt.where(connections.c.user_id == user_id)
        return int((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]


class SqlSyncRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, run: SyncRun) -> None:
        await self._s.execute(insert(runs).values(to_row(run)))

    async def add_if_idle(self, run: SyncRun) -> bool:
        """Insert a running run unless one is already running for the connection (atomic)."""
        dialect = self._s.get_bind().dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(runs).values(to_row(run))
        stmt = stmt.on_conflict_do_nothing(
            index_elements=["connection_id"], index_where=runs.c.status == "running"
        )
        return bool((await self._s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def save(self, run: SyncRun) -> None:
        values = to_row(run)
        values.pop("id")
        await self._s.execute(update(runs).where(runs.c.id == run.id).values(values))

    async def get(self, run_id: UUID, user_id: UUID | None = None) -> SyncRun | None:
        stmt = select(runs).where(runs.c.id == run_id)
        if user_id is not None:
            stmt = stmt.where(runs.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(SyncRun, row)

    async def find(self, user_id: UUID, connection_id: UUID, page: PageRequest) -> Page[SyncRun]:
        stmt = select(runs).where(runs.c.user_id == user_id, runs.c.connection_id == connection_id)
        stmt = keyset(stmt, [(runs.c.id, UUID)], page, descending=True)
        items = [to_entity(SyncRun, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda r: (r.id,))

    async def running_for(self, connection_id: UUID) -> SyncRun | None:
        stmt = select(runs).where(runs.c.connection_id == connection_id, runs.c.status == "running")
        row = (await self._s.execute(stmt.order_by(runs.c.id.desc()))).mappings().first()
        return None if row is None else to_entity(SyncRun, row)

    async def close_interrupted(self, when: datetime) -> int:
        """Mark every 'running' run failed (called at start-up: no job of this process runs yet)."""
        stmt = (
            update(runs)
            .where(runs.c.status == "running")
            .values(
                status="failed", finished_at=when, error="interrupted: the service stopped during this run"
            )
        )
        result = await self._s.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]


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
