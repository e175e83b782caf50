"""IBKR Flex Web Service v3: the two-step fetch and the XML it answers.

1. ``GET …/SendRequest?t=TOKEN&q=QUERY_ID&v=3`` → ``<FlexStatementResponse>`` with a
   ``ReferenceCode`` and the ``Url`` of step 2;
2. ``GET <Url>?t=TOKEN&q=REFERENCE_CODE&v=3`` → the ``<FlexQueryResponse>`` statement, or
   another ``<FlexStatementResponse>`` with an error code (1019: still generating).

Errors travel in the XML body (the HTTP status says nothing), so they are read here: 1009
(server busy) and 1019 (generation in progress) are retried after ~5 s, 1018 (too many
requests) after ≥ 10 s, all within one bounded total on the injectable clock; the token and
query problems (1012, 1014, 1015) are ``ProviderAuthError`` (new credentials needed) and 1013
(IP restriction) a ``ScopeError`` that says so.

Statements are untrusted XML: defusedxml parses them (no entities, no DTD), and the element
goes to ibflex's element-level parser (``ibflex.parser.parse_element``; its ``parse`` uses
the plain ElementTree parser). Anything unreadable is ``BadData`` naming the cause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, ParseError

import httpx
from defusedxml import ElementTree as SafeTree
from defusedxml.common import DefusedXmlException

from finsync.domain.errors import (
    BadData,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    ScopeError,
    Unavailable,
)
from finsync.providers.http import SHARED_BUCKET, Clock, ProviderHttp, RateLimit

if TYPE_CHECKING:  # imported where a statement is read: ibflex costs ~0.3 s of CPU to import
    from ibflex import Types

PROVIDER = "ibkr"
VERSION = "3"
BUSY, TOO_MANY, GENERATING = "1009", "1018", "1019"
# IBKR asks for ~5 s between polls while busy or generating, and ≥ 10 s after 1018.
RETRY_AFTER: Mapping[str, float] = {BUSY: 5.0, GENERATING: 5.0, TOO_MANY: 10.0}
NEW_TOKEN = (
    "create a new Flex Web Service token in Client Portal (Performance & Reports → Flex Queries → "
    "Flex Web Service Configuration) and PATCH /api/v1/connections/{id} with it"
)
# Our own pacing, below IBKR's (1 request a second, 10 a minute per token).
LIMITS: Mapping[str, RateLimit] = {SHARED_BUCKET: RateLimit(10, 60.0)}
MAX_STATEMENT_BYTES = 64 * 1024 * 1024
INLINE_BYTES = 256 * 1024  # XML smaller than this is parsed on the event loop (no thread hop)


@functools.cache
def known_sections() -> frozenset[str]:
    """The sections ibflex can build a FlexStatement from; others are dropped before it sees
    them (an unknown section would otherwise fail the whole statement)."""
    from ibflex import Types

    return frozenset(f.name for f in dataclasses.fields(Types.FlexStatement))


@dataclass(frozen=True, slots=True)
class FlexFailure:
    """An error answer: IBKR's code and message."""

    code: str
    message: str


def _safe_xml(body: bytes, what: str) -> Element:
    """The root element, parsed with entity expansion and DTDs refused."""
    if len(body) > MAX_STATEMENT_BYTES:
        raise BadData(f"IBKR's {what} is larger than {MAX_STATEMENT_BYTES // (1024 * 1024)} MB")
    try:
        root: Element = SafeTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise BadData(
            f"IBKR's {what} was refused: finsync reads no XML with a DTD, entities or external "
            f"references ({type(exc).__name__})"
        ) from None
    except ParseError as exc:
        raise BadData(f"IBKR's {what} is not well-formed XML ({exc})") from None
    return root


def failure_of(root: Element) -> FlexFailure | None:
    """The error in a ``FlexStatementResponse`` whose status is not Success, else None."""
    status = (root.findtext("Status") or "").strip()
    if status == "Success":
        return None
    code = (root.findtext("ErrorCode") or "").strip() or "?"
    message = " ".join((root.findtext("ErrorMessage") or status or "no message").split())
    return FlexFailure(code, message[:300])


def error_for(failure: FlexFailure) -> ProviderError:
    """A terminal Flex error as the typed error a person can act on."""
    said = f"(IBKR error {failure.code}: {failure.message})"
    if failure.code == "1012":
        return ProviderAuthError(f"the IBKR Flex token has expired {said}; {NEW_TOKEN}")
    if failure.code == "1015":
        return ProviderAuthError(f"IBKR does not accept the Flex token {said}; {NEW_TOKEN}")
    if failure.code == "1014":
        return ProviderAuthError(
            f"IBKR does not know the Flex query id {said}; copy the query id from Client Portal "
            "(Flex Queries → the query's info icon) and PATCH the connection with it"
        )
    if failure.code == "1013":
        return ScopeError(
            f"IBKR refused the request because of the Flex token's IP restriction {said}; allow this "
            "server's IP address in Flex Web Service Configuration, or create a token without one"
        )
    return ProviderError(f"IBKR Flex Web Service error {said}")


def read_statement(body: bytes) -> Types.FlexQueryResponse:
    """A ``FlexQueryResponse`` through defusedxml then ibflex's element parser."""
    return statement_of(_safe_xml(body, "statement"))


