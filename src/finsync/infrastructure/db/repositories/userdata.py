"""Everything one user owns: streamed out for export, deleted for erasure.

Erasure walks the tables: every table with a ``user_id`` column loses the user's rows,
children first, so a new table keyed by user_id is covered without a change here. Export
is explicit instead: each section names the columns it shows, and every other column of a
user's tables is listed in ``NOT_EXPORTED`` with the reason, so a new column (a secret?)
stays out until someone decides. tests/integration/test_userdata.py holds both to that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    delete,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.ports import ExportSection
from finsync.infrastructure.db.analytics_tables import (
    CategoryRow,
    HoldingHistoryRow,
    RuleRow,
    TransferLinkRow,
    cash_flow_dirty,
)
from finsync.infrastructure.db.cash_flow import lock as cash_flow_lock
from finsync.infrastructure.db.cash_flow import mark_written
from finsync.infrastructure.db.tables import (
    AccountRow,
    ApiTokenRow,
    AuthSessionRow,
    BalanceSnapshotRow,
    ConnectionRow,
    HoldingRow,
    ImportMappingRow,
    OrderEventRow,
    OrderRow,
    SyncRunRow,
    TradingSettingsRow,
    TransactionRow,
    UserRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookRow,
    metadata,
)
from finsync.infrastructure.db.types import ExactDecimal

users: Table = UserRow.__table__  # type: ignore[attr-defined]
connections: Table = ConnectionRow.__table__  # type: ignore[attr-defined]
accounts: Table = AccountRow.__table__  # type: ignore[attr-defined]
holdings: Table = HoldingRow.__table__  # type: ignore[attr-defined]
transactions: Table = TransactionRow.__table__  # type: ignore[attr-defined]
snapshots: Table = BalanceSnapshotRow.__table__  # type: ignore[attr-defined]
runs: Table = SyncRunRow.__table__  # type: ignore[attr-defined]
auth_sessions: Table = AuthSessionRow.__table__  # type: ignore[attr-defined]
categories: Table = CategoryRow.__table__  # type: ignore[attr-defined]
rules: Table = RuleRow.__table__  # type: ignore[attr-defined]
transfer_links: Table = TransferLinkRow.__table__  # type: ignore[attr-defined]
holding_history: Table = HoldingHistoryRow.__table__  # type: ignore[attr-defined]
webhooks: Table = WebhookRow.__table__  # type: ignore[attr-defined]
webhook_deliveries: Table = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]
webhook_attempts: Table = WebhookAttemptRow.__table__  # type: ignore[attr-defined]
import_mappings: Table = ImportMappingRow.__table__  # type: ignore[attr-defined]
trading_settings: Table = TradingSettingsRow.__table__  # type: ignore[attr-defined]
orders: Table = OrderRow.__table__  # type: ignore[attr-defined]
order_events: Table = OrderEventRow.__table__  # type: ignore[attr-defined]
api_tokens: Table = ApiTokenRow.__table__  # type: ignore[attr-defined]


def _all_but(table: Table, *left_out: str) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name not in left_out)


# Export order: parents before children, so a reader meets an account before its transactions.
EXPORTED: dict[str, tuple[Table, tuple[str, ...]]] = {
    "user": (users, _all_but(users, "password_hash", "categories_seeded")),
    "connections": (connections, _all_but(connections, "credentials", "state")),
    "accounts": (accounts, _all_but(accounts)),
    "holdings": (holdings, _all_but(holdings)),
    "transactions": (transactions, _all_but(transactions, "content_hash")),
    "balance_snapshots": (snapshots, _all_but(snapshots)),
    "sync_runs": (runs, _all_but(runs)),
    "sessions": (auth_sessions, _all_but(auth_sessions)),
    "categories": (categories, _all_but(categories)),
    "rules": (rules, _all_but(rules)),
    "transfer_links": (transfer_links, _all_but(transfer_links)),
    "holding_history": (holding_history, _all_but(holding_history)),
    "webhooks": (webhooks, _all_but(webhooks, "secret")),
    "webhook_deliveries": (webhook_deliveries, _all_but(webhook_deliveries, "dedupe_key")),
    "webhook_attempts": (webhook_attempts, _all_but(webhook_attempts)),
    "import_mappings": (import_mappings, _all_but(import_mappings)),
    "trading_settings": (trading_settings, _all_but(trading_settings)),
    "orders": (orders, _all_but(orders, "request_digest")),
    "order_events": (order_events, _all_but(order_events)),
    "api_tokens": (api_tokens, _all_but(api_tokens, "token_hash")),
}
# Tables and columns of a user's data that the export leaves out, and why.
NOT_EXPORTED: dict[str, str] = {
    "users.password_hash": "a secret, and useless outside this server",
    "users.categories_seeded": "bookkeeping: the default categories (exported above) were created",
    "connections.credentials": "provider secrets (encrypted); the user holds the originals",
    "connections.state": "provider sync cursors: internal bookkeeping, not the user's data",
    "transactions.content_hash": "an internal fingerprint for deduplication",
    "refresh_tokens": "login sessions: secrets, meaningless elsewhere",
    "auth_flows": "pending provider authorisations: secrets that expire within minutes",
    "idempotency_keys": "retry bookkeeping kept 24 hours; the answers it replays are exported above",
    "webhooks.secret": "the signing secret (encrypted); shown to the user once, rotatable",
    "webhook_deliveries.dedupe_key": "bookkeeping: an expiry notice is sent once per threshold",
    "orders.request_digest": "bookkeeping: which request an idempotency key named (a digest)",
    "api_tokens.token_hash": "a digest of a secret shown once; useless outside this server",
    "net_worth_deltas": "derived from the balance snapshots exported above (rebuilt from them)",
    "cash_flow_days": "derived from the transactions and transfer links exported above (daily sums)",
    "cash_flow_dirty": "bookkeeping: days whose cash flow sums wait to be recomputed",
    "holding_value_deltas": "derived from the holding history and closes exported above (recomputed"
    " by the database)",
}
# Tables without a user_id column that hold no user's data (reference data, shared caches).
SHARED_TABLES: dict[str, str] = {
    "login_throttle": "failed-login counters keyed by digests of address and email; they expire "
    "within the throttle window",
    "rate_budgets": "providers' rate-limit windows per provider account (digests, send times only)",
    "fx_rates": "public reference rates (ECB and other sources), shared by every user",
    "instruments": "securities and their symbols at price sources, shared by every user",
    "prices": "public daily closes of instruments, shared by every user",
}
# Arguments of queued jobs that are a user's data, by job kind: the job queue keeps them
# (PostgreSQL: procrastinate_jobs keeps finished jobs until an operator prunes them), so
# erasure strips them from the jobs of the user's connections. Every other argument of every
# job type is an id or is declared in KEPT_JOB_ARGS (tests/integration/test_userdata.py).
ERASED_JOB_ARGS: dict[str, tuple[str, ...]] = {
    "sync_connection": ("present_ip", "present_user_agent"),  # the person who asked for the sync
}
KEPT_JOB_ARGS: dict[str, str] = {
    "sync_connection.provider": "the connection's provider slug: nobody's data",
}
# Erased job arguments, from the jobs of the user's connections (jsonb minus text[]).
_ERASE_JOB_ARGS = text(
    "UPDATE procrastinate_jobs SET args = args - :names "
    "WHERE task_name = :kind AND args ->> 'connection_id' = ANY(:connections)"
).bindparams(bindparam("names", type_=ARRAY(Text)), bindparam("connections", type_=ARRAY(Text)))


async def erase_job_args(session: AsyncSession, connection_ids: Sequence[UUID]) -> None:
    """PostgreSQL: strip ``ERASED_JOB_ARGS`` from the job queue's jobs (finished ones too) of
    these connections, deleted with their user or on their own. SQLite's in-process queue keeps
    no job once it has run."""
    if not connection_ids or session.get_bind().dialect.name != "postgresql":
        return
    if (await session.execute(text("SELECT to_regclass('procrastinate_jobs')"))).scalar() is None:
        return  # a database whose job queue is not installed (finsync migrate installs it)
    ids = [str(i) for i in connection_ids]
    for kind, names in ERASED_JOB_ARGS.items():
        await session.execute(_ERASE_JOB_ARGS, {"names": list(names), "kind": kind, "connections": ids})


# Export order where an index serves it better than the id (ix_transactions_user_date_id).
_ORDER = {"transactions": ("transaction_date", "id"), "trading_settings": ("connection_id",)}


def _as_exported(column: Column[Any], postgres: bool) -> ColumnElement[Any]:
    """JSON and money leave the database as text, exactly as stored, and go out unparsed;
    PostgreSQL also renders UUIDs: building millions of Decimals and dicts only to print them
    again would be most of an export's work."""
    money_or_json = isinstance(column.type, ExactDecimal | JSON)
    if money_or_json or (postgres and isinstance(column.type, Uuid)):
        return (cast(column, Text) if postgres else type_coerce(column, Text)).label(column.name)
    return column


class SqlUserDataRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    def sections(self) -> Sequence[ExportSection]:
        return [
            ExportSection(
                name,
                columns,
                single=table is users,
                json_fields=frozenset(c for c in columns if isinstance(table.c[c].type, JSON)),
            )
            for name, (table, columns) in EXPORTED.items()
        ]

    async def freeze(self) -> None:
        """PostgreSQL: one REPEATABLE READ, read-only transaction, so rows a sync writes meanwhile
        are all in or all out. SQLite (WAL): an explicit read transaction pins one snapshot."""
        if self._s.get_bind().dialect.name == "postgresql":
            await self._s.connection(
                execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            )
        else:
            await self._s.execute(text("BEGIN"))

    async def export(
        self, user_id: UUID, section: ExportSection, batch: int
    ) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """One query per section through a server-side cursor (PostgreSQL; ``fetchmany`` on
        SQLite), in index order: memory holds one batch whatever the history's size, and the
        cursor's fast-start plan walks the index instead of sorting the user's rows."""
        table, _ = EXPORTED[section.name]
        postgres = self._s.get_bind().dialect.name == "postgresql"
        owner = table.c.id if table is users else table.c.user_id
        stmt = (
            select(*(_as_exported(table.c[name], postgres) for name in section.fields))
            .where(owner == user_id)
            .order_by(*(table.c[name] for name in _ORDER.get(table.name, ("id",))))
            .execution_options(yield_per=batch)
        )
        result = await self._s.stream(stmt)
        async for rows in result.partitions(batch):
            yield rows

    async def erase(self, user_id: UUID) -> dict[str, int]:
        """Delete the user's rows in every table keyed by user_id, then the user.

        Like every writer (and SqlConnectionRepository.delete), the user's accounts are locked
        first, in id order: an import or sync writing into them commits before we delete, so
        none of its transactions (which have no foreign key) is left behind. Then the user row:
        an insert that references the user (a new connection, account, snapshot or run) waits
        for us and then fails on its foreign key, so nothing of it is written.
        """
        locked = select(accounts.c.id).where(accounts.c.user_id == user_id).order_by(accounts.c.id)
        await self._s.execute(locked.with_for_update())
        await self._s.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())
        owned = select(connections.c.id).where(connections.c.user_id == user_id)
        await erase_job_args(self._s, list((await self._s.execute(owned)).scalars()))
        deleted: dict[str, int] = {}
        # Cash flow's marks: deleting the transactions below marks their days again; the unit of
        # work's recomputation at commit takes every mark of the user (and finds no transaction).
        mark_written(self._s, [user_id])
        await cash_flow_lock(self._s, user_id)
        for table in reversed(metadata.sorted_tables):  # children before parents
            if "user_id" in table.c and table is not cash_flow_dirty:
                result = await self._s.execute(delete(table).where(table.c.user_id == user_id))
                deleted[table.name] = int(result.rowcount)  # type: ignore[attr-defined]
        result = await self._s.execute(delete(users).where(users.c.id == user_id))
        deleted["users"] = int(result.rowcount)  # type: ignore[attr-defined]
        return deleted
