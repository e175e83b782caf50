"""The busiest reads answered before FastAPI's request handling, with FastAPI's own answer.

``GET /users/me`` and a plain page of transactions (``limit`` and ``cursor`` only, of all
accounts or of one) are most of what clients send all day; plain pages of accounts,
connections, holdings, orders, transfers, webhooks, an account's balance snapshots, a
connection's sync runs and a webhook's deliveries are answered too, where the database
writes their items (PostgreSQL, ``db/written.py``). Through FastAPI each one paid for
solving its dependency tree (the unit of work's generator, the bearer scheme, the user, the
page and nine filter parameters, each validated on every request): more CPU than the
database work itself. Here the same steps run as plain calls: the same access-token check,
the same read unit of work and repository statements (``db/raw.py``), the same body
(``listing.py``; ``UserPublic`` for the user).

Only the plain, successful case is answered here. Anything else goes on to FastAPI untouched
and gets its canonical answer: another method or parameter, a parameter FastAPI would parse
differently (``limit=07``, an account id in another spelling), an API token, a token or
session that does not check out (401), a cursor of another list (422), an empty page of an
account (which may not be the caller's: 404), or any error at all (a read done twice is
harmless). The lane sits inside FastAPI's middleware stack, under CORS and the server-error
handler, so those apply as to any route. ``FINSYNC_FAST_READS=false`` turns it off; a test
holds both paths' answers byte-equal.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from urllib.parse import parse_qsl
from uuid import UUID

import structlog
from fastapi.security.utils import get_authorization_scheme_param
from starlette._utils import get_route_path
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from finsync.api.listing import transactions_body_of, written_body
from finsync.api.pagination import CURSOR_MAX, CURSOR_PATTERN, LIMIT_MAX, PAGE_PARAMETERS, decode_cursor
from finsync.api.schemas import UserPublic
from finsync.application.api_tokens import is_api_token
from finsync.bootstrap import Container
from finsync.domain.entities import User
from finsync.domain.errors import FinsyncError
from finsync.domain.ports import PageRequest, SessionCheck, TransactionFilter, UnitOfWork, WrittenPage

log = structlog.get_logger(__name__)
_LIMIT = re.compile(r"[1-9][0-9]{0,2}")  # as FastAPI reads it (no sign, no leading 0); <= LIMIT_MAX
_CURSOR = re.compile(CURSOR_PATTERN)
_ID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"  # as str(UUID) writes it
_ACCOUNT_PAGE = re.compile(rf"/accounts/{_ID}/transactions")


@dataclass(frozen=True, slots=True)
class Read:
    """What an answer reads with: the request's unit of work, and the check of its token's
    session (the user it names, the session, the container's clock at the request's start),
    which an answer's statement may carry (``SessionCheck``)."""

    uow: UnitOfWork
    check: SessionCheck

    @property
    def user_id(self) -> UUID:
        return self.check.user_id

    @property
    def now(self) -> datetime:
        return self.check.now


Answer = Callable[[Read], Awaitable[bytes | None]]
Lister = Callable[[Read, PageRequest], Awaitable[WrittenPage | None]]


