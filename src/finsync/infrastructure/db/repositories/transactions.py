"""Transactions: set-based upsert keyed by (account_id, provider_transaction_id)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import fields
from datetime import date
from typing import Any
from uuid import UUID

import uuid_utils
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    TextClause,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.categories import CompiledRules, Labels, Rule, SetBy
from finsync.domain.entities import Account, Transaction, new_id, utcnow
from finsync.domain.enums import TransactionStatus, TransactionSubtype, TransactionType
from finsync.domain.errors import Conflict
from finsync.domain.ports import ListedTransaction, Page, PageRequest, TransactionFilter, WrittenPage
from finsync.domain.records import DeferredTransactions, ProviderTransaction, TransactionBatch, UpsertCounts
from finsync.infrastructure.db import raw
from finsync.infrastructure.db import written as w
from finsync.infrastructure.db.analytics_tables import TransferLinkRow
from finsync.infrastructure.db.cash_flow import mark_written
from finsync.infrastructure.db.mapping import (
    after_values,
    column_text,
    keyset,
    make_page,
    provider_id,
    to_entity,
)
from finsync.infrastructure.db.tables import AccountRow, TransactionRow
from finsync.infrastructure.db.types import json_dumps

transactions = TransactionRow.__table__  # type: ignore[attr-defined]
_PID_MAX: int = transactions.c.provider_transaction_id.type.length
accounts = AccountRow.__table__  # type: ignore[attr-defined]
links = TransferLinkRow.__table__  # type: ignore[attr-defined]

_FIELDS = (
    "type", "subtype", "status", "amount", "currency", "transaction_date", "settlement_date",
    "symbol", "quantity", "unit_price", "fees", "description", "raw",
)  # fmt: skip
# A row as the repository writes it. created_at/updated_at are not in it: PostgreSQL fills
# them from the column defaults (the transaction's time), SQLite from the repository's clock.
_ROW = ("id", "user_id", "account_id", "provider_transaction_id", *_FIELDS, "content_hash")
_PID_AT = _ROW.index("provider_transaction_id")
_STAGED = _ROW[_PID_AT:]  # what an update carries: the id and account are already in the table
# A new row also carries what the user's rules decide (filled in the same pass as the row is
# built, so an import writes each row once); an update never names these user fields.
_LABELS = ("category_id", "category_set_by", "tags", "tags_set_by")
_INSERT = (*_ROW, *_LABELS)
_ROW_END = len(_ROW)
_STAGE_DDL = (  # our own column constants
    "CREATE TEMP TABLE IF NOT EXISTS _transactions_stage ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {', '.join(_STAGED)} FROM transactions WITH NO DATA"
)
_UPDATE_SQL = (  # built from our own column constants, no user input
    f"UPDATE transactions t SET {', '.join(f'{c} = s.{c}' for c in _STAGED[1:])}, "  # noqa: S608
    "updated_at = now() FROM _transactions_stage s "
    "WHERE t.account_id = $1 AND t.provider_transaction_id = s.provider_transaction_id "
    "AND t.content_hash <> s.content_hash RETURNING t.id"
)
_COMPARE_SQL = (  # 1-based positions of the keys stored with the same and with another fingerprint
    "SELECT array_agg(k.i) FILTER (WHERE t.content_hash = k.fingerprint), "
    "array_agg(k.i) FILTER (WHERE t.content_hash <> k.fingerprint) "
    "FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(pid, fingerprint, i) "
    "JOIN transactions t ON t.account_id = $1 AND t.provider_transaction_id = k.pid"
)
_ANY_SQL = "SELECT EXISTS (SELECT 1 FROM transactions WHERE account_id = $1)"
_SQLITE_CHUNK = 5_000
_Positions = tuple[list[int], list[int]]  # of the new keys, of the changed ones
_LIKE_ESCAPE = str.maketrans({"%": r"\%", "_": r"\_", "\\": r"\\"})


def has_tag(tag: str, postgres: bool) -> ColumnElement[bool] | TextClause:
    """Rows whose user tags include ``tag`` (JSONB containment; SQLite's json_each)."""
    if postgres:
        wanted = cast(literal(json_dumps([tag]), String), JSONB)
        return transactions.c.tags.op("@>")(wanted)  # type: ignore[no-any-return]
    return text(
        "EXISTS (SELECT 1 FROM json_each(transactions.tags) WHERE json_each.value = :tag)"
    ).bindparams(tag=tag)


def content_hash(values: tuple[Any, ...]) -> str:
    """Fingerprint of everything a provider can change, so re-syncs skip identical rows.

    ``repr`` is deterministic for the same payload and several times cheaper than JSON.
    """
    return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


def _check_keys(keys: Sequence[tuple[str, str]]) -> None:
    """Ids the table can hold (they are compared before any row is built); fingerprints
    as the store keeps them. In bulk: C-level scans, not a Python test per key."""
    pids = [pid for pid, _ in keys]
    if max(map(len, pids), default=0) > _PID_MAX or "\x00" in "".join(pids):
        for pid in pids:
            provider_id(pid, _PID_MAX, "transaction id")
    if max((len(fingerprint) for _, fingerprint in keys), default=0) > 64:
        raise ValueError("a transaction fingerprint is longer than 64 characters")


_NO_LABELS = (None, None, None, None)


class _Rows:
    """Transactions → rows in ``_INSERT`` order (``_ROW``, then the rules' labels), for one
    account and backend."""

    def __init__(self, account: Account, postgres: bool, rules: Sequence[Rule] = ()) -> None:
        self.user_id, self.account_id = account.user_id, account.id
        # PostgreSQL: uuid_utils' UUIDv7 objects and JSON text go to asyncpg as they are.
        self.new_id: Callable[[], Any] = uuid_utils.uuid7 if postgres else new_id
        self.json = postgres
        # Rules limited to another account never match here: left out once.
        self.rules = CompiledRules(list(rules), account.id)
        self._labelled: dict[tuple[int, ...], tuple[Any, ...]] = {(): _NO_LABELS}

    def labels(self, description: str | None, amount: Any) -> tuple[Any, ...]:
        """What the rules set on a new row: category and tags, each marked as the rules'
        (encoded once per set of matching rules)."""
        key = self.rules.key(self.account_id, description, amount)
        found = self._labelled.get(key)
        if found is None:
            found = self._labelled[key] = self._encoded(self.rules.labels(key))
        return found

    def _encoded(self, found: Labels | None) -> tuple[Any, ...]:
        if found is None:
            return _NO_LABELS
        category = found.category_id
        tags = list(found.tags) or None
        return (
            category,
            None if category is None else SetBy.RULE.value,
            None if tags is None else (json_dumps(tags) if self.json else tags),
            None if tags is None else SetBy.RULE.value,
        )

    def __call__(self, r: ProviderTransaction, fingerprint: str | None = None) -> tuple[Any, ...]:
        """The row; ``fingerprint``: its :meth:`fingerprint`, when the caller has it already."""
        values = self._values(r)
        fingerprint = fingerprint or self._fingerprint(r, values)
        raw = json_dumps(r.raw) if self.json else r.raw
        pid = r.provider_transaction_id
        labels = self.labels(values[11], r.amount) if self.rules else _NO_LABELS
        return (self.new_id(), self.user_id, self.account_id, pid, *values[:-1], raw, fingerprint, *labels)

    def fingerprint(self, r: ProviderTransaction) -> str:
        """What the store keeps to tell a changed row: the provider's, else a content hash."""
        return self._fingerprint(r, None)

    def _fingerprint(self, r: ProviderTransaction, values: tuple[Any, ...] | None) -> str:
        fingerprint = r.fingerprint
        if fingerprint is None or len(fingerprint) > 64:
            fingerprint = content_hash(values or self._values(r))
        return fingerprint

    @staticmethod
    def _values(r: ProviderTransaction) -> tuple[Any, ...]:
        return (
            r.type.value, r.subtype.value, r.status.value, r.amount, r.currency, r.transaction_date,
            r.settlement_date, column_text(r.symbol, 64), r.quantity, r.unit_price, r.fees,
            column_text(r.description), r.raw,
        )  # fmt: skip


async def _yielding(rows: Iterator[tuple[Any, ...]], every: int = 5_000) -> AsyncIterator[tuple[Any, ...]]:
    """``rows``, letting other tasks run every ``every`` rows: mapping a big file's rows
    is CPU work on the event loop, and other requests should not wait for all of it."""
    for count, row in enumerate(rows, 1):
        yield row
        if count % every == 0:
            await asyncio.sleep(0)


_KEYS = [(transactions.c.transaction_date, date), (transactions.c.id, UUID)]
_LISTED = [
    cast(transactions.c.raw, Text).label("raw_json") if f == "raw_json" else transactions.c[f]
    for f in (field.name for field in fields(ListedTransaction))
]


def _filtered(stmt: Select[Any], user_id: UUID, filters: TransactionFilter, postgres: bool) -> Select[Any]:
    """``stmt`` narrowed to the user's transactions matching ``filters``.

    With an account, the rows are found by ``account_id`` alone and the account's owner is
    checked once (an uncorrelated EXISTS, evaluated before the scan): ``user_id = ?`` beside
    ``account_id = ?`` let the planner pick the user's date index and filter it by account
    (slow for a small account among big ones) or AND two bitmaps and sort (with the stale
    statistics right after a bulk import: 180 ms a page). Alone, the account's
    (account_id, transaction_date, id) index answers in key order whatever the statistics."""
    t = transactions.c
    if filters.account_id is not None and not postgres:
        # SQLite walks the whole index range of an account that is not the user's, filtering
        # each row by the EXISTS (26 ms for 200,000 rows); sought by the owned account's id
        # itself, it seeks nothing at all.
        owned_id = select(accounts.c.id).where(
            accounts.c.id == filters.account_id, accounts.c.user_id == user_id
        )
        stmt = stmt.where(t.account_id == owned_id.scalar_subquery())
    elif filters.account_id is not None:
        owned = exists().where(accounts.c.id == filters.account_id, accounts.c.user_id == user_id)
        stmt = stmt.where(t.account_id == filters.account_id, owned)
    else:
        stmt = stmt.where(t.user_id == user_id)
    if filters.date_from is not None:
        stmt = stmt.where(t.transaction_date >= filters.date_from)
    if filters.date_to is not None:
        stmt = stmt.where(t.transaction_date <= filters.date_to)
    for column, value in (
        (t.type, filters.type),
        (t.subtype, filters.subtype),
        (t.status, filters.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value.value)
    if filters.symbol:
        stmt = stmt.where(func.upper(t.symbol) == filters.symbol.upper())
    if filters.text:
        pattern = f"%{filters.text.lower().translate(_LIKE_ESCAPE)}%"
        lower = func.lower if postgres else func.unicode_lower  # SQLite's lower(): ASCII only
        stmt = stmt.where(
            or_(
                lower(t.description).like(pattern, escape="\\"),
                func.lower(t.symbol) == filters.text.lower(),
            )
        )
    if filters.category_ids is not None:
        stmt = stmt.where(t.category_id.in_(filters.category_ids))
    if filters.tag is not None:
        stmt = stmt.where(has_tag(filters.tag, postgres))
    return stmt


def listed_query(user_id: UUID, filters: TransactionFilter, page: PageRequest, postgres: bool) -> Select[Any]:
    """The list endpoints' page query (tests EXPLAIN it)."""
    return keyset(_filtered(select(*_LISTED), user_id, filters, postgres), _KEYS, page, descending=True)


_LISTED_COLUMNS = ", ".join(  # our own column names
    "raw::text AS raw_json" if f.name == "raw_json" else f.name for f in fields(ListedTransaction)
)


# Each field of ``TransactionOut`` as ``api/listing.py`` writes it, built by the database: the
# key, then the value's JSON text (strings escaped by to_json, decimals as fixed-point text,
# dates ISO, timestamps UTC with Z, ``raw`` as stored, tags compact). A test holds it equal,
# byte for byte, to the body that module builds from the same rows.
_OUT: list[tuple[str, w.Kind, bool]] = [  # TransactionOut's fields: column, kind, may be NULL
    ("id", "uuid", False),
    ("account_id", "uuid", False),
    ("provider_transaction_id", "text", False),
    ("type", "plain", False),
    ("subtype", "plain", False),
    ("status", "plain", False),
    ("amount", "plain", False),
    ("currency", "text", False),
    ("transaction_date", "date", False),
    ("settlement_date", "date", True),
    ("symbol", "text", True),
    ("quantity", "plain", True),
    ("unit_price", "plain", True),
    ("fees", "plain", True),
    ("description", "text", True),
    ("raw", "json", False),
    ("created_at", "utc", False),
    ("updated_at", "utc", False),
    ("category_id", "uuid", True),
    ("category_set_by", "plain", True),
    ("tags", "strings", True),
    ("notes", "text", True),
    ("excluded_from_analytics", "boolean", True),
]
_LISTED_JSON = f"transaction_date, id, {w.item(w.fields(_OUT))} AS item"
# SQLite writes the same from what it holds; a page holding a decimal kept with an exponent is
# written by Python instead.
_SQLITE_LISTED_JSON: tuple[ColumnElement[Any], ...] = (
    transactions.c.transaction_date,
    transactions.c.id,
    literal_column(w.sqlite_item(w.fields(_OUT, sqlite=True))).label("item"),
    literal_column(w.sqlite_exponent("amount", "quantity", "unit_price", "fees")).label("exponent"),
)


def listed_sql(
    user_id: UUID, filters: TransactionFilter, page: PageRequest, *, as_json: bool = False
) -> tuple[str, w.Args]:
    """``listed_query`` as PostgreSQL text and its arguments, for asyncpg's prepared
    statements (``raw.fetch``): building and compiling the SQLAlchemy statement cost more CPU
    than the database spent answering it. The same conditions in the same shape as
    ``_filtered`` and ``keyset`` (so the same plans, see there); one SQL text per combination
    of filters, so the connection's statement cache holds a handful. The API tests run every
    filter through this and, on SQLite, through ``listed_query``;
    ``tests/integration/test_read_path.py`` compares the two on PostgreSQL."""
    args = w.Args()

    if filters.account_id is not None:
        account = args(filters.account_id, "::uuid")
        owner = args(user_id, "::uuid")
        owned = f"EXISTS (SELECT 1 FROM accounts WHERE id = {account} AND user_id = {owner})"  # noqa: S608
        where = [f"account_id = {account}", owned]
    else:
        where = [f"user_id = {args(user_id, '::uuid')}"]
    if filters.date_from is not None:
        where.append(f"transaction_date >= {args(filters.date_from, '::date')}")
    if filters.date_to is not None:
        where.append(f"transaction_date <= {args(filters.date_to, '::date')}")
    for column, value in (("type", filters.type), ("subtype", filters.subtype), ("status", filters.status)):
        if value is not None:
            where.append(f"{column} = {args(value.value)}")
    if filters.symbol:
        where.append(f"upper(symbol) = {args(filters.symbol.upper())}")
    if filters.text:
        pattern = args(f"%{filters.text.lower().translate(_LIKE_ESCAPE)}%")
        where.append(
            f"(lower(description) LIKE {pattern} ESCAPE '\\' OR lower(symbol) = {args(filters.text.lower())})"
        )
    if filters.category_ids is not None:
        where.append(f"category_id = ANY({args(list(filters.category_ids), '::uuid[]')})")
    if filters.tag is not None:
        where.append(f"tags @> {args(json_dumps([filters.tag]), '::jsonb')}")
    if page.after is not None:
        day, ident = after_values(page, [date, UUID], transactions.name)
        where.append(f"(transaction_date, id) < ({args(day, '::date')}, {args(ident, '::uuid')})")
    sql = (  # our own column names; every value is an argument
        f"SELECT {_LISTED_JSON if as_json else _LISTED_COLUMNS} FROM transactions "  # noqa: S608
        f"WHERE {' AND '.join(where)} "
        f"ORDER BY transaction_date DESC, id DESC {w.limit(page)}"
    )
    return sql, args


class SqlTransactionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        # Accounts already locked by this repository, and the transaction holding the locks:
        # an account written twice (eager then deferred items) is locked once.
        self._locked: set[UUID] = set()
        self._locked_in: object = None
        # Rows inserted or updated since the last refresh of the table's statistics.
        self.written = 0

    @property
    def _postgres(self) -> bool:
        return self._s.get_bind().dialect.name == "postgresql"

    async def upsert(
        self, account: Account, incoming: Sequence[ProviderTransaction], rules: Sequence[Rule] = ()
    ) -> UpsertCounts:
        """Insert new rows, update rows whose content changed, leave the rest untouched.
        New rows get what ``rules`` decide (changed rows keep their labels)."""
        to_row = _Rows(account, self._postgres, rules)
        # Last occurrence wins: one batch may not touch a row twice.
        chosen = list({r.provider_transaction_id: at for at, r in enumerate(incoming)}.values())
        keys = [(incoming[at].provider_transaction_id, to_row.fingerprint(incoming[at])) for at in chosen]

        def rows_at(positions: list[int]) -> Iterator[tuple[Any, ...]]:
            # Built as they are written (streamed into COPY on PostgreSQL): a big batch's rows
            # and its transactions are never both whole in memory.
            for at in positions:
                yield to_row(incoming[chosen[at]], keys[at][1])

        counts = await self._write(account, keys, rows_at)
        counts.unchanged += len(incoming) - len(chosen)
        return counts

    async def upsert_deferred(
        self, account: Account, group: DeferredTransactions, rules: Sequence[Rule] = ()
    ) -> UpsertCounts:
        """Like ``upsert``, building only the group's new and changed transactions.

        Built items must carry the fingerprint of their key: it is what the store keeps.
        """
        to_row = _Rows(account, self._postgres, rules)

        def rows_at(positions: list[int]) -> Iterator[tuple[Any, ...]]:
            for r in group.build(positions):
                if r.fingerprint is None:
                    raise ValueError("deferred transactions must carry their key's fingerprint")
                yield to_row(r)

        return await self._write(account, group.keys, rows_at)

    async def _write(
        self,
        account: Account,
        keys: Sequence[tuple[str, str]],
        rows_at: Callable[[list[int]], Iterator[tuple[Any, ...]]],
    ) -> UpsertCounts:
        """The one write path: compare the keys with what is stored, then insert the rows at
        the new positions and update those at the changed ones.

        PostgreSQL: the account row is locked first, so an id absent now stays absent until
        commit and new rows stream from ``rows_at`` straight into one COPY, without
        ON CONFLICT: the database ingests rows while the next ones are built, and nothing
        holds the whole batch. SQLite: one upsert of everything not unchanged.
        """
        if not keys:  # nothing to compare or write: no lock, no round trip
            return UpsertCounts()
        _check_keys(keys)
        if not self._postgres:
            new, changed = await self._compare_sqlite(account, keys)
            inserted, updated = await self._upsert_sqlite(list(rows_at(sorted(new + changed))))
        else:
            stored = await self._lock(account.id)
            new, changed = await self._compare_postgres(account, keys, stored)
            inserted = await self._copy(rows_at(new)) if new else 0
            updated = await self._update(account, rows_at(changed)) if changed else []
        self.written += inserted + len(updated)
        if inserted or updated:
            mark_written(self._s, [account.user_id])
        unchanged = len(keys) - len(new) - len(changed)
        return UpsertCounts(inserted=inserted, updated=len(updated), unchanged=unchanged, updated_ids=updated)

    async def _lock(self, account_id: UUID) -> bool | None:
        """Serialise writers of one account until commit (a no-op on SQLite, which has one
        writer at a time). Through the session: it also opens the unit of work's transaction.

        Once per account and transaction, in the same round trip as asking whether the account
        holds transactions yet (returned; None when it was locked before): a multi-account
        import pays one round trip per account for both."""
        transaction = self._s.get_transaction()
        if transaction is not self._locked_in:
            self._locked, self._locked_in = set(), transaction
        if account_id in self._locked:
            return None
        stored = exists().where(transactions.c.account_id == account_id)
        locked = select(stored).select_from(accounts).where(accounts.c.id == account_id).with_for_update()
        row = (await self._s.execute(locked)).first()
        if row is None:
            raise Conflict("the account was deleted while its transactions were being written")
        self._locked.add(account_id)
        self._locked_in = self._s.get_transaction()  # the first statement may have begun it
        return bool(row[0])

    async def _compare_postgres(
        self, account: Account, keys: Sequence[tuple[str, str]], stored: bool | None
    ) -> tuple[list[int], list[int]]:
        """Positions of the new keys and of those stored with another fingerprint, compared on
        the server: two integer arrays come back, not the stored ids. ``stored``: whether the
        account holds transactions, when known."""
        raw = await self._driver()
        if stored is None:
            stored = await raw.fetchval(_ANY_SQL, account.id)
        if not stored:  # a new account: skip the join
            return list(range(len(keys))), []
        pids, fingerprints = [pid for pid, _ in keys], [fp for _, fp in keys]
        same, other = await raw.fetchrow(_COMPARE_SQL, account.id, pids, fingerprints)
        present = bytearray(len(keys))
        for at in (*(same or ()), *(other or ())):
            present[at - 1] = 1
        return [at for at, known in enumerate(present) if not known], sorted(at - 1 for at in other or ())

    async def _compare_sqlite(
        self, account: Account, keys: Sequence[tuple[str, str]]
    ) -> tuple[list[int], list[int]]:
        t = transactions.c
        stored: dict[str, str] = {}
        for start in range(0, len(keys), _SQLITE_CHUNK):  # bound the bound parameters
            chunk = [pid for pid, _ in keys[start : start + _SQLITE_CHUNK]]
            stmt = select(t.provider_transaction_id, t.content_hash).where(
                t.account_id == account.id, t.provider_transaction_id.in_(chunk)
            )
            stored.update((pid, digest) for pid, digest in await self._s.execute(stmt))
        new: list[int] = []
        changed: list[int] = []
        for at, (pid, fingerprint) in enumerate(keys):
            known = stored.get(pid)
            if known is None:
                new.append(at)
            elif known != fingerprint:
                changed.append(at)
        return new, changed

    async def _copy(self, rows: Iterator[tuple[Any, ...]]) -> int:
        raw = await self._driver()
        status = await raw.copy_records_to_table("transactions", records=_yielding(rows), columns=_INSERT)
        return int(status.rsplit(" ", 1)[-1])  # "COPY <rows>"

    async def _update(self, account: Account, rows: Iterator[tuple[Any, ...]]) -> list[UUID]:
        """COPY the changed rows into a transaction-local temporary table, then one UPDATE;
        the ids of the rows it changed."""
        raw = await self._driver()
        await raw.execute(_STAGE_DDL)
        await raw.copy_records_to_table(
            "_transactions_stage", records=(row[_PID_AT:_ROW_END] for row in rows), columns=_STAGED
        )
        updated = [UUID(bytes=row[0].bytes) for row in await raw.fetch(_UPDATE_SQL, account.id)]
        await raw.execute("TRUNCATE _transactions_stage")
        return updated

    async def _upsert_sqlite(self, rows: list[tuple[Any, ...]]) -> tuple[int, list[UUID]]:
        """One prepared upsert, batched by SQLAlchemy's insertmanyvalues.

        Each row carries a fresh id; a returned id equal to it was inserted, any other
        returned id was an update, and rows not returned were unchanged.
        """
        if not rows:
            return 0, []
        now = utcnow()
        params = [dict(zip(_INSERT, row, strict=True), created_at=now, updated_at=now) for row in rows]
        base = sqlite.insert(transactions)
        excluded = base.excluded
        stmt = base.on_conflict_do_update(
            index_elements=["account_id", "provider_transaction_id"],
            set_={**{f: excluded[f] for f in _STAGED[1:]}, "updated_at": now},
            where=transactions.c.content_hash != excluded.content_hash,
        ).returning(transactions.c.id)
        returned = (await self._s.execute(stmt, params)).scalars().all()
        fresh = {row[0] for row in rows}
        updated = [i for i in returned if i not in fresh]
        return len(returned) - len(updated), updated

    async def _driver(self) -> Any:
        """The asyncpg connection under the unit of work's session (its transaction open)."""
        conn = await self._s.connection()
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        assert raw.is_in_transaction(), "statements must run inside the unit of work's transaction"
        return raw

    async def drop_stale_pending(self, account: Account, batch: TransactionBatch) -> int:
        """Pending items are often re-identified by banks; drop stored ones the batch no longer has."""
        if batch.replace_pending_since is None:
            return 0
        keep = batch.provider_ids()
        stmt = delete(transactions).where(
            transactions.c.account_id == account.id,
            transactions.c.status == TransactionStatus.PENDING.value,
            transactions.c.transaction_date >= batch.replace_pending_since,
        )
        if keep:
            stmt = stmt.where(transactions.c.provider_transaction_id.not_in(keep))
        dropped = list((await self._s.execute(stmt.returning(transactions.c.id))).scalars())
        # Their transfer links go with them (there are no foreign keys to cascade): a link left
        # to a dropped row kept its counterpart from pairing with the row that replaced it.
        for start in range(0, len(dropped), _SQLITE_CHUNK):
            chunk = dropped[start : start + _SQLITE_CHUNK]
            await self._s.execute(
                delete(links).where(or_(links.c.outflow_id.in_(chunk), links.c.inflow_id.in_(chunk)))
            )
        mark_written(self._s, [account.user_id])
        return len(dropped)

    async def between(self, account_id: UUID, first: date, last: date) -> list[ProviderTransaction]:
        t = transactions.c
        columns = (t.provider_transaction_id, t.type, t.subtype, t.amount, t.currency, t.transaction_date)
        stmt = select(*columns, t.symbol, t.quantity).where(
            t.account_id == account_id, t.transaction_date >= first, t.transaction_date <= last
        )
        return [
            ProviderTransaction(
                provider_transaction_id=r.provider_transaction_id,
                type=TransactionType(r.type),
                subtype=TransactionSubtype(r.subtype),
                amount=r.amount,
                currency=r.currency,
                transaction_date=r.transaction_date,
                symbol=r.symbol,
                quantity=r.quantity,
            )
            for r in await self._s.execute(stmt)
        ]

    async def get(self, transaction_id: UUID, user_id: UUID) -> Transaction | None:
        stmt = select(transactions).where(
            transactions.c.id == transaction_id, transactions.c.user_id == user_id
        )
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Transaction, row)

    async def find(self, user_id: UUID, filters: TransactionFilter, page: PageRequest) -> Page[Transaction]:
        stmt = keyset(
            _filtered(select(transactions), user_id, filters, self._postgres), _KEYS, page, descending=True
        )
        items = [to_entity(Transaction, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda x: (x.transaction_date, x.id), of=transactions)

    async def listed(
        self, user_id: UUID, filters: TransactionFilter, page: PageRequest
    ) -> Page[ListedTransaction]:
        """The list endpoints' rows: their columns only, ``raw`` as its stored JSON text
        (PostgreSQL reads: straight on asyncpg, see ``listed_sql``)."""
        found = await raw.fetch(self._s, *listed_sql(user_id, filters, page)) if self._postgres else None
        if found is None:
            found = list(await self._s.execute(listed_query(user_id, filters, page, self._postgres)))
        items = [ListedTransaction(*row) for row in found]
        return make_page(items, page, lambda x: (x.transaction_date, x.id), of=transactions)

    async def listed_json(
        self, user_id: UUID, filters: TransactionFilter, page: PageRequest
    ) -> WrittenPage | None:
        """``listed``'s page written as JSON by PostgreSQL in the same statement, all in one
        row: the API process decodes one text per page instead of 23 values per item, and
        writes no JSON of its own. On SQLite, SQLite writes each item in the page's statement.
        None where that does not apply (a PostgreSQL unit of work that is not a request's read,
        a SQLite page holding a decimal kept with an exponent): take ``listed``."""
        if not self._postgres:
            return await self._sqlite_json(user_id, filters, page)
        rows, args = listed_sql(user_id, filters, page, as_json=True)
        return await w.folded(self._s, transactions, rows, args, page, ["transaction_date", "id"])

    async def _sqlite_json(
        self, user_id: UUID, filters: TransactionFilter, page: PageRequest
    ) -> WrittenPage | None:
        """``listed_json`` on SQLite: the same page statement, each item written by SQLite, the
        items joined here; None for a page holding a decimal kept with an exponent."""
        stmt = keyset(
            _filtered(select(*_SQLITE_LISTED_JSON), user_id, filters, False), _KEYS, page, descending=True
        )
        found = (await self._s.execute(stmt)).all()
        shown = make_page(found, page, lambda r: (r.transaction_date, r.id), of=transactions)
        if any(row.exponent for row in shown.items):
            return None
        return WrittenPage(",".join(row.item for row in shown.items), len(shown.items), shown.next_key)

    async def refresh_statistics(self) -> None:
        """Refresh the planner's statistics of the table after a bulk write (PostgreSQL).

        Autovacuum analyses only after a delay (and after 10 % of the table changed): until
        then a freshly filled account looks empty, and its pages were planned for that.
        SKIP_LOCKED: if another session is analysing the table right now, that one will do."""
        self.written = 0
        if self._postgres:
            await self._s.execute(text("ANALYZE (SKIP_LOCKED) transactions"))

    async def count_for(self, account_id: UUID) -> int:
        stmt = select(func.count()).select_from(transactions).where(transactions.c.account_id == account_id)
        return int((await self._s.execute(stmt)).scalar_one())
