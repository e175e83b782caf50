"""Example Bank's API: ``GET /v1/accounts`` and cursor-paged transactions, 60 calls a minute."""

from collections.abc import Mapping
from typing import Any, ClassVar

from finsync.domain.errors import ProviderAuthError, ProviderError
from finsync.providers.common import JsonClient, Reword
from finsync.providers.http import SHARED_BUCKET, RateLimit

LIMITS: Mapping[str, RateLimit] = {SHARED_BUCKET: RateLimit(60, 60.0)}


class ExampleBankClient(JsonClient):
    rewords: ClassVar[Mapping[type[ProviderError], Reword]] = {
        ProviderAuthError: lambda _, detail: (
            f"Example Bank rejected the API key; create a new one ({detail})"
        ),
    }

    async def accounts(self, *, retries: int | None = None) -> list[dict[str, Any]]:
        body = await self.get_object("/v1/accounts", "accounts", retries=retries)
        return [a for a in body.get("accounts") or [] if isinstance(a, dict)]

    async def transactions(self, account_id: str, cursor: str | None) -> tuple[list[dict[str, Any]], str]:
        """Everything after ``cursor`` (all when None), and the cursor to resume from next time."""
        items: list[dict[str, Any]] = []
        while True:
            params = {"after": cursor} if cursor else {}
            page = await self.get_object(f"/v1/accounts/{account_id}/transactions", "transactions", params)
            items += [t for t in page.get("transactions") or [] if isinstance(t, dict)]
            cursor = str(page.get("cursor") or cursor or "")
            if not page.get("has_more"):
                return items, cursor
