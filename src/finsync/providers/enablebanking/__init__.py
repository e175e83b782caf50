"""Enable Banking: European (EU/EEA, UK, Nordic) bank accounts through a PSD2 bank link.

Unlike GoCardless Bank Account Data, Enable Banking still registers new applications,
and an application may link its owner's own accounts without a licence (see
docs/providers/enablebanking.md).

Wiring (the host's gateway):

- ``METADATA.resources`` builds one ``EnableBankingSigner`` per process (the application JWT,
  signed RS256 with the deployment's key, reused for an hour); both factories take it as
  ``signer=``.
- ``METADATA.flow_factory(settings, {"institution_id": "FI:Nordea"}, signer=...)`` builds the
  link flow; ``institutions(settings, "FI", signer=...)`` feeds the bank picker.
- ``METADATA.adapter_factory(session, settings, signer=...)`` builds the sync adapter;
  ``revoke(session, settings, signer=...)`` ends the consent at the bank.
"""

from __future__ import annotations

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.schedule import SyncSchedule
from finsync.providers.enablebanking.adapter import (
    EnableBankingAdapter,
    create_adapter,
    create_client,
    create_flow,
    institutions,
    revoke,
)
from finsync.providers.enablebanking.flow import EnableBankingFlow
from finsync.providers.enablebanking.settings import EnableBankingSettings, EnableBankingSigner
from finsync.providers.spec import Ability, ProviderMetadata

METADATA = ProviderMetadata(
    slug="enablebanking",
    display_name="Enable Banking",
    category=ProviderCategory.BANK,
    auth_type=AuthType.LINK,
    capabilities=frozenset({Capability.ACCOUNTS, Capability.BALANCES, Capability.TRANSACTIONS}),
    description=(
        "European, UK and Nordic bank accounts through open banking (link your bank; re-consent "
        "when the bank's consent ends, typically after 90-180 days). Needs an Enable Banking "
        "application, which a person can register for their own accounts."
    ),
    docs_url="docs/providers/enablebanking.md",
    account_key=(
        "the bank account's identification_hash (the same across consents), else the IBAN, "
        "else the session's account uid; each sync maps it to the current session's uid"
    ),
    settings=EnableBankingSettings,
    abilities=frozenset({Ability.PREFLIGHT}),  # bank budgets: refuse a sync before calling
    adapter_factory=create_adapter,
    flow_factory=create_flow,
    revoke=revoke,  # DELETE /sessions/{id} when the connection is deleted
    # Banks allow four unattended calls a day per account: every 8 hours keeps one for a manual
    # sync; 6 hours is the floor.
    schedule=SyncSchedule(default_minutes=480, minimum_minutes=360),
    resources=lambda settings, **options: {
        "signer": EnableBankingSigner.from_settings(settings, clock=options.get("clock"))
    },
)

__all__ = [
    "METADATA",
    "EnableBankingAdapter",
    "EnableBankingFlow",
    "EnableBankingSettings",
    "EnableBankingSigner",
    "create_adapter",
    "create_client",
    "create_flow",
    "institutions",
    "revoke",
]
