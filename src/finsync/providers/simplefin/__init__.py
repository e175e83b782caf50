"""SimpleFIN Bridge: US and Canadian bank accounts, read-only, through a setup token the
person makes at their own bridge subscription (no developer key). Read with
``docs/providers/simplefin.md``.

The pasted setup token is claimed once, during validation, for an access URL: that URL
(``https://user:pass@host/simplefin``) replaces the token in the stored credentials.
"""

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.schedule import SyncSchedule
from finsync.providers.simplefin.adapter import SimpleFinAdapter, SimpleFinSettings, create_adapter
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata

METADATA = ProviderMetadata(
    slug="simplefin",
    display_name="SimpleFIN Bridge",
    category=ProviderCategory.BANK,
    auth_type=AuthType.API_KEY,
    capabilities=frozenset(
        {Capability.ACCOUNTS, Capability.BALANCES, Capability.TRANSACTIONS, Capability.HOLDINGS}
    ),
    abilities=frozenset({Ability.KEY_VALIDATION}),
    description=(
        "US and Canadian banks, cards and some brokerages through your own SimpleFIN Bridge "
        "subscription (about $15 a year): paste a setup token from the bridge."
    ),
    docs_url="docs/providers/simplefin.md",
    account_key="SimpleFIN's account id (the bridge keeps it for the life of the linked account)",
    credential_fields=(
        CredentialField(
            name="setup_token",
            label="Setup token",
            help=(
                "SimpleFIN Bridge → Apps → New connection → copy the setup token. It works once: "
                "finsync claims it and keeps only the resulting access URL, encrypted."
            ),
        ),
    ),
    settings=SimpleFinSettings,
    adapter_factory=create_adapter,
    # The bridge asks apps for at most 24 requests a day and refreshes from banks about once a
    # day: every 6 hours by default (one request each), hourly at most.
    schedule=SyncSchedule(default_minutes=360, minimum_minutes=60),
)

__all__ = ["METADATA", "SimpleFinAdapter", "SimpleFinSettings", "create_adapter"]
