"""Charles Schwab (Trader API): OAuth 2.0 with PKCE, accounts, positions and transactions.

Wiring: ``METADATA.flow_factory(settings)`` builds the redirect flow, and
``METADATA.adapter_factory(session, settings)`` the sync adapter; both accept
``clock=`` and ``transport=`` keywords so tests can point them at a fake server.
"""

from __future__ import annotations

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.providers.schwab.adapter import SchwabAdapter, SchwabSettings, create_adapter, create_flow
from finsync.providers.schwab.flow import SchwabFlow
from finsync.providers.spec import Ability, ProviderMetadata

METADATA = ProviderMetadata(
    slug="schwab",
    display_name="Charles Schwab",
    category=ProviderCategory.BROKERAGE,
    auth_type=AuthType.OAUTH2,
    capabilities=frozenset(
        {Capability.ACCOUNTS, Capability.BALANCES, Capability.HOLDINGS, Capability.TRANSACTIONS}
    ),
    description=(
        "US brokerage accounts through the Schwab Trader API (log in at Schwab; re-consent every 7 days)."
    ),
    docs_url="docs/providers/schwab.md",
    account_key="the plain account number; the hashValue the API wants is looked up on each sync",
    settings=SchwabSettings,
    abilities=frozenset({Ability.KEY_VALIDATION}),  # reconnects must be the same login
    adapter_factory=create_adapter,
    flow_factory=create_flow,
)

__all__ = ["METADATA", "SchwabAdapter", "SchwabFlow", "SchwabSettings", "create_adapter", "create_flow"]