def statement_of(root: Element) -> Types.FlexQueryResponse:
    """ibflex's typed statement of a parsed root. Unknown elements and attributes (IBKR adds
    some every year) are skipped, as ibflex ≥ 1.1 does."""
    from ibflex import Types
    from ibflex.parser import FlexParserError, parse_element

    if root.tag != "FlexQueryResponse":
        raise BadData(f"IBKR sent <{root.tag[:40]}> where a FlexQueryResponse statement belongs")
    for statement in root.iter("FlexStatement"):
        for section in [s for s in statement if s.tag not in known_sections()]:
            statement.remove(section)
    try:
        # ibflex warns for every element and attribute it does not know (IBKR adds some each
        # year) and skips them: expected, and never an error (whatever -W says).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = parse_element(root)
    except (FlexParserError, AssertionError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadData(f"IBKR's statement cannot be read: {str(exc)[:200]}") from None
    if not isinstance(parsed, Types.FlexQueryResponse):
        raise BadData("IBKR's statement cannot be read: not a FlexQueryResponse")
    return parsed


class FlexClient:
    """The two Flex calls with IBKR's retry rules; ``max_wait`` bounds the whole fetch."""

    def __init__(
        self, http: ProviderHttp, base_url: str, token: str, query_id: str, *, max_wait: float
    ) -> None:
        self.http, self._token, self._query_id, self.max_wait = http, token, query_id, max_wait
        self.base = httpx.URL(base_url.rstrip("/") + "/")
        self.clock: Clock = http.clock

    async def _get(self, url: str, endpoint: str, params: dict[str, str], retries: int | None) -> Element:
        response = await self.http.request("GET", url, endpoint=endpoint, params=params, retries=retries)
        what = f"{endpoint} answer"
        if len(response.content) < INLINE_BYTES:
            return _safe_xml(response.content, what)
        return await asyncio.to_thread(_safe_xml, response.content, what)  # a big statement

    def _failure(self, root: Element) -> FlexFailure | None:
        """``failure_of``, with the token scrubbed should IBKR's message ever repeat it."""
        failure = failure_of(root)
        if failure is None or self._token not in failure.message:
            return failure
        return FlexFailure(failure.code, failure.message.replace(self._token, "***"))

    def _statement_url(self, root: Element) -> str:
        """Step 2's URL from IBKR's answer, when it names a host we may send the token to;
        otherwise the configured service's ``GetStatement``."""
        named = (root.findtext("Url") or "").strip()
        base = self.base
        fallback = str(base.join("GetStatement"))
        try:
            url = httpx.URL(named)
        except httpx.InvalidURL:
            return fallback
        trusted = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port) or (
            url.scheme == "https" and url.host.endswith(".interactivebrokers.com")
        )
        return str(url.copy_with(query=None)) if named and trusted else fallback

    async def _wait(self, failure: FlexFailure, deadline: float, step: str) -> None:
        """Sleep IBKR's pause for a retryable code, or raise when the total would pass ``deadline``."""
        pause = RETRY_AFTER.get(failure.code)
        if pause is None:
            raise error_for(failure)
        now = self.clock.now()
        if now + pause > deadline:
            said = f"IBKR error {failure.code}: {failure.message}"
            if failure.code == TOO_MANY:
                raise RateLimited(
                    f"IBKR Flex is limiting requests for this token ({said}); the next sync waits",
                    retry_after=pause,
                    retry_at=datetime.fromtimestamp(now + pause, UTC),
                )
            waited = int(self.max_wait)
            raise Unavailable(
                f"IBKR Flex {step} did not finish within {waited} s ({said}); the next sync retries"
            )
        await self.clock.sleep(pause)

    async def send_request(
        self, *, deadline: float | None = None, retries: int | None = None
    ) -> tuple[str, str]:
        """Step 1: (reference code, statement URL). ``deadline`` None: no waiting (a person waits)."""
        end = self.clock.now() if deadline is None else deadline
        params = {"t": self._token, "q": self._query_id, "v": VERSION}
        while True:
            root = await self._get("SendRequest", "SendRequest", params, retries)
            if root.tag != "FlexStatementResponse":
                raise BadData(f"IBKR SendRequest answered <{root.tag[:40]}>, not a FlexStatementResponse")
            failure = self._failure(root)
            if failure is None:
                reference = (root.findtext("ReferenceCode") or "").strip()
                if not reference:
                    raise BadData("IBKR SendRequest succeeded without a ReferenceCode")
                return reference, self._statement_url(root)
            await self._wait(failure, end, "SendRequest")

    async def statement(self) -> Types.FlexQueryResponse:
        """Both steps, polling step 2 while IBKR generates the statement."""
        deadline = self.clock.now() + self.max_wait
        reference, url = await self.send_request(deadline=deadline)
        params = {"t": self._token, "q": reference, "v": VERSION}
        while True:
            root = await self._get(url, "GetStatement", params, None)
            if root.tag != "FlexStatementResponse":
                # CPU-bound (a year of trades is megabytes): off the event loop.
                return await asyncio.to_thread(statement_of, root)
            failure = self._failure(root)
            if failure is None:
                raise BadData("IBKR GetStatement answered Success without a statement")
            await self._wait(failure, deadline, "statement generation")
