"""Interactive Brokers through the Flex Web Service (v3): read-only statements from a Flex
query, with a Flex token and the query's id. Read with ``docs/providers/ibkr.md``.

Flex statements are updated once a day at IBKR's close of business (US Eastern evening), so
the connection syncs once a day after it; a token's lifetime cannot be read, so the connect
form asks for its expiry date (optional), which becomes the connection's ``expires_at``.
"""

from datetime import time

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.schedule import DAY_MINUTES, SyncSchedule
from finsync.providers.ibkr.adapter import IbkrAdapter, IbkrSettings, create_adapter
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata

# 04:00 UTC: 23:00 New York in winter, midnight in summer; IBKR's day is closed and its
# statements rebuilt by then.
UPDATED_AFTER = time(4, 0)

METADATA = ProviderMetadata(
    slug="ibkr",
    display_name="Interactive Brokers",
    category=ProviderCategory.BROKERAGE,
    auth_type=AuthType.API_KEY,
    capabilities=frozenset(
        {Capability.ACCOUNTS, Capability.BALANCES, Capability.HOLDINGS, Capability.TRANSACTIONS}
    ),
    abilities=frozenset({Ability.KEY_VALIDATION}),
    description=(
        "Interactive Brokers accounts through a Flex query (read-only): cash per currency, "
        "positions, trades, dividends, interest, fees, deposits and splits; updated daily."
    ),
    docs_url="docs/providers/ibkr.md",
    institutions=("Interactive Brokers",),
    account_key=(
        "IBKR's account number (accountId, e.g. U1234567): one account per accountId in the statement"
    ),
    credential_fields=(
        CredentialField(
            name="token",
            label="Flex Web Service token",
            help=(
                "Client Portal → Performance & Reports → Flex Queries → Flex Web Service "
                "Configuration → generate a token. A new token invalidates the old one."
            ),
        ),
        CredentialField(
            name="query_id",
            label="Flex query id",
            secret=False,
            help="The Activity Flex Query's id (the info icon next to the query in Client Portal).",
        ),
        CredentialField(
            name="token_expires_on",
            label="Token expires on",
            secret=False,
            required=False,
            expiry=True,
            help=(
                "The expiry date Client Portal shows for the token (YYYY-MM-DD). finsync cannot "
                "read it from IBKR; with it, the connection warns a week before."
            ),
        ),
    ),
    settings=IbkrSettings,
    adapter_factory=create_adapter,
    # Once a day after IBKR's close-of-business update; more often reads the same statement.
    schedule=SyncSchedule(default_minutes=DAY_MINUTES, minimum_minutes=60, daily_after=UPDATED_AFTER),
)

__all__ = ["METADATA", "IbkrAdapter", "IbkrSettings", "create_adapter"]
