"""Alpaca Trading API v2 calls: one 200/min budget per key, activities paged by ``page_token``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finsync.domain.errors import AuthError, BadData
from finsync.providers.http import SHARED_BUCKET, ProviderHttp, RateLimit

PROVIDER = "alpaca"
PAGE_SIZE = 100  # documented default and maximum
LIMITS: Mapping[str, RateLimit] = {SHARED_BUCKET: RateLimit(200, 60.0)}


class AlpacaClient:
    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    async def _get(self, url: str, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        try:
            return await self.http.get_json(url, endpoint=endpoint, params=params)
        except AuthError as exc:
            raise AuthError(
                "Alpaca rejected the API key: check the key id and secret, and that they "
                f"belong to this environment (paper or live) ({exc.detail})"
            ) from None

    async def account(self) -> dict[str, Any]:
        body = await self._get("/v2/account", "account")
        if not isinstance(body, dict):
            raise BadData("alpaca account: expected an object")
        return body

    async def positions(self) -> list[dict[str, Any]]:
        body = await self._get("/v2/positions", "positions")
        if not isinstance(body, list):
            raise BadData("alpaca positions: expected an array")
        return body

    async def activities(self, after: str | None = None) -> list[dict[str, Any]]:
        """Newest first; next page = last item's id as ``page_token``; a short page is the last."""
        params: dict[str, Any] = {"direction": "desc", "page_size": PAGE_SIZE}
        if after:
            params["after"] = after
        items: list[dict[str, Any]] = []
        tokens: set[str] = set()
        while True:
            page = await self._get("/v2/account/activities", "activities", params)
            if not isinstance(page, list) or not all(isinstance(i, dict) for i in page):
                raise BadData("alpaca activities: expected an array of objects")
            items.extend(page)
            if len(page) < PAGE_SIZE:
                return items
            token = page[-1].get("id")
            if not isinstance(token, str) or token in tokens:
                raise BadData("alpaca activities: paging does not advance")
            tokens.add(token)
            params["page_token"] = token
