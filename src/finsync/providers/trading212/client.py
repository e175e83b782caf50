"""Trading 212 Public API v0 calls: documented limits per endpoint, scopes, cursor paging."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from finsync.domain.errors import BadData, ProviderAuthError, ProviderError, ScopeError
from finsync.domain.ports import SendSlot
from finsync.providers.common import JsonClient, Reword
from finsync.providers.http import RateLimit

PROVIDER = "trading212"
API = "/api/v0"
PAGE_LIMIT = 50  # documented maximum

LIMITS: Mapping[str, RateLimit] = {
    "account_summary": RateLimit(1, 5.0),
    "positions": RateLimit(1, 1.0),
    "history_orders": RateLimit(6, 60.0),
    "history_dividends": RateLimit(6, 60.0),
    "history_transactions": RateLimit(6, 60.0),
    # Orders (trading): documented per endpoint; a full budget queues, never a 429.
    "orders_market": RateLimit(50, 60.0),
    "orders_limit": RateLimit(1, 2.0),
    "orders_stop": RateLimit(1, 2.0),
    "orders_stop_limit": RateLimit(1, 2.0),
    "orders_open": RateLimit(1, 5.0),
    "order_get": RateLimit(1, 1.0),
    "order_cancel": RateLimit(50, 60.0),
}
PATHS: Mapping[str, str] = {
    "account_summary": f"{API}/equity/account/summary",
    "positions": f"{API}/equity/positions",
    "history_orders": f"{API}/equity/history/orders",
    "history_dividends": f"{API}/equity/history/dividends",
    "history_transactions": f"{API}/equity/history/transactions",
    "orders_market": f"{API}/equity/orders/market",
    "orders_limit": f"{API}/equity/orders/limit",
    "orders_stop": f"{API}/equity/orders/stop",
    "orders_stop_limit": f"{API}/equity/orders/stop_limit",
    "orders_open": f"{API}/equity/orders",
}
SCOPES: Mapping[str, str] = {
    "account_summary": "account",
    "positions": "portfolio",
    "history_orders": "history:orders",
    "history_dividends": "history:dividends",
    "history_transactions": "history:transactions",
    "orders_market": "orders:execute",
    "orders_limit": "orders:execute",
    "orders_stop": "orders:execute",
    "orders_stop_limit": "orders:execute",
    "orders_open": "orders:read",
    "order_get": "orders:read",
    "order_cancel": "orders:execute",
}
HISTORY = ("history_orders", "history_dividends", "history_transactions")


class Trading212Client(JsonClient):
    rewords: ClassVar[Mapping[type[ProviderError], Reword]] = {
        # Trading 212 publishes no error body, so name the missing scope ourselves.
        ScopeError: lambda endpoint, detail: (
            f"Trading 212 API key lacks the '{SCOPES[endpoint]}' permission; "
            f"enable it for the key and reconnect ({detail})"
        ),
        ProviderAuthError: lambda _, detail: (
            "Trading 212 rejected the API key: check the key and secret, and that they "
            f"belong to this environment (demo or live) ({detail})"
        ),
    }

    async def account_summary(self, *, retries: int | None = None) -> dict[str, Any]:
        return await self.get_object(PATHS["account_summary"], "account_summary", retries=retries)

    async def positions(self) -> list[dict[str, Any]]:
        return await self.get_list(PATHS["positions"], "positions")

    async def post_order(
        self, endpoint: str, body: dict[str, Any], slot: SendSlot | None = None
    ) -> dict[str, Any]:
        """One send, never retried here: a POST that failed after sending may have placed the order."""
        content = orjson.dumps(body, default=_json_number)
        headers = {"Content-Type": "application/json"}
        response = await self._call(
            "POST", PATHS[endpoint], endpoint, content=content, headers=headers, slot=slot
        )
        out = self.http.decode(response, endpoint)
        if not isinstance(out, dict):
            raise BadData(f"trading212 {endpoint}: expected an object")
        return out

    async def open_orders(self) -> list[dict[str, Any]]:
        return await self.get_list(PATHS["orders_open"], "orders_open")

    async def order(self, order_id: str) -> dict[str, Any]:
        return await self.get_object(f"{PATHS['orders_open']}/{int(order_id)}", "order_get")

    async def cancel(self, order_id: str) -> None:
        await self._call("DELETE", f"{PATHS['orders_open']}/{int(order_id)}", "order_cancel")

    async def _call(self, method: str, url: str, endpoint: str, **kwargs: Any) -> Any:
        try:
            return await self.http.request(method, url, endpoint=endpoint, **kwargs)
        except ProviderError as exc:
            for kind, reword in self.rewords.items():
                if isinstance(exc, kind) and type(exc) is kind:
                    raise kind(reword(endpoint, exc.detail)) from None
            raise

    async def page(self, endpoint: str, path: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One history page and the ``nextPagePath`` to follow verbatim (None: the last page).
        ``path`` None is the first page; otherwise a path an earlier page returned."""
        url = PATHS[endpoint] if path is None else _api_path(path, endpoint)
        params = {"limit": PAGE_LIMIT} if path is None else None
        body = await self.get(url, endpoint, params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise BadData(f"trading212 {endpoint}: expected {{items, nextPagePath}}")
        items = [item for item in body["items"] if isinstance(item, dict)]
        if len(items) != len(body["items"]):
            raise BadData(f"trading212 {endpoint}: expected objects in items")
        return items, _next_path(body.get("nextPagePath"), endpoint)


def _api_path(value: Any, endpoint: str) -> str:
    # Only same-host API paths: an absolute URL would send our credentials elsewhere.
    if not isinstance(value, str) or not value.startswith(f"{API}/") or "//" in value:
        raise BadData(f"trading212 {endpoint}: unexpected nextPagePath")
    return value


def _next_path(value: Any, endpoint: str) -> str | None:
    return None if value is None else _api_path(value, endpoint)


def _json_number(value: object) -> orjson.Fragment:
    """A Decimal as a JSON number, exactly its digits (a float would round past 17 of them)."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"not JSON: {type(value).__name__}")