class FastLane:
    """ASGI middleware: answers the reads above itself, passes everything else on."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.answered = 0  # requests answered here (tests, and a look from a debugger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        container: Container | None = getattr(scope["app"].state, "container", None)  # set at start-up
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and container
            and container.settings.fast_reads
        ):
            path = get_route_path(scope)
            if path.startswith(self.prefix):
                # Pages the database writes only where it does (PostgreSQL): elsewhere the
                # lane would check the token and read the user for nothing.
                query = scope.get("query_string", b"").decode("latin-1")
                answer = _answer_for(path[len(self.prefix) :], query, written=container.reader is not None)
                if answer is not None:
                    body = await self._answer(scope, container, answer)
                    if body is not None:
                        self.answered += 1
                        await Response(body, media_type="application/json")(scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, container: Container, answer: Answer) -> bytes | None:
        scheme, token = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
        if scheme.lower() != "bearer" or not token or is_api_token(token):
            return None  # FastAPI's 401, or an API token's scope checks
        try:
            claims = container.tokens.verify(token)
            reads = container.bounded_read_uow or container.read_uow
            check = SessionCheck(claims.user_id, claims.session_id, container.clock())
            async with container.one_read_connection(), reads() as uow:
                # The session is asked in the answer's own statement where it can be (PostgreSQL's
                # written pages), else on its own; no answer leaves unless it is live (else 401).
                with container.checking_session(check):
                    body = await answer(Read(uow, check))
                if body is not None and check.live is None:
                    check.live = await _in_session(uow, check) is not None
                return body if check.live else None
        except FinsyncError:
            return None  # an expired token, a cursor of another list: FastAPI's answer
        except Exception:
            log.warning("fast_read_failed_retrying_through_fastapi", exc_info=True)
            return None


def _answer_for(path: str, query: str, *, written: bool) -> Answer | None:
    """The answer for ``path`` and ``query``, or None (before any read: a request the lane
    leaves to FastAPI costs it no token check and no user read)."""
    if path == "/users/me":
        return None if query else _me
    account = _ACCOUNT_PAGE.fullmatch(path)
    lister = None
    if path != "/transactions" and account is None:
        lister = _lister_for(path) if written else None
        if lister is None:
            return None
    try:
        page = _page(query)
    except FinsyncError:
        return None  # a cursor of another list: FastAPI's 422
    if page is None:
        return None
    if lister is not None:
        return partial(_written, lister, page)
    return partial(_transactions, page=page, account_id=None if account is None else UUID(account[1]))


# The lists whose pages the database writes (``written``): by path, and by path with the id
# of what they belong to.
_LISTS: dict[str, Lister] = {
    "/accounts": lambda r, page: r.uow.accounts.written(r.user_id, page),
    "/connections": lambda r, page: r.uow.connections.written(r.user_id, page, r.now),
    "/holdings": lambda r, page: r.uow.holdings.written(r.user_id, None, page),
    "/orders": lambda r, page: r.uow.trading.written(r.user_id, page),
    "/transfers": lambda r, page: r.uow.transfers.written(r.user_id, page),
    "/webhooks": lambda r, page: r.uow.webhooks.written(r.user_id, page),
}
_LISTS_OF: list[tuple[re.Pattern[str], Callable[[UUID], Lister]]] = [
    (
        re.compile(rf"/accounts/{_ID}/holdings"),
        lambda of: lambda r, page: r.uow.holdings.written(r.user_id, of, page),
    ),
    (
        re.compile(rf"/accounts/{_ID}/balance-snapshots"),
        lambda of: lambda r, page: r.uow.snapshots.written(r.user_id, of, page),
    ),
    (
        re.compile(rf"/connections/{_ID}/sync-runs"),
        lambda of: lambda r, page: r.uow.sync_runs.written(r.user_id, of, page),
    ),
    (
        re.compile(rf"/webhooks/{_ID}/deliveries"),
        lambda of: lambda r, page: r.uow.webhooks.written_deliveries(r.user_id, of, page),
    ),
]


def _lister_for(path: str) -> Lister | None:
    if (lister := _LISTS.get(path)) is not None:
        return lister
    for pattern, lister_of in _LISTS_OF:
        if found := pattern.fullmatch(path):
            return lister_of(UUID(found[1]))
    return None


async def _me(read: Read) -> bytes | None:
    user = await _in_session(read.uow, read.check)
    read.check.live = user is not None
    return None if user is None else UserPublic.model_validate(user).model_dump_json().encode()


async def _in_session(uow: UnitOfWork, check: SessionCheck) -> User | None:
    return await uow.users.get_in_session(check.user_id, check.session_id, check.now)


async def _transactions(read: Read, *, page: PageRequest, account_id: UUID | None) -> bytes | None:
    filters = TransactionFilter(account_id=account_id)
    body, count = await transactions_body_of(read.uow, read.user_id, filters, page)
    if not count and account_id is not None:
        return None  # an account's empty page: FastAPI's route tells empty from not yours (404)
    return body


async def _written(lister: Lister, page: PageRequest, read: Read) -> bytes | None:
    """A plain page of a list whose items the database writes (``written``): on PostgreSQL.
    An empty page goes on to FastAPI, which tells empty from not yours (404)."""
    found = await lister(read, page)
    return None if found is None or not found.count else written_body(found)


def _page(query: str) -> PageRequest | None:
    """``limit`` and ``cursor`` in the plain spelling FastAPI would read the same; None for
    anything else (another parameter, a repeated one, an odd spelling)."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in PAGE_PARAMETERS or name in values:
            return None
        values[name] = value
    limit, cursor = values.get("limit", "50"), values.get("cursor")
    if not _LIMIT.fullmatch(limit) or int(limit) > LIMIT_MAX:
        return None
    if cursor is not None and (len(cursor) > CURSOR_MAX or not _CURSOR.fullmatch(cursor)):
        return None
    return PageRequest(limit=int(limit), after=decode_cursor(cursor) if cursor else None)
