"""GoCardless Bank Account Data v2 calls over the shared ProviderHttp."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import httpx

from finsync.domain.errors import BadData, ProviderAuthError, ProviderError, RateLimited
from finsync.providers.budget import rate_header
from finsync.providers.gocardless.tokens import GoCardlessTokens, gocardless_error_message
from finsync.providers.http import AccessRevoked, Clock, ProviderHttp, RateLimit, SystemClock, http_transport

LIMITS = {"accounts": RateLimit(100, 60.0), "institutions": RateLimit(300, 60.0)}
_SECONDS = re.compile(r"(\d+)\s*seconds?")
_CONSENT_GONE = re.compile(r"\b(EUA|End User Agreement)\b|access has expired or it has been revoked", re.I)


def gocardless_error_type(response: httpx.Response) -> type[ProviderError] | None:
    """Tell a dead *consent* from a dead *token*: only the token is renewed and retried.

    An expired end-user agreement answers ``{"summary": "End User Agreement (EUA) … has
    expired", …}`` (401, some banks 400); access withdrawn at the bank ``{"type":
    "AccessExpiredError", …}``; an account id GoCardless no longer knows (the link was
    deleted or replaced) 404. All three need the person to reconnect the bank. A plain
    ``{"summary": "Invalid token"}`` 401 is left to the default: renew the token once.
    """
    status = response.status_code
    if status == 404 and "/accounts/" in response.request.url.path:
        return AccessRevoked
    if status not in (400, 401, 403):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    text = " ".join(str(body.get(key) or "") for key in ("summary", "detail"))
    if body.get("type") == "AccessExpiredError" or _CONSENT_GONE.search(text):
        return AccessRevoked
    return None


class BankLimitReached(RateLimited):
    """The bank's per-account daily allowance (not GoCardless's own per-minute limit) ran out."""

    def __init__(self, detail: str, retry_after: float, retry_at: datetime) -> None:
        super().__init__(detail, retry_after=retry_after, retry_at=retry_at)


class _RateLimitHeaders(httpx.AsyncBaseTransport):
    """Adapts GoCardless 429s to ProviderHttp, which we share with every provider.

    GoCardless sends *relative* reset seconds under ``HTTP_X_RATELIMIT_*`` names. A
    per-minute 429 gets a standard ``Retry-After`` so ProviderHttp waits the right
    time; a bank's daily-allowance 429 is raised at once as ``BankLimitReached``:
    retrying it within the sync would only wait for hours.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        reset = _per_minute(response.headers, self._clock.now())
        if response.status_code != 429:
            return response
        body = await response.aread()
        await response.aclose()
        headers = response.headers
        if rate_header(headers, "account-success-remaining") == 0:
            found = _SECONDS.search(body.decode(errors="replace"))
            reset = rate_header(headers, "account-success-reset")
            wait = reset if reset is not None else float(found.group(1)) if found else 3600.0
            raise BankLimitReached(
                "The bank's daily call allowance for this account is used up",
                retry_after=wait,
                retry_at=datetime.fromtimestamp(self._clock.now() + wait, UTC),
            )
        # ``aread`` decoded the body, so the rebuilt response must not claim an encoding or length.
        kept = {k: v for k, v in headers.items() if k.lower() not in ("content-encoding", "content-length")}
        if reset is not None and "retry-after" not in headers:
            kept["Retry-After"] = str(int(reset))
        return httpx.Response(429, headers=kept, content=body, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _per_minute(headers: httpx.Headers, now: float) -> float | None:
    """GoCardless's per-minute limit, told as ``HTTP_X_RATELIMIT_REMAINING``/``_RESET`` (or
    ``x-ratelimit-*``) with the reset in *relative* seconds, restated as the
    ``x-ratelimit-remaining``/``-reset`` (Unix time) ProviderHttp reads. Returns the relative reset."""
    remaining, reset = rate_header(headers, "remaining"), rate_header(headers, "reset")
    if remaining is not None:
        headers["x-ratelimit-remaining"] = str(int(remaining))
    if reset is not None:
        headers["x-ratelimit-reset"] = str(now + reset)
    return reset


class GoCardlessClient:
    def __init__(
        self,
        *,
        base_url: str,
        tokens: GoCardlessTokens,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._tokens = tokens
        inner = transport or http_transport()
        self._http = ProviderHttp(
            provider="gocardless",
            base_url=base_url.rstrip("/") + "/",
            limits=LIMITS,
            clock=clock,
            transport=_RateLimitHeaders(inner, clock or SystemClock()),
            timeout=timeout,
            error_message=gocardless_error_message,
            error_type=gocardless_error_type,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, url: str, endpoint: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> httpx.Response:
        """Send with the shared token; a 401 gets one retry with a renewed token.

        Every rejected token is forgotten, the second one too, so later calls renew it."""
        sent: list[str] = []

        async def token(rejected: str | None) -> str:
            if rejected is not None:
                self._tokens.invalidate(rejected)
            sent.append(await self._tokens.access_token())
            return sent[-1]

        try:
            return await self._http.bearer_request(
                token, method, url, endpoint=endpoint, params=params, json=json
            )
        except AccessRevoked:  # the consent is gone, the token is fine: keep it
            raise
        except ProviderAuthError:
            for access in sent:
                self._tokens.invalidate(access)
            raise

    async def _json(self, method: str, url: str, endpoint: str, **kwargs: Any) -> Any:
        return self._http.decode(await self._call(method, url, endpoint, **kwargs), endpoint)

    async def institutions(self, country: str) -> list[dict[str, Any]]:
        body = await self._json("GET", "institutions/", "institutions", params={"country": country.lower()})
        if not isinstance(body, list):
            raise BadData("gocardless institutions: expected a list")
        return [item for item in body if isinstance(item, dict)]

    async def institution(self, institution_id: str) -> dict[str, Any]:
        return _obj(await self._json("GET", f"institutions/{institution_id}/", "institutions"))

    async def create_agreement(
        self, institution_id: str, max_historical_days: int, access_valid_for_days: int
    ) -> dict[str, Any]:
        payload = {
            "institution_id": institution_id,
            "max_historical_days": max_historical_days,
            "access_valid_for_days": access_valid_for_days,
            "access_scope": ["balances", "details", "transactions"],
        }
        return _obj(await self._json("POST", "agreements/enduser/", "agreements", json=payload))

    async def agreement(self, agreement_id: str) -> dict[str, Any]:
        return _obj(await self._json("GET", f"agreements/enduser/{agreement_id}/", "agreements"))

    async def create_requisition(self, payload: dict[str, Any]) -> dict[str, Any]:
        return _obj(await self._json("POST", "requisitions/", "requisitions", json=payload))

    async def requisition(self, requisition_id: str) -> dict[str, Any]:
        return _obj(await self._json("GET", f"requisitions/{requisition_id}/", "requisitions"))

    async def account_data(
        self, account_id: str, kind: str, date_from: date | None = None, date_to: date | None = None
    ) -> tuple[dict[str, Any], httpx.Headers]:
        """``kind`` is details, balances or transactions; the headers feed the budget."""
        params = None
        if date_from is not None and date_to is not None:
            params = {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
        response = await self._call("GET", f"accounts/{account_id}/{kind}/", "accounts", params=params)
        return _obj(self._http.decode(response, kind)), response.headers


def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadData("gocardless: expected a JSON object")
    return body
