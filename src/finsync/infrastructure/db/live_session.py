"""Whether a token's session is live: the look-up every authenticated request makes, written
once, and the check a page's own statement may carry instead (``SessionCheck``).

``IN_SESSION`` reads the user if their session is live (``users.get_in_session``). ``LIVE_SQL``
asks the same as one value, for ``written`` to add to a page's statement when
``checking_session`` is pending in the task: the fast lane's page on PostgreSQL, one round trip
instead of two. The first statement that carries it sets ``check.live``; none doing so leaves
it None, and the caller asks on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import bindparam, exists, literal_column, select

from finsync.domain.ports import SessionCheck
from finsync.infrastructure.db import raw
from finsync.infrastructure.db.tables import AuthSessionRow, UserRow

users = UserRow.__table__  # type: ignore[attr-defined]
sessions = AuthSessionRow.__table__  # type: ignore[attr-defined]
_IN_ONE = users.join(sessions, sessions.c.user_id == users.c.id)
_LIVE = (
    users.c.id == bindparam("user_id"),
    users.c.is_active.is_(True),
    sessions.c.id == bindparam("session_id"),
    sessions.c.revoked_at.is_(None),
    sessions.c.expires_at > bindparam("now"),
)
IN_SESSION = select(users).select_from(_IN_ONE).where(*_LIVE)
LIVE_SQL, LIVE_ARGS = raw.prepared(exists(select(literal_column("1")).select_from(_IN_ONE).where(*_LIVE)))

_PENDING: ContextVar[SessionCheck | None] = ContextVar("finsync_session_check", default=None)


@contextmanager
def checking_session(check: SessionCheck) -> Iterator[SessionCheck]:
    """Reads inside (in this task) may answer ``check`` in their own statement."""
    token = _PENDING.set(check)
    try:
        yield check
    finally:
        _PENDING.reset(token)


def pending() -> SessionCheck | None:
    """The check ``checking_session`` set, if no statement has answered it yet."""
    check = _PENDING.get()
    return None if check is None or check.live is not None else check


def carried(args: list[Any]) -> tuple[SessionCheck, str] | None:
    """The pending check (``pending``) as one more value of a statement whose arguments are
    ``args``: its values added to them, and the check with the SQL text that asks it; None
    when no check is pending."""
    check = pending()
    if check is None:
        return None
    sql = raw.shifted(LIVE_SQL, len(args))
    given = {"user_id": check.user_id, "session_id": check.session_id, "now": check.now}
    args.extend(given[name] for name in LIVE_ARGS)
    return check, sql
