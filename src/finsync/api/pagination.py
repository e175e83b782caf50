"""Opaque keyset cursors for every list endpoint."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from finsync.domain.errors import InvalidInput
from finsync.domain.ports import Page, PageRequest

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_SEP = "\x1f"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"  # unpadded base64url
CURSOR_MAX = 512
LIMIT_MAX = 500  # items per page at most
PAGE_PARAMETERS = frozenset({"limit", "cursor"})  # a plain page asks nothing else


def encode_cursor(key: tuple[str, ...]) -> str:
    return base64.urlsafe_b64encode(_SEP.join(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return tuple(base64.urlsafe_b64decode(padded.encode()).decode().split(_SEP))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput("cursor is not valid; use next_cursor from a previous page") from exc


async def page_request(  # async: FastAPI runs a plain def in a thread pool, a hop per request
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description="Items per page")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=CURSOR_MAX,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` from the previous page of the same list (opaque)",
        ),
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)


class PageOut(BaseModel, Generic[T]):
    """A page of results; pass `next_cursor` back as `cursor` to get the next one (null at the end)."""

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Opaque; null on the last page")


def to_page(page: Page[Any], model: type[M]) -> PageOut[M]:
    items = [model.model_validate(item, from_attributes=True) for item in page.items]
    return PageOut[M](items=items, next_cursor=encode_cursor(page.next_key) if page.next_key else None)
