"""Pages written as JSON by PostgreSQL: the list's items in one row of one statement.

Through Python each item of a page was a row decoded, an entity built, a response model
validated and serialised: per item, more CPU than the database spent finding it. Here the
page statement writes each item's JSON itself (the field writers below), gathers the items
in one array and gives the last item's key for the next cursor, so the API process decodes
one row a page, joins its texts and adds nothing but the cursor. Only for reads on
PostgreSQL (``raw.fetch``); None otherwise, and the caller takes its usual path. The
``sqlite_*`` writers below do the same for SQLite's transaction pages
(``SqlTransactionRepository.listed_json``).

Each list's fields mirror its response model, in its order, written as the API writes
values everywhere (``api/wire.py``): strings escaped by ``to_json``, uuids and enums as their
text, decimals as ``numeric``'s fixed-point text, timestamps UTC with ``Z`` and microseconds
only when there are any, dates ISO. Tests hold every such page byte-equal to the body
FastAPI writes through the response model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal
from uuid import UUID

import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.ports import PageRequest, SessionCheck, WrittenPage
from finsync.infrastructure.db import live_session, raw
from finsync.infrastructure.db.mapping import after_values, make_page, next_key

# Each writer below gives one or more arguments of concat(), which writes every argument as
# its text: a uuid as str(UUID) does, a numeric as fixed-point text. A column that may be NULL
# needs its 'null' spelled out (concat() drops a NULL argument).


def text(column: str, nullable: bool = True) -> str:
    """Any text, escaped as JSON (also a date: to_json writes ISO whatever DateStyle says)."""
    return f"COALESCE(to_json({column})::text, 'null')" if nullable else f"to_json({column})"


def quoted(column: str, nullable: bool = True) -> str:
    """A value whose text needs no escaping (a uuid, a numeric, one of our enums' values)."""
    return f"""COALESCE('"' || {column} || '"', 'null')""" if nullable else f"""'"', {column}, '"'"""


def decimal_in_json(value: str) -> str:
    """A decimal held as text inside JSON (``str(Decimal)``: a fill's figures, a conversion's
    rate) as ``wire.decimal_text`` writes it: ``numeric``'s fixed-point text, but with the sign
    of a negative zero, which ``numeric`` drops (``-0.00`` stays ``-0.00``). NULL for NULL."""
    number = f"({value})::numeric"
    return f"(CASE WHEN ltrim({value}) LIKE '-%' AND {number} = 0 THEN '-' ELSE '' END || {number})"


def _utc_text(column: str) -> str:
    at = f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    return f"replace({at}, '.000000', '')"


def utc(column: str, nullable: bool = False) -> str:
    """As ``wire.utc_text`` writes a timestamp: microseconds only when there are any, then Z."""
    if nullable:
        return f"""COALESCE('"' || {_utc_text(column)} || 'Z"', 'null')"""
    return f"""'"', {_utc_text(column)}, 'Z"'"""


def strings(column: str) -> str:
    """A jsonb array of strings, compact (jsonb's own text puts a space after each comma); [] for
    NULL or anything not an array."""
    return (
        f"CASE WHEN jsonb_typeof({column}) IS DISTINCT FROM 'array' OR {column} = '[]' THEN '[]' "
        f"ELSE to_json(ARRAY(SELECT jsonb_array_elements_text({column})))::text END"
    )


def strings_or_null(column: str) -> str:
    """``strings``, but null for NULL and JSON null (a list that may be absent)."""
    absent = f"{column} IS NULL OR jsonb_typeof({column}) = 'null'"
    return f"CASE WHEN {absent} THEN 'null' ELSE {strings(column)} END"


def number(column: str) -> str:
    """An integer (or null)."""
    return f"COALESCE({column}::text, 'null')"


def counts(column: str) -> str:
    """A jsonb object of numbers, compact, keys in jsonb's order (the order Python reads)."""
    pairs = f"SELECT string_agg(to_json(key)::text || ':' || value::text, ',') FROM jsonb_each({column})"  # noqa: S608
    return f"""'{{', COALESCE(({pairs}), ''), '}}'"""


def boolean(column: str) -> str:
    return f"CASE WHEN {column} THEN 'true' ELSE 'false' END"


def item(fields: dict[str, str], *, then: str | None = None) -> str:
    """One JSON object of ``fields`` (key: its writer), in one concat() (cheaper than a chain of
    ||: one call, one result); with ``then``, left open after that key (its value to come)."""
    body = ", ".join(
        f"""'{"{" if at == 0 else ","}"{name}":', {value}"""
        for at, (name, value) in enumerate(fields.items())
    )
    return f"concat({body}, '}}')" if then is None else f"""concat({body}, ',"{then}":')"""


# SQLite's writers. SQLite holds uuids as 32 hex digits, decimals and timestamps as text
# (``db/types.py``: ``str(Decimal)``, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC) and JSON as the text
# orjson wrote; these write what the response models write from them. Its json_quote() escapes
# as orjson does (the same short escapes, lowercase \u00xx for the other control characters).


def sqlite_text(column: str) -> str:
    """Any text, escaped as JSON; null for NULL."""
    return f"json_quote({column})"


def sqlite_quoted(column: str) -> str:
    """A text that needs no escaping (one of our enums' values, a date, a decimal written
    without an exponent: then ``str(Decimal)`` is its fixed-point text)."""
    return f"""COALESCE('"' || {column} || '"', 'null')"""


def sqlite_uuid(column: str) -> str:
    """32 hex digits as the dashed uuid, quoted; null for NULL. One printf() whose precisions cut
    the parts (a third less CPU than joining five substr() with ||)."""
    parts = ", ".join(f"substr({column}, {at})" for at in (9, 13, 17, 21))
    dashed = f"""printf('"%.8s-%.4s-%.4s-%.4s-%s"', {column}, {parts})"""
    return f"CASE WHEN {column} IS NULL THEN 'null' ELSE {dashed} END"


def sqlite_utc(column: str) -> str:
    """As ``wire.utc_text`` writes a timestamp: microseconds only when there are any, then Z."""
    return f"""COALESCE('"' || replace(replace({column}, ' ', 'T'), '.000000', '') || 'Z"', 'null')"""


def sqlite_strings(column: str) -> str:
    """A JSON array (of strings) as stored, compact; [] for NULL or anything not an array."""
    return f"CASE WHEN json_type({column}) = 'array' THEN json({column}) ELSE '[]' END"


def sqlite_exponent(*columns: str) -> str:
    """Whether any of these decimals is held with an exponent (``str(Decimal)`` of a very small
    or very large value: ``1E-8``): its fixed-point text is Python's to write."""
    held = " || ".join(f"COALESCE({column}, '')" for column in columns)
    return f"instr({held}, 'E') > 0"


def sqlite_item(fields: dict[str, str]) -> str:
    """One JSON object of ``fields`` (key: its writer) in SQLite (no concat() before 3.44)."""
    body = " || ".join(
        f"""'{"{" if at == 0 else ","}"{name}":' || {value}"""
        for at, (name, value) in enumerate(fields.items())
    )
    return f"({body} || '}}')"


# What a column holds, for ``fields``: a uuid, a text needing no escaping ("plain": an enum's
# value, a decimal), any text, a date, a UTC timestamp, JSON kept as its text, a list of
# strings, a boolean.
Kind = Literal["uuid", "plain", "text", "date", "utc", "json", "strings", "boolean"]
_POSTGRES: dict[Kind, Callable[[str, bool], str]] = {
    "uuid": quoted,
    "plain": quoted,
    "text": text,
    "date": text,
    "utc": utc,
    "json": lambda column, _: column,
    "strings": lambda column, _: strings(column),
    "boolean": lambda column, _: boolean(column),
}
_SQLITE: dict[Kind, Callable[[str], str]] = {
    "uuid": sqlite_uuid,
    "plain": sqlite_quoted,
    "text": sqlite_text,
    "date": sqlite_quoted,
    "utc": sqlite_utc,
    "json": lambda column: column,
    "strings": sqlite_strings,
    "boolean": boolean,
}


def fields(columns: Sequence[tuple[str, Kind, bool]], *, sqlite: bool = False) -> dict[str, str]:
    """``item``'s (or ``sqlite_item``'s) fields for ``columns`` (name, kind, may be NULL): one
    list of a response's fields, written by either database."""
    if sqlite:  # SQLite's writers all write null for NULL
        return {name: _SQLITE[kind](name) for name, kind, _ in columns}
    return {name: _POSTGRES[kind](name, nullable) for name, kind, nullable in columns}


def limit(page: PageRequest) -> str:
    """The LIMIT of ``page``'s statement (one row more than the page, to know whether another
    follows), written in the text rather than passed as an argument. PostgreSQL prices a
    prepared statement's generic plan for ``LIMIT $n`` as reading a tenth of the table, so it
    never chose it and planned every execution afresh: 0.55 ms of its CPU a page, as much as
    running the plan. With the number in the text the generic plan costs what the custom ones
    do, and is kept after the fifth run. A text per page size: a client uses one or two."""
    return f"LIMIT {int(page.limit) + 1}"


class Args(list[Any]):
    """A statement's arguments, each named by its ``$n`` as it is added."""

    def __call__(self, value: Any, cast: str = "") -> str:
        self.append(value)
        return f"${len(self)}{cast}"


async def folded(
    session: AsyncSession,
    of: Table,
    rows_sql: str,
    args: Args,
    page: PageRequest,
    keys: Sequence[str],
    *,
    unless: bool = False,
) -> WrittenPage | None:
    """The page of ``rows_sql`` (its rows, ``limit + 1`` of them in page order: the ``keys``,
    then ``item``, then with ``unless`` a boolean of that name), gathered by the database into
    one row: the items in order, the keys of the ``limit``-th, and with ``unless`` whether it
    holds for any of the first ``limit`` (then None). None also where the database does not
    write pages (see the module). A session check pending in this task
    (``live_session.checking_session``) is answered in the same statement.

    The aggregates take the rows in the order the page's subquery gives them: its LIMIT keeps
    it a subquery of its own (never merged into this one, never run in parallel workers), so
    nothing can reorder them, as PostgREST's pages rely on too. Numbering the rows with
    row_number() and ordering the aggregate by that number, as this did, cost PostgreSQL a
    sixth of a page's CPU (the window's copy of every item, then a sort of them)."""
    last = args(page.limit)
    ends = "".join(f", (array_agg({k}))[{last}]" for k in keys)
    if unless:
        ends += f", true = ANY((array_agg(unless))[1:{last}])"
    check = None
    if asked := live_session.carried(args):  # the token's session, asked in this statement
        check, live = asked
        ends += f", {live}"
    sql = f"SELECT array_agg(item){ends} FROM ({rows_sql}) listed"  # noqa: S608
    found = await raw.fetch(session, sql, args)
    if found is None:
        return None
    items, *end = found[0]
    items = items or []  # no row: array_agg gives NULL
    if check is not None:
        check.live = bool(end.pop())
    if unless and end.pop():
        return None
    if len(items) <= page.limit:
        return WrittenPage(",".join(items), len(items))
    return WrittenPage(",".join(items[: page.limit]), page.limit, next_key(of, *end))


async def written(
    session: AsyncSession,
    of: Table,
    fields: dict[str, str] | Callable[[Args], dict[str, str]],
    scope: dict[str, UUID],
    page: PageRequest,
    *,
    descending: bool,
    keys: Sequence[tuple[str, type, str]] = (("id", UUID, "::uuid"),),
    source: str | None = None,
    unless: str | None = None,
    last: tuple[str, str] | None = None,
) -> WrittenPage | None:
    """The page of ``of``'s rows matching ``scope`` (column: value), in ``keys`` order, as
    ``keyset`` and ``make_page`` would give it, its items written as ``fields`` say (given the
    statement's arguments, when they need values of their own; ``source``: the FROM clause,
    when their values come from joins too); None where the database does not write pages (see
    the module), or where the condition ``unless`` holds for an item of the page (one the
    database cannot write).

    ``last`` (a key, a json column) ends each item with a value written here, from the JSON
    the driver decoded, the way the response models write it: PostgreSQL has no compact text
    of a jsonb value (its own puts spaces after commas and colons), and a delivery's payload
    is any JSON. Then the statement gives the rows and they are joined here."""
    args = Args()
    fields = fields(args) if callable(fields) else fields
    table, names = of.name, [k for k, _, _ in keys]
    where = [f"{table}.{column} = {args(value, '::uuid')}" for column, value in scope.items()]
    if page.after is not None:
        values = after_values(page, [kind for _, kind, _ in keys], table)
        bound = ", ".join(args(v, cast) for v, (_, _, cast) in zip(values, keys, strict=True))
        seek = ", ".join(f"{table}.{k}" for k in names)
        where.append(f"({seek}) {'<' if descending else '>'} ({bound})")
    direction = " DESC" if descending else ""
    extra = "" if unless is None else f", ({unless}) AS unless"
    extra += "" if last is None else f", {last[1]} AS last"
    check = None
    if last is not None and (asked := live_session.carried(args)):  # once: an InitPlan
        check, live = asked
        extra += f", {live} AS live"
    rows = (
        f"SELECT {', '.join(f'{table}.{k}' for k in names)}, {item(fields, then=last and last[0])} AS item"  # noqa: S608
        f"{extra} FROM {source or table} WHERE {' AND '.join(where)} "
        f"ORDER BY {', '.join(f'{table}.{k}{direction}' for k in names)} {limit(page)}"
    )
    if last is not None:
        return await _joined_here(session, of, rows, args, page, names, unless is not None, check)
    return await folded(session, of, rows, args, page, names, unless=unless is not None)


async def _joined_here(
    session: AsyncSession,
    of: Table,
    rows: str,
    args: Args,
    page: PageRequest,
    keys: list[str],
    unless: bool,
    check: SessionCheck | None,
) -> WrittenPage | None:
    """``written``'s page with a ``last`` value: the rows as the statement gives them, each item
    ended with its value (orjson writes JSON as the response models do) and joined here. With
    ``check``, each row says whether the session is live too (no row: the check stays pending)."""
    found = await raw.fetch(session, rows, args)
    if found is None:
        return None
    if check is not None and found:
        check.live = bool(found[0]["live"])
    shown = make_page(found, page, lambda r: tuple(r[k] for k in keys), of=of)
    if unless and any(r["unless"] for r in shown.items):
        return None
    try:
        items = ",".join(f"{r['item']}{orjson.dumps(r['last']).decode()}}}" for r in shown.items)
    except TypeError:  # an integer past 64 bits, which orjson does not write: the models' way
        return None
    return WrittenPage(items, len(shown.items), shown.next_key)
