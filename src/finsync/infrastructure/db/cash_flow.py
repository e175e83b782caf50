"""Cash flow's daily sums (``cash_flow_days``), kept in step with every write by the database.

`GET /analytics/cash-flow` over ten years of a million transactions spent ~1 s of CPU
scanning and grouping them (2-4 s on the shared machine); the daily sums per category and
per account are a few percent of that many rows. They are derived data with one rule:

* **Marking** is the database's job: triggers on ``transactions`` and ``transfer_links``
  add the (user, day) of every row a statement inserts, updates or deletes (both its old
  and new day; a link marks the days of its two legs) to ``cash_flow_dirty``. No write
  path can forget it — COPY, ``UPDATE … FROM``, rules, deletions of accounts,
  connections and users all fire them. (PostgreSQL: one statement-level trigger per event
  reading the transition tables; SQLite: row triggers.)
* **Recomputing** the marked days (``refresh``) runs in the writer's own transaction just
  before the unit of work commits, when a repository said it wrote transactions or links
  (``mark_written``): the days' sums are deleted and recomputed from the transactions.
* **Reading** adds the sums of the days that are not marked and, for days still marked
  (a write that did not refresh, a bulk load), the transactions themselves: the answer
  never depends on the refresh having run.

Concurrency (PostgreSQL): a mark is keyed by the writing transaction's id too, so two
writers never wait on each other's marks. Recomputations of one user are serialised by a
transaction-scoped advisory lock taken just before the commit, and each takes the marks it
can see and recomputes exactly those days: the last writer to commit recomputes after the
others' commits and sees their rows. Marks of a transaction that has not committed are invisible
to others and recomputed by that transaction itself.

Beware: a SQLite migration that rebuilds ``transactions`` or ``transfer_links`` (Alembic
batch mode copies the table) drops their triggers; it must create them again
(``SQLITE_TRIGGERS``). ``tests/integration/test_migrations.py`` checks they exist at head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.enums import TransactionStatus, TransactionType
from finsync.infrastructure.db.triggers import EVENTS, statement_triggers

WRITTEN = "cash_flow_written"  # the session.info key ``mark_written`` sets
# Grouping codes of ``cash_flow_days``, and its key of "no category" (the key is in the primary key).
BY_CATEGORY, BY_ACCOUNT = "c", "a"
NO_KEY = UUID(int=0)
# Distinguishes our advisory locks from the registration lock (users.py) and others.
_LOCK_CLASS = 0x63666C77  # "cflw"

# The transactions cash flow counts (besides the date range and the transfer legs).
COUNTED = (
    f"t.status <> '{TransactionStatus.CANCELLED.value}' AND t.type <> '{TransactionType.TRADE.value}' "
    "AND (t.excluded_from_analytics IS NULL OR t.excluded_from_analytics = :false)"
)
# Not a leg of a live own-transfer link. PostgreSQL: two anti-joins, which a parallel scan
# can run; SQLite: one ephemeral index of the live legs, probed per row.
PG_NOT_LINKED = (
    "NOT EXISTS (SELECT 1 FROM transfer_links l WHERE l.user_id = :user_id "
    "AND l.status <> 'rejected' AND l.outflow_id = t.id) "
    "AND NOT EXISTS (SELECT 1 FROM transfer_links l WHERE l.user_id = :user_id "
    "AND l.status <> 'rejected' AND l.inflow_id = t.id)"
)
SQLITE_NOT_LINKED = (
    "t.id NOT IN (SELECT outflow_id FROM transfer_links WHERE user_id = :user_id "
    "AND status <> 'rejected' UNION ALL SELECT inflow_id FROM transfer_links "
    "WHERE user_id = :user_id AND status <> 'rejected')"
)

_PG_MARK_FUNCTION = """
CREATE OR REPLACE FUNCTION cash_flow_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'transactions' THEN
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO cash_flow_dirty (user_id, day, writer)
            SELECT DISTINCT user_id, transaction_date, txid_current() FROM new_rows
            ON CONFLICT DO NOTHING;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO cash_flow_dirty (user_id, day, writer)
            SELECT DISTINCT o.user_id, o.transaction_date, txid_current() FROM old_rows o
            ON CONFLICT DO NOTHING;
        END IF;
    ELSE
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO cash_flow_dirty (user_id, day, writer)
            SELECT t.user_id, t.transaction_date, txid_current()
            FROM new_rows l JOIN transactions t ON t.id = l.outflow_id
            UNION SELECT t.user_id, t.transaction_date, txid_current()
            FROM new_rows l JOIN transactions t ON t.id = l.inflow_id
            ON CONFLICT DO NOTHING;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO cash_flow_dirty (user_id, day, writer)
            SELECT t.user_id, t.transaction_date, txid_current()
            FROM old_rows l JOIN transactions t ON t.id = l.outflow_id
            UNION SELECT t.user_id, t.transaction_date, txid_current()
            FROM old_rows l JOIN transactions t ON t.id = l.inflow_id
            ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    RETURN NULL;
