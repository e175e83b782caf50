"""Alpaca (US stocks, ETFs and crypto) through the Trading API v2, with an API key pair.

``METADATA.adapter_factory(session, settings, clock=..., transport=...)`` builds
the sync adapter; ``session.environment`` is ``paper`` (default) or ``live``.
"""

from __future__ import annotations

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.providers.alpaca.adapter import ENVIRONMENTS, AlpacaAdapter, AlpacaSettings, create_adapter
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata

METADATA = ProviderMetadata(
    slug="alpaca",
    display_name="Alpaca",
    category=ProviderCategory.BROKERAGE,
    auth_type=AuthType.API_KEY,
    capabilities=frozenset(
        {
            Capability.ACCOUNTS,
            Capability.BALANCES,
            Capability.HOLDINGS,
            Capability.TRANSACTIONS,
            Capability.TRADING,
        }
    ),
    description="Alpaca brokerage and paper accounts: balances, positions, fills, dividends, cash activity.",
    docs_url="docs/providers/alpaca.md",
    institutions=("Alpaca",),
    environments=ENVIRONMENTS,
    account_key="Alpaca's account id (one account per key pair; paper and live differ)",
    credential_fields=(
        CredentialField(
            name="key_id",
            label="API key ID",
            secret=False,
            help="Alpaca dashboard → API Keys (paper and live accounts have separate keys).",
        ),
        CredentialField(
            name="secret_key",
            label="API secret key",
            help="Shown once when the key is generated; regenerate it if lost.",
        ),
    ),
    abilities=frozenset({Ability.KEY_VALIDATION}),
    settings=AlpacaSettings,
    adapter_factory=create_adapter,
)

__all__ = ["METADATA", "AlpacaAdapter", "AlpacaSettings", "create_adapter"]
