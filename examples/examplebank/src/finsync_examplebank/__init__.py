"""Example Bank: a complete minimal API-key provider and finsync plugin (its entry point
``finsync.providers`` names ``METADATA``). Read with ``docs/providers/index.md``."""

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata
from finsync_examplebank.adapter import ExampleBankSettings, create_adapter

METADATA = ProviderMetadata(
    slug="examplebank",
    display_name="Example Bank",
    category=ProviderCategory.BANK,
    auth_type=AuthType.API_KEY,
    # No HOLDINGS: a bank has no positions, so the adapter has no fetch_holdings.
    capabilities=frozenset({Capability.ACCOUNTS, Capability.BALANCES, Capability.TRANSACTIONS}),
    abilities=frozenset({Ability.KEY_VALIDATION}),
    description="Example Bank current and savings accounts with an API key (a worked example).",
    docs_url="docs/providers/index.md",
    account_key="Example Bank's account id (stable for the life of the account)",
    credential_fields=(CredentialField(name="api_key", label="API key", help="Online banking → API keys."),),
    settings=ExampleBankSettings,
    adapter_factory=create_adapter,
)