END $$
"""


PG_TRIGGERS = [
    _PG_MARK_FUNCTION,
    *(
        statement
        for t in ("transactions", "transfer_links")
        for statement in statement_triggers(t, "cash_flow", "cash_flow_mark()")
    ),
]
# Not INSERT OR IGNORE: inside a trigger, the conflict clause of the statement that fired it
# wins (a sync's upsert would fail on a day marked twice), so a mark is inserted only if absent.
_ABSENT = (
    "NOT EXISTS (SELECT 1 FROM cash_flow_dirty d WHERE d.user_id = {u} AND d.day = {d} AND d.writer = 0)"
)
_MARK_ROW = (
    "INSERT INTO cash_flow_dirty (user_id, day) SELECT {r}.user_id, {r}.transaction_date WHERE "
    + _ABSENT.format(u="{r}.user_id", d="{r}.transaction_date")
    + ";"
)
_MARK_LEGS = (
    "INSERT INTO cash_flow_dirty (user_id, day) SELECT DISTINCT t.user_id, t.transaction_date"  # noqa: S608
    " FROM transactions t WHERE t.id IN ({r}.outflow_id, {r}.inflow_id) AND "
    + _ABSENT.format(u="t.user_id", d="t.transaction_date")
    + ";"
)
SQLITE_TRIGGERS = [
    "CREATE TRIGGER transactions_cash_flow_insert AFTER INSERT ON transactions BEGIN "
    f"{_MARK_ROW.format(r='NEW')} END",
    "CREATE TRIGGER transactions_cash_flow_update AFTER UPDATE ON transactions BEGIN "
    f"{_MARK_ROW.format(r='OLD')} {_MARK_ROW.format(r='NEW')} END",
    "CREATE TRIGGER transactions_cash_flow_delete AFTER DELETE ON transactions BEGIN "
    f"{_MARK_ROW.format(r='OLD')} END",
    "CREATE TRIGGER transfer_links_cash_flow_insert AFTER INSERT ON transfer_links BEGIN "
    f"{_MARK_LEGS.format(r='NEW')} END",
    "CREATE TRIGGER transfer_links_cash_flow_update AFTER UPDATE ON transfer_links BEGIN "
    f"{_MARK_LEGS.format(r='OLD')} {_MARK_LEGS.format(r='NEW')} END",
    "CREATE TRIGGER transfer_links_cash_flow_delete AFTER DELETE ON transfer_links BEGIN "
    f"{_MARK_LEGS.format(r='OLD')} END",
]
TRIGGER_NAMES = [f"{t}_cash_flow_{e}" for t in ("transactions", "transfer_links") for e in EVENTS]

# Under the user's advisory lock: take the user's marks, delete those days' sums, and insert
# them again from the transactions, per category and per account. (Three statements: in one,
# with data-modifying CTEs, the insert may meet the rows the delete has not removed yet.) A
# writer that committed meanwhile without recomputing left its own marks: still marked.
_PG_TAKE = (
    "WITH gone AS (DELETE FROM cash_flow_dirty WHERE user_id = :user_id RETURNING day)"
    " SELECT DISTINCT day FROM gone"
)
_PG_DELETE = "DELETE FROM cash_flow_days WHERE user_id = :user_id AND day = ANY(CAST(:days AS date[]))"
_PG_INSERT = (
    "WITH r AS MATERIALIZED (SELECT t.transaction_date AS day, t.currency, t.category_id, t.account_id,"  # noqa: S608
    " t.amount FROM transactions t WHERE t.user_id = :user_id"
    f" AND t.transaction_date = ANY(CAST(:days AS date[])) AND {COUNTED} AND {PG_NOT_LINKED}) "
    "INSERT INTO cash_flow_days (user_id, grouping, key, day, currency, income, spending, count) "
    f"SELECT CAST(:user_id AS uuid), :by_category, COALESCE(category_id, '{NO_KEY}'), day, currency, {{sums}}"
    " FROM r GROUP BY category_id, day, currency "
    "UNION ALL "
    "SELECT CAST(:user_id AS uuid), :by_account, account_id, day, currency, {sums}"
    " FROM r GROUP BY account_id, day, currency"
).format(
    sums="COALESCE(SUM(amount) FILTER (WHERE amount > 0), 0),"
    " COALESCE(SUM(amount) FILTER (WHERE amount < 0), 0), COUNT(*)"
)
_SQLITE_ROWS = (
    "SELECT t.transaction_date, t.currency, t.category_id, t.account_id, t.amount FROM transactions t"  # noqa: S608
    " WHERE t.user_id = :user_id"
    " AND t.transaction_date IN (SELECT day FROM cash_flow_dirty WHERE user_id = :user_id)"
    f" AND {COUNTED} AND {SQLITE_NOT_LINKED}"
)
_INSERT = (
    "INSERT INTO cash_flow_days (user_id, grouping, key, day, currency, income, spending, count)"
    " VALUES (:user_id, :grouping, :key, :day, :currency, :income, :spending, :count)"
)


def daily_sums(rows: Iterable[Sequence[Any]], no_key: Any = NO_KEY.hex) -> list[dict[str, Any]]:
    """(day, currency, category_id, account_id, amount) → the rows of ``cash_flow_days``
    (without ``user_id``), summed exactly (SQLite stores money as TEXT, and ids as hex)."""
    sums: dict[tuple[str, Any, Any, str], list[Any]] = {}
    for day, currency, category_id, account_id, amount in rows:
        value = Decimal(str(amount))
        for grouping, key in ((BY_CATEGORY, category_id or no_key), (BY_ACCOUNT, account_id)):
            slot = sums.setdefault((grouping, key, day, currency), [Decimal(0), Decimal(0), 0])
            if value > 0:
                slot[0] += value
            elif value < 0:
                slot[1] += value
            slot[2] += 1
    return [
        {"grouping": g, "key": k, "day": d, "currency": c, "income": str(i), "spending": str(s), "count": n}
        for (g, k, d, c), (i, s, n) in sums.items()
    ]


def mark_written(session: AsyncSession, user_ids: Iterable[Any]) -> None:
    """Repositories that write transactions or transfer links of these users call this: the
    unit of work recomputes the users' marked days before it commits."""
    session.info.setdefault(WRITTEN, set()).update(user_ids)


