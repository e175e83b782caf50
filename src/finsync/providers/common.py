"""What every HTTP provider repeats, in one place: reading credentials and the environment
from a session, building ``ProviderHttp`` for an API key, GETting JSON of an expected
shape with errors re-worded in the provider's terms, and exact wire values (decimals,
instants, days) whose errors name the provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypedDict

import httpx

from finsync.domain.errors import BadData, InvalidInput, ProviderAuthError, ProviderError
from finsync.domain.money import to_decimal
from finsync.domain.ports import ProviderSession
from finsync.providers.http import Clock, ErrorType, ProviderHttp, RateLimit

__all__ = ["HostOptions", "JsonClient", "Reword", "Wire", "credential", "environment", "key_http"]

Reword = Callable[[str, str], str]
"""(endpoint, the error's detail) → the message a person reads instead."""


class HostOptions(TypedDict, total=False):
    """What the host hands every factory besides settings: tests pass a virtual clock (rate
    waits cost no time) and may pass a transport."""

    clock: Clock | None
    transport: httpx.AsyncBaseTransport | None


def credential(session: ProviderSession, name: str, *, required_by: str = "") -> str:
    """A pasted credential, stripped; "" when absent, or ``ProviderAuthError`` when ``required_by``
    (the provider's display name) needs it."""
    value = str(session.credentials.get(name) or "").strip()
    if not value and required_by:
        raise ProviderAuthError(f"{required_by} credentials lack {name}")
    return value


def environment(session: ProviderSession, allowed: tuple[str, ...], display_name: str) -> str:
    """The session's environment, the first of ``allowed`` by default; anything else is refused."""
    chosen = session.environment or allowed[0]
    if chosen not in allowed:
        raise InvalidInput(f"{display_name} environment must be one of {', '.join(allowed)}")
    return chosen


def key_http(
    *,
    provider: str,
    base_url: str,
    key: str,
    timeout: float,
    secrets: Iterable[str] = (),
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | None = None,
    limits: Mapping[str, RateLimit] | None = None,
    error_type: ErrorType | None = None,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProviderHttp:
    """``ProviderHttp`` for one API key: rate budgets are the key's (shared by every adapter
    of that key at that host), and the key and ``secrets`` never appear in an error."""
    return ProviderHttp(
        provider=provider,
        base_url=base_url,
        auth=auth,
        headers=headers,
        limits=limits,
        clock=clock,
        transport=transport,
        timeout=timeout,
        secrets=(key, *secrets),
        account=key,
        error_type=error_type,
    )


class JsonClient:
    """Base of a provider's API client: GET JSON of an expected shape through ``ProviderHttp``.

    ``rewords`` turns a ``ProviderError`` class (first match wins, so list subclasses
    first) into the message a person can act on, e.g. which key permission to enable;
    the error keeps its class, so the API's problem type does not change.
    """

    rewords: ClassVar[Mapping[type[ProviderError], Reword]] = {}

    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    async def get(
        self, url: str, endpoint: str, params: Mapping[str, Any] | None = None, *, retries: int | None = None
    ) -> Any:
        try:
            return await self.http.get_json(url, endpoint=endpoint, params=params, retries=retries)
        except ProviderError as exc:
            for kind, reword in self.rewords.items():
                if isinstance(exc, kind):
                    raise kind(reword(endpoint, exc.detail)) from None
            raise

    async def get_object(
        self, url: str, endpoint: str, params: Mapping[str, Any] | None = None, *, retries: int | None = None
    ) -> dict[str, Any]:
        body = await self.get(url, endpoint, params, retries=retries)
        if not isinstance(body, dict):
            raise BadData(f"{self.http.provider} {endpoint}: expected an object")
        return body

    async def get_list(
        self, url: str, endpoint: str, params: Mapping[str, Any] | None = None, *, retries: int | None = None
    ) -> list[dict[str, Any]]:
        """A JSON array of objects."""
        body = await self.get(url, endpoint, params, retries=retries)
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise BadData(f"{self.http.provider} {endpoint}: expected an array of objects")
        return body


@dataclass(frozen=True, slots=True)
class Wire:
    """Exact wire values for one provider's mappers; a bad value is ``BadData`` naming it."""

    provider: str

    def number(self, value: Any, what: str) -> Decimal:
        """A JSON number (already a Decimal, never a float) or a numeric string."""
        try:
            return to_decimal(value)
        except ValueError:
            raise BadData(f"{self.provider}: {what} is not a number") from None

    def optional(self, value: Any, what: str) -> Decimal | None:
        """``number``, with null or "" meaning absent."""
        return None if value is None or value == "" else self.number(value, what)

    def instant(self, value: Any, *, date_is_midnight_utc: bool = False) -> datetime:
        """An ISO-8601 instant (``Z``, ``+0000`` and ``+00:00`` all read); always timezone-aware.
        ``date_is_midnight_utc``: a bare date (some providers date cash items) is midnight UTC."""
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise BadData(f"{self.provider}: bad timestamp {value!r}") from None
        if moment.tzinfo is None:
            if date_is_midnight_utc and "T" not in str(value):
                return moment.replace(tzinfo=UTC)
            raise BadData(f"{self.provider}: timestamp without zone {value!r}")
        return moment

    def day(self, value: Any, *, date_is_midnight_utc: bool = False) -> date:
        """The date of an ``instant`` as the provider wrote it (not converted to UTC)."""
        return self.instant(value, date_is_midnight_utc=date_is_midnight_utc).date()
