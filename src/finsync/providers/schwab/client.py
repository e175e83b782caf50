"""Schwab Trader API calls over the shared ProviderHttp, with a bearer token that may rotate mid-sync."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from finsync.domain.errors import BadData
from finsync.providers.http import SHARED_BUCKET, Clock, ProviderHttp, RateLimit, TokenSource

# Schwab publishes no numbers; ~120 requests/minute is the commonly quoted ceiling.
LIMITS = {SHARED_BUCKET: RateLimit(120, 60.0)}


def schwab_error_message(response: httpx.Response) -> str:
    """Schwab answers ``{message, errors}`` or the gateway's ``{errors: [{title, detail}]}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    if isinstance(body.get("message"), str):
        parts.append(body["message"])
    for err in body.get("errors") or []:
        if isinstance(err, dict):
            parts.append(str(err.get("detail") or err.get("title") or ""))
        elif isinstance(err, str):
            parts.append(err)
    return "; ".join(p for p in parts if p)[:300]


def iso_instant(moment: datetime) -> str:
    """Schwab's query format: ``2024-11-09T00:00:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class SchwabClient:
    def __init__(
        self,
        *,
        base_url: str,
        token: TokenSource,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._token = token  # the adapter's: refreshes (and persists) when told a token was rejected
        self._http = ProviderHttp(
            provider="schwab",
            base_url=base_url.rstrip("/") + "/",
            limits=LIMITS,
            clock=clock,
            transport=transport,
            timeout=timeout,
            error_message=schwab_error_message,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, url: str, endpoint: str, params: dict[str, Any] | None = None) -> Any:
        """GET with the current token; a 401 makes the token source refresh it, once."""
        response = await self._http.bearer_request(self._token, "GET", url, endpoint=endpoint, params=params)
        return self._http.decode(response, endpoint)

    async def account_numbers(self) -> list[dict[str, Any]]:
        return _list(await self._get("accounts/accountNumbers", "accountNumbers"))

    async def accounts(self) -> list[dict[str, Any]]:
        return _list(await self._get("accounts", "accounts", {"fields": "positions"}))

    async def account(self, account_hash: str) -> dict[str, Any]:
        body = await self._get(f"accounts/{account_hash}", "account", {"fields": "positions"})
        if not isinstance(body, dict):
            raise BadData("schwab account: expected an object")
        return body

    async def transactions(self, account_hash: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        params = {"startDate": iso_instant(start), "endDate": iso_instant(end)}
        return _list(await self._get(f"accounts/{account_hash}/transactions", "transactions", params))


def _list(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise BadData("schwab: expected a JSON list")
    return [item for item in body if isinstance(item, dict)]