async def refresh(session: AsyncSession) -> int:
    """Recompute the days marked in ``cash_flow_dirty`` of the users ``mark_written`` named,
    in the session's transaction. Returns how many (user, day) marks were taken."""
    users: set[Any] = session.info.pop(WRITTEN, set())
    postgres = session.get_bind().dialect.name == "postgresql"
    taken = 0
    for user_id in sorted(users, key=str):  # one order: two refreshers never wait on each other in a cycle
        if postgres:
            await lock(session, user_id)
            days = list((await session.execute(text(_PG_TAKE), {"user_id": user_id})).scalars())
            if days:
                await session.execute(text(_PG_DELETE), {"user_id": user_id, "days": days})
                await session.execute(text(_PG_INSERT), {**_pg_params(user_id), "days": days})
            taken += len(days)
        else:
            taken += await _refresh_sqlite(session, user_id)
    return taken


async def lock(session: AsyncSession, user_id: Any) -> None:
    """PostgreSQL: serialise the recomputations of one user's sums until commit (a no-op on
    SQLite, which has one writer at a time). Also taken by the erasure of a user before it
    deletes their sums, so it never holds rows a recomputation waits for while it waits."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:cls, hashtext(CAST(CAST(:user_id AS uuid) AS text)))"),
            {"cls": _LOCK_CLASS, "user_id": user_id},
        )


def _pg_params(user_id: Any) -> dict[str, Any]:
    return {"user_id": user_id, "false": False, "by_category": BY_CATEGORY, "by_account": BY_ACCOUNT}


async def _refresh_sqlite(session: AsyncSession, user_id: Any) -> int:
    user_id = user_id.hex if isinstance(user_id, UUID) else user_id  # as SQLite stores it
    params = {"user_id": user_id, "false": False}
    rows = (await session.execute(text(_SQLITE_ROWS), params)).all()
    await session.execute(
        text(
            "DELETE FROM cash_flow_days WHERE user_id = :user_id"
            " AND day IN (SELECT day FROM cash_flow_dirty WHERE user_id = :user_id)"
        ),
        params,
    )
    values = [{"user_id": user_id, **row} for row in daily_sums(rows)]
    if values:
        await session.execute(text(_INSERT), values)
    result = await session.execute(text("DELETE FROM cash_flow_dirty WHERE user_id = :user_id"), params)
    return int(result.rowcount)  # type: ignore[attr-defined]


def backfill(connection: Connection) -> None:
    """The migration's: every day with transactions, computed as a write would."""
    connection.execute(
        text(
            "INSERT INTO cash_flow_dirty (user_id, day, writer)"
            " SELECT DISTINCT user_id, transaction_date, 0 FROM transactions"
        )
    )
    users = connection.execute(text("SELECT DISTINCT user_id FROM cash_flow_dirty")).scalars().all()
    postgres = connection.dialect.name == "postgresql"
    for user_id in users:
        if postgres:
            days = list(connection.execute(text(_PG_TAKE), {"user_id": user_id}).scalars())
            connection.execute(text(_PG_INSERT), {**_pg_params(user_id), "days": days})
            continue
        params = {"user_id": user_id, "false": False}
        rows = connection.execute(text(_SQLITE_ROWS), params)
        values = [{"user_id": user_id, **row} for row in daily_sums(rows)]
        if values:
            connection.execute(text(_INSERT), values)
        connection.execute(text("DELETE FROM cash_flow_dirty WHERE user_id = :user_id"), params)
