"""Alpaca Trading API v2 calls: one 200/min budget per key, activities paged by ``page_token``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx

from finsync.domain.errors import BadData, ProviderAuthError, ProviderError
from finsync.domain.ports import SendSlot
from finsync.providers.common import JsonClient, Reword
from finsync.providers.http import SHARED_BUCKET, RateLimit

PROVIDER = "alpaca"
PAGE_SIZE = 100  # documented default and maximum
LIMITS: Mapping[str, RateLimit] = {SHARED_BUCKET: RateLimit(200, 60.0)}

# Decides, from one page of activities, that older pages hold nothing new.
StopRule = Callable[[list[dict[str, Any]]], bool]


def alpaca_error_type(response: httpx.Response) -> type[ProviderError] | None:
    """A 403 without a numeric ``code`` is Alpaca's answer to a bad or revoked key
    (``{"message": "forbidden."}``); with one (``40310000``: buying power, a restricted
    account) it refuses the request itself and says nothing about the credentials."""
    if response.status_code != 403:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    numeric = (isinstance(code, int) and not isinstance(code, bool)) or (
        isinstance(code, str) and code.isdigit()
    )
    return ProviderError if numeric else ProviderAuthError


class AlpacaClient(JsonClient):
    rewords: ClassVar[Mapping[type[ProviderError], Reword]] = {
        ProviderAuthError: lambda _, detail: (
            "Alpaca rejected the API key: check the key id and secret, that they belong to "
            f"this environment (paper or live) and that the key was not revoked ({detail})"
        ),
    }

    async def account(self, *, retries: int | None = None) -> dict[str, Any]:
        return await self.get_object("/v2/account", "account", retries=retries)

    async def positions(self) -> list[dict[str, Any]]:
        return await self.get_list("/v2/positions", "positions")

    async def post_order(self, body: dict[str, Any], slot: SendSlot | None = None) -> dict[str, Any]:
        """One send, not retried here (a POST that failed after sending may have placed it)."""
        response = await self.http.request("POST", "/v2/orders", endpoint="orders", json=body, slot=slot)
        out = self.http.decode(response, "orders")
        if not isinstance(out, dict):
            raise BadData("alpaca orders: expected an object")
        return out

    async def order(self, order_id: str) -> dict[str, Any]:
        return await self.get_object(f"/v2/orders/{order_id}", "orders")

    async def order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        params = {"client_order_id": client_order_id}
        return await self.get_object("/v2/orders:by_client_order_id", "orders", params)

    async def open_orders(self) -> list[dict[str, Any]]:
        return await self.get_list("/v2/orders", "orders", {"status": "open", "limit": 500})

    async def cancel(self, order_id: str) -> None:
        await self.http.request("DELETE", f"/v2/orders/{order_id}", endpoint="orders")

    async def activities(
        self, after: str | None = None, stop: StopRule | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; next page = last item's id as ``page_token``; a short page is the last,
        and so is one ``stop`` says holds nothing new (a server may ignore ``after``)."""
        params: dict[str, Any] = {"direction": "desc", "page_size": PAGE_SIZE}
        if after:
            params["after"] = after
        items: list[dict[str, Any]] = []
        tokens: set[str] = set()
        while True:
            page = await self.get_list("/v2/account/activities", "activities", params)
            items.extend(page)
            if len(page) < PAGE_SIZE or (stop is not None and stop(page)):
                return items
            token = page[-1].get("id")
            if not isinstance(token, str) or token in tokens:
                raise BadData("alpaca activities: paging does not advance")
            tokens.add(token)
            params["page_token"] = token
