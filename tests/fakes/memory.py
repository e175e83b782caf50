"""An in-memory provider for sync-core tests: state in a dict, faults on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.errors import ProviderError
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, ProviderTransaction, TransactionBatch
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata


@dataclass
class MemoryProviders:
    """What the fake institution currently holds; tests mutate it between syncs."""

    accounts: list[ProviderAccount] = field(default_factory=list)
    holdings: dict[str, list[ProviderHolding]] = field(default_factory=dict)
    transactions: dict[str, list[ProviderTransaction]] = field(default_factory=dict)
    fail_on: dict[str, ProviderError] = field(default_factory=dict)  # method name -> error to raise
    calls: list[str] = field(default_factory=list)
    replace_pending: bool = False
    delay: float = 0.0  # seconds each fetch_accounts takes (a sync still running)


class MemoryAdapter:
    def __init__(self, data: MemoryProviders, session: ProviderSession) -> None:
        self._data = data
        self._session = session

    def _call(self, name: str) -> None:
        self._data.calls.append(name)
        if name in self._data.fail_on:
            raise self._data.fail_on[name]

    async def validate(self) -> list[str]:
        """Any token is good; the bank cannot name the login's accounts before a sync."""
        return []

    async def fetch_accounts(self) -> list[ProviderAccount]:
        self._call("fetch_accounts")
        if self._data.delay:
            await asyncio.sleep(self._data.delay)
        return list(self._data.accounts)

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        self._call("fetch_holdings")
        return list(self._data.holdings.get(account.provider_account_id, []))

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        self._call("fetch_transactions")
        items = list(self._data.transactions.get(account.provider_account_id, []))
        self._session.state["syncs"] = int(self._session.state.get("syncs", 0)) + 1
        since = min((t.transaction_date for t in items), default=None) if self._data.replace_pending else None
        return TransactionBatch(transactions=items, replace_pending_since=since)

    async def aclose(self) -> None:
        return None


def memory_provider_metadata(data: MemoryProviders) -> ProviderMetadata:
    def factory(session: ProviderSession, settings: Any, **_: Any) -> MemoryAdapter:
        return MemoryAdapter(data, session)

    return ProviderMetadata(
        slug="memory",
        display_name="In-memory test bank",
        category=ProviderCategory.BANK,
        auth_type=AuthType.API_KEY,
        capabilities=frozenset(
            {Capability.ACCOUNTS, Capability.BALANCES, Capability.HOLDINGS, Capability.TRANSACTIONS}
        ),
        description="A provider that lives in memory, for tests.",
        docs_url="docs/providers/index.md",
        account_key="the id the test gives each account",
        credential_fields=(CredentialField(name="token", label="Token"),),
        abilities=frozenset({Ability.KEY_VALIDATION}),
        adapter_factory=factory,
    )
