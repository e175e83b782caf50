"""A fake IBKR Flex Web Service (v3) on real loopback HTTP, speaking its XML wire format.

- ``GET /AccountManagement/FlexWebService/SendRequest?t=TOKEN&q=QUERY_ID&v=3`` →
  ``<FlexStatementResponse>`` with ``Status`` Success, a ``ReferenceCode`` and the ``Url`` of
  step 2 (this server's ``GetStatement``, or ``statement_url`` when a test sets one);
- ``GET /AccountManagement/FlexWebService/GetStatement?t=TOKEN&q=REFERENCE&v=3`` → the
  statement (``FlexQueryResponse``) once it has "generated" (``generation_seconds`` on the
  virtual clock after SendRequest; before that ``Warn`` 1019), else an error answer.

Every answer is HTTP 200, errors included (IBKR's status says nothing; the body does):
a missing ``User-Agent`` or ``v`` is 1020; unknown token 1015, expired token 1012, a token
bound to another IP 1013, unknown query id 1014, an unknown reference 1003; more than 10
requests a minute from a token 1018. ``inject(step, code)`` answers the next request of a
step with that code (e.g. ``1009`` busy). Every request is recorded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from finsync.providers.http import Clock

BASE = "/AccountManagement/FlexWebService"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ibkr"
TOKEN = "fake-flex-token-1111222233334444"
QUERY_ID = "987654"
PER_MINUTE = 10
MESSAGES = {
    "1003": "Statement is not available.",
    "1009": (
        "The server is under heavy load. Statement could not be generated at this time. "
        "Please try again shortly."
    ),
    "1012": "Token has expired.",
    "1013": "IP restriction.",
    "1014": "Query is invalid.",
    "1015": "Token is invalid.",
    "1018": "Too many requests have been made from this token. Please try again shortly.",
    "1019": "Statement generation in progress. Please try again shortly.",
    "1020": "Invalid request or unable to validate request.",
}
WARN = frozenset({"1009", "1018", "1019"})  # IBKR answers these as Warn, the others as Fail


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class FlexStore:
    statement: bytes = field(default_factory=lambda: fixture("statement.xml"))
    tokens: dict[str, str] = field(default_factory=lambda: {TOKEN: QUERY_ID})  # token → its query
    expired: set[str] = field(default_factory=set)
    ip_bound: set[str] = field(default_factory=set)
    generation_seconds: float = 0.0
    statement_url: str | None = None  # what SendRequest names as step 2 (default: this server)
    send_body: bytes | None = None  # SendRequest answers this instead (a proxy's page, garbage)
    echo_token: bool = False  # error messages repeat the token (IBKR's do not; finsync must not care)
    references: dict[str, float] = field(default_factory=dict)  # reference → ready at
    faults: dict[str, deque[str]] = field(
        default_factory=lambda: {"SendRequest": deque(), "GetStatement": deque()}
    )
    requests: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)  # step, time, query
    sent: dict[str, deque[float]] = field(default_factory=dict)  # per token: request times

    def inject(self, step: str, code: str, times: int = 1) -> None:
        if step not in self.faults or code not in MESSAGES:
            raise ValueError(f"unknown step or code: {step!r}, {code!r}")
        self.faults[step].extend([code] * times)

    def steps(self) -> list[str]:
        return [step for step, _, _ in self.requests]


def _answer(body: str) -> Response:
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n', media_type="text/xml;charset=UTF-8")


def _failure(code: str, stamp: str, echo: str = "") -> Response:
    status = "Warn" if code in WARN else "Fail"
    message = f"{MESSAGES[code]} ({echo})" if echo else MESSAGES[code]
    return _answer(
        f'<FlexStatementResponse timestamp="{stamp}">\n<Status>{status}</Status>\n'
        f"<ErrorCode>{code}</ErrorCode>\n<ErrorMessage>{escape(message)}</ErrorMessage>\n"
        "</FlexStatementResponse>"
    )


def create_app(clock: Clock, store: FlexStore) -> Starlette:
    def stamp() -> str:
        return f"{int(clock.now())}"

    def check(request: Request, step: str) -> str | None:
        """The error code this request earns before its step's own logic, if any."""
        query = dict(request.query_params)
        now = clock.now()
        store.requests.append((step, now, query))
        token = query.get("t", "")
        if not request.headers.get("user-agent") or query.get("v") != "3":
            return "1020"
        if token not in store.tokens:
            return "1015"
        if token in store.expired:
            return "1012"
        if token in store.ip_bound:
            return "1013"
        sent = store.sent.setdefault(token, deque())
        while sent and sent[0] <= now - 60:
            sent.popleft()
        if len(sent) >= PER_MINUTE:
            return "1018"
        sent.append(now)
        if store.faults[step]:
            return store.faults[step].popleft()
        return None

    async def send_request(request: Request) -> Response:
        code = check(request, "SendRequest")
        if code is None and store.tokens[request.query_params["t"]] != request.query_params.get("q"):
            code = "1014"
        if code is not None:
            return _failure(code, stamp(), request.query_params.get("t", "") if store.echo_token else "")
        if store.send_body is not None:
            return Response(store.send_body, media_type="text/html")
        reference = f"{1_000_000_000 + len(store.references)}"
        store.references[reference] = clock.now() + store.generation_seconds
        url = store.statement_url or f"{request.base_url}{BASE.lstrip('/')}/GetStatement"
        return _answer(
            f'<FlexStatementResponse timestamp="{stamp()}">\n<Status>Success</Status>\n'
            f"<ReferenceCode>{reference}</ReferenceCode>\n<Url>{escape(url)}</Url>\n"
            "</FlexStatementResponse>"
        )

    async def get_statement(request: Request) -> Response:
        code = check(request, "GetStatement")
        ready = store.references.get(request.query_params.get("q", ""))
        if code is None and ready is None:
            code = "1003"
        if code is None and ready is not None and clock.now() < ready:
            code = "1019"
        if code is not None:
            return _failure(code, stamp())
        return Response(store.statement, media_type="text/xml;charset=UTF-8")

    return Starlette(
        routes=[
            Route(f"{BASE}/SendRequest", send_request),
            Route(f"{BASE}/GetStatement", get_statement),
        ]
    )
