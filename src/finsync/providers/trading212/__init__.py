"""Trading 212 (Invest and Stocks ISA) through its Public API v0, with an API key.

``METADATA.adapter_factory(session, settings, clock=..., transport=...)`` builds
the sync adapter; ``session.environment`` is ``live`` (default) or ``demo``.
"""

from __future__ import annotations

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata
from finsync.providers.trading212.adapter import (
    ENVIRONMENTS,
    Trading212Adapter,
    Trading212Settings,
    create_adapter,
)

METADATA = ProviderMetadata(
    slug="trading212",
    display_name="Trading 212",
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
    description="Trading 212 Invest and Stocks ISA accounts: balances, positions, orders, dividends, cash.",
    docs_url="docs/providers/trading212.md",
    institutions=("Trading 212",),
    environments=ENVIRONMENTS,
    account_key="Trading 212's account id (one account per API key; demo and live differ)",
    credential_fields=(
        CredentialField(
            name="api_key",
            label="API key",
            help="Trading 212 app → Settings → API (Beta) → Generate API key. Demo and live keys differ. "
            "Grant the scopes account, portfolio, history:orders, history:dividends, history:transactions "
            "(and orders:read, orders:execute to trade through finsync).",
        ),
        CredentialField(
            name="api_secret",
            label="API secret",
            required=False,
            help="Shown once next to a newly generated key. Leave empty only for an older key issued "
            "without a secret.",
        ),
    ),
    abilities=frozenset({Ability.KEY_VALIDATION}),
    settings=Trading212Settings,
    adapter_factory=create_adapter,
)

__all__ = ["METADATA", "Trading212Adapter", "Trading212Settings", "create_adapter"]
