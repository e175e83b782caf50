"""Row ↔ entity mapping by field name; enum fields are rebuilt from their stored strings."""

from __future__ import annotations

import typing
from dataclasses import fields
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Table, bindparam, tuple_

from finsync.domain.errors import BadData, InvalidInput
from finsync.domain.ports import Page, PageRequest

E = TypeVar("E")


_PLANS: dict[type, tuple[tuple[str, type[Enum] | None], ...]] = {}


def _field_plan(cls: type) -> tuple[tuple[str, type[Enum] | None], ...]:
    if cls in _PLANS:
        return _PLANS[cls]
    hints = typing.get_type_hints(cls)
    plan = []
    for f in fields(cls):
        hint = hints[f.name]
        enum = hint if isinstance(hint, type) and issubclass(hint, Enum) else None
        plan.append((f.name, enum))
    _PLANS[cls] = tuple(plan)
    return _PLANS[cls]


def to_entity(cls: type[E], row: Any) -> E:
    values = {}
    for name, enum in _field_plan(cls):
        value = row[name]
        values[name] = enum(value) if enum is not None and value is not None else value
    return cls(**values)


def to_row(entity: Any) -> dict[str, Any]:
    return {name: getattr(entity, name) for name, _ in _field_plan(type(entity))}


def _encode(value: Any) -> str:
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def keyset(
    stmt: Select[Any], keys: list[tuple[ColumnElement[Any], type]], page: PageRequest, *, descending: bool
) -> Select[Any]:
    """Seek past ``page.after`` instead of OFFSET, so deep pages cost what page 1 costs."""
    if page.after is not None:
        values = after_values(page, [kind for _, kind in keys], _list_of(keys))
        # One row-value comparison (not an OR chain) lets both databases seek the index directly.
        columns = tuple_(*(col for col, _ in keys))
        bound = tuple_(*values)
        stmt = stmt.where(columns < bound if descending else columns > bound)
    order = [col.desc() if descending else col.asc() for col, _ in keys]
    # The limit goes into the SQL text (``written.limit`` says why PostgreSQL needs it there).
    return stmt.order_by(*order).limit(bindparam("page_limit", page.limit + 1, literal_execute=True))


def _list_of(keys: list[tuple[ColumnElement[Any], type]]) -> str:
    table = keys[0][0].table
    return str(table.name)


def after_values(page: PageRequest, kinds: list[type], of: str) -> list[Any]:
    """The key a cursor carries, one value per key column (a 422 for one that is not ours).

    A cursor names the list (table) it was made for first: the lists keyed by ``id`` alone
    cannot tell another list's key from their own, and would seek past it (wrong rows)."""
    assert page.after is not None
    if len(page.after) != len(kinds) + 1 or page.after[0] != of:
        raise InvalidInput("cursor does not belong to this list")
    try:
        return [_decode(raw, kind) for raw, kind in zip(page.after[1:], kinds, strict=True)]
    except (ValueError, OverflowError) as exc:
        raise InvalidInput("cursor is not valid; use next_cursor from a previous page") from exc


def _decode(raw: str, kind: type) -> Any:
    if kind is UUID:
        return UUID(hex=raw)
    if kind is date:
        return date.fromisoformat(raw)
    if kind is datetime:  # ours are UTC; a naive or far-out time would fail in the database (500)
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError("naive time")
        return value.astimezone(UTC)
    return raw


def make_page(
    items: list[E], page: PageRequest, key: typing.Callable[[E], tuple[Any, ...]], *, of: Table
) -> Page[E]:
    """The page of ``keyset``'s rows; ``next_key`` names the list (``of``, the table ``keyset``
    sought in) before the last item's key."""
    if len(items) <= page.limit:
        return Page(items=items)
    items = items[: page.limit]
    return Page(items=items, next_key=next_key(of, *key(items[-1])))


def next_key(of: Table, *values: Any) -> tuple[str, ...]:
    """A cursor's key: the list (``of``, the table ``keyset`` seeks in), then the last item's
    key values."""
    return (of.name, *(_encode(v) for v in values))


def column_text(value: str | None, limit: int | None = None) -> str | None:
    """Text as a column can hold it: no NUL bytes (PostgreSQL refuses them), at most ``limit``
    characters. Descriptive text only; ids are refused instead (see ``provider_id``)."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value if limit is None else value[:limit]


def provider_id(value: str, limit: int, what: str) -> str:
    """A provider's id, refused (not altered) when the column cannot hold it."""
    if len(value) > limit or "\x00" in value:
        raise BadData(f"{what} {value[:40]!r}… is longer than {limit} characters or has a NUL byte")
    return value
