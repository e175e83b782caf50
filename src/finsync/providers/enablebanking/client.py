"""Enable Banking API calls over the shared ProviderHttp, each signed with the application JWT.

Errors arrive as ``{"message", "code", "error": "<TEXT_CODE>", "detail"}``; the text code
decides what a person must do: a dead session needs a new consent (``AccessRevoked``),
a refused JWT is the deployment's problem (``Unavailable``, never a user re-consent),
and the bank's daily allowance (``ASPSP_RATE_LIMIT_EXCEEDED``) is raised at once as
``BankLimitReached`` instead of being waited out inside a sync.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from finsync.domain.errors import BadData, ProviderAuthError, ProviderError, RateLimited, Unavailable
from finsync.domain.ports import PersonPresent
from finsync.providers.enablebanking.settings import EnableBankingSigner
from finsync.providers.http import AccessRevoked, Clock, ProviderHttp, RateLimit, SystemClock, http_transport

LIMITS = {"aspsps": RateLimit(60, 60.0)}
# Text codes meaning the person's consent (session) is over: only a new consent helps.
SESSION_GONE = frozenset(
    {"EXPIRED_SESSION", "CLOSED_SESSION", "REVOKED_SESSION", "WRONG_SESSION_STATUS", "SESSION_DOES_NOT_EXIST"}
)
BANK_LIMIT = "ASPSP_RATE_LIMIT_EXCEEDED"
MAX_PAGES = 500  # a bank answering continuation keys forever must not hang a sync


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def enablebanking_error_message(response: httpx.Response) -> str:
    """``message`` plus the text code, e.g. "Session expired (EXPIRED_SESSION)"."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if not isinstance(body, dict):
        return ""
    message, code = str(body.get("message") or ""), str(body.get("error") or "")
    return (f"{message} ({code})" if message and code else message or code)[:300]


def enablebanking_error_type(response: httpx.Response) -> type[ProviderError] | None:
    code = _error_code(response)
    if code in SESSION_GONE:
        return AccessRevoked
    if response.status_code == 404 and "/accounts/" in response.request.url.path:
        return AccessRevoked  # the account's uid belongs to a session that is gone
    return None


class BankLimitReached(RateLimited):
    """The bank's per-account allowance of unattended calls (PSD2: four a day) is spent."""


def next_midnight(now: float) -> float:
    """Banks count the four calls per calendar day: the allowance returns at midnight (UTC)."""
    today = datetime.fromtimestamp(now, UTC).date()
    return datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC).timestamp()


class _BankLimit(httpx.AsyncBaseTransport):
    """Raises ``BankLimitReached`` for the bank's 429 so ProviderHttp does not wait hours for it;
    Enable Banking's own 429s (no such code) keep the shared retry-and-wait handling."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if response.status_code != 429:
            return response
        body = await response.aread()
        await response.aclose()
        kept = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-encoding", "content-length")
        }
        rebuilt = httpx.Response(429, headers=kept, content=body, request=request)
        if _error_code(rebuilt) == BANK_LIMIT:
            now = self._clock.now()
            retry = rebuilt.headers.get("retry-after")
            at = now + float(retry) if retry and retry.isdigit() else next_midnight(now)
            raise BankLimitReached(
                "The bank's daily allowance of background calls for this account is used up",
                retry_after=at - now,
                retry_at=datetime.fromtimestamp(at, UTC),
            )
        return rebuilt

    async def aclose(self) -> None:
        await self._inner.aclose()


class _JwtAuth(httpx.Auth):
    def __init__(self, signer: EnableBankingSigner) -> None:
        self._signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._signer.token()}"
        yield request


# The PSU headers finsync can fill from the person's request (no geolocation, no Accept-*).
PSU_IP, PSU_USER_AGENT = "Psu-Ip-Address", "Psu-User-Agent"


def psu_headers(present: PersonPresent | None, required: Any) -> dict[str, str]:
    """The headers that mark a data call as made with the person present, or none.

    The ASPSP's ``required_psu_headers`` must all be sent, or none of the PSU headers (else
    ``PSU_HEADER_NOT_PROVIDED``): when it asks for one finsync cannot fill, nothing is sent
    and the call is an unattended one. Unknown list (connected before it was kept): both."""
    if present is None:
        return {}
    known = {PSU_IP: present.ip_address}
    if present.user_agent:
        known[PSU_USER_AGENT] = present.user_agent
    if isinstance(required, list):
        wanted = {str(h).lower() for h in required}
        if not wanted <= {k.lower() for k in known}:
            return {}
    return known


class EnableBankingClient:
    def __init__(
        self,
        *,
        base_url: str,
        signer: EnableBankingSigner,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._http = ProviderHttp(
            provider="enablebanking",
            base_url=base_url.rstrip("/") + "/",
            auth=_JwtAuth(signer),
            limits=LIMITS,
            clock=clock,
            transport=_BankLimit(transport or http_transport(), clock or SystemClock()),
            timeout=timeout,
            error_message=enablebanking_error_message,
            error_type=enablebanking_error_type,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, url: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, endpoint=endpoint, **kwargs)
        except AccessRevoked:
            raise
        except ProviderAuthError as exc:  # the JWT was refused: the deployment's key or id is wrong
            raise Unavailable(
                f"Enable Banking refused this deployment's application key: {exc.detail}"
            ) from None
        body = self._http.decode(response, endpoint)
        if not isinstance(body, dict):
            raise BadData(f"enablebanking {endpoint}: expected a JSON object")
        return body

    async def aspsps(self, country: str) -> list[dict[str, Any]]:
        body = await self._json("GET", "aspsps", "aspsps", params={"country": country.upper()})
        return [a for a in body.get("aspsps") or [] if isinstance(a, dict)]

    async def start_auth(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "auth", "auth", json=payload)

    async def create_session(self, code: str) -> dict[str, Any]:
        """A refused code (used already, or too old) means the link must be started again."""
        try:
            return await self._json("POST", "sessions", "sessions", json={"code": code})
        except (Unavailable, RateLimited):
            raise
        except ProviderError as exc:
            raise ProviderAuthError(
                "Enable Banking did not accept the bank's authorisation; start the connection again "
                f"({exc.detail})"
            ) from None

    async def delete_session(self, session_id: str) -> None:
        """Revoke the consent at the bank (the answer's body, if any, says nothing we need)."""
        try:
            await self._http.request("DELETE", f"sessions/{session_id}", endpoint="sessions")
        except AccessRevoked:
            return  # already closed or expired: nothing left to revoke

    async def balances(self, uid: str, psu: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """``psu``: the PSU headers of a call made with the person present (``psu_headers``)."""
        body = await self._json("GET", f"accounts/{uid}/balances", "balances", headers=psu or {})
        return [b for b in body.get("balances") or [] if isinstance(b, dict)]

    async def transactions(
        self, uid: str, date_from: date, date_to: date, psu: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every page: ``continuation_key`` is followed until the bank sends none."""
        params: dict[str, str] = {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
        found: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            body = await self._json(
                "GET", f"accounts/{uid}/transactions", "transactions", params=params, headers=psu or {}
            )
            found += [t for t in body.get("transactions") or [] if isinstance(t, dict)]
            key = body.get("continuation_key")
            if not key:
                return found
            params = {**params, "continuation_key": str(key)}
        raise BadData(f"enablebanking transactions: more than {MAX_PAGES} pages")
