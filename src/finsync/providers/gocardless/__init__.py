"""GoCardless Bank Account Data (formerly Nordigen): European bank accounts through a bank link.

Wiring (the lead's bootstrap):

- ``tokens = GoCardlessTokens.from_settings(settings)`` once per process (``METADATA.resources``);
  every factory below requires it as ``tokens=`` so the deployment mints one API token,
  not one per request (``token/new`` allows 100 an hour).
- ``METADATA.flow_factory(settings, {"institution_id": ...}, tokens=tokens)`` builds the
  link flow. The chosen bank travels in ``options`` because it is an input of this one
  link, not of the deployment; ``complete`` needs no options (``flow_data`` carries it).
- The bank returns to ``redirect_uri?ref=<state>``: the callback must read ``ref`` as state.
- ``institutions(settings, "GB", tokens=tokens)`` feeds the bank picker.
- ``METADATA.adapter_factory(session, settings, tokens=tokens)`` builds the sync adapter.

How another open-banking aggregator fits the same shape:

- Enable Banking: ``start`` signs a JWT with the deployment's application key and POSTs
  ``/auth`` with the chosen ASPSP (``options``) and ``state`` → ``AuthorizationStart(url)``;
  ``complete`` exchanges ``params["code"]`` at ``/sessions`` and stores the session id
  and account uids as credentials, ``expires_at`` = the session's ``valid_until``.
  The adapter reads ``/accounts/{uid}/balances`` and ``/transactions`` (continuation
  keys) — the same adapter surface, the same per-account budget helper for PSD2's
  four-unattended-calls-a-day rule.
- SimpleFIN Bridge: no redirect back; the user pastes a setup token, so it is an
  ``api_key`` provider whose ``credential_fields`` take the token; the adapter claims
  it once for an access URL (stored as the credential) and reads ``/accounts``.
  ``RedirectFlow`` stays for providers that bounce the browser back to us.
"""

from __future__ import annotations

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.schedule import SyncSchedule
from finsync.providers.gocardless.adapter import (
    GoCardlessAdapter,
    create_adapter,
    create_client,
    create_flow,
    institutions,
)
from finsync.providers.gocardless.flow import GoCardlessFlow
from finsync.providers.gocardless.tokens import GoCardlessSettings, GoCardlessTokens
from finsync.providers.spec import Ability, ProviderMetadata

METADATA = ProviderMetadata(
    slug="gocardless",
    display_name="GoCardless Bank Account Data",
    category=ProviderCategory.BANK,
    auth_type=AuthType.LINK,
    capabilities=frozenset({Capability.ACCOUNTS, Capability.BALANCES, Capability.TRANSACTIONS}),
    description=(
        "European and UK bank accounts through open banking (link your bank; re-consent every 90 days). "
        "GoCardless no longer accepts new sign-ups for this product."
    ),
    docs_url="docs/providers/gocardless.md",
    account_key=(
        "the IBAN, else the bank's resourceId, else GoCardless's account id (new on some "
        "re-consents); each sync maps it to the current consent's account id"
    ),
    settings=GoCardlessSettings,
    state_param="ref",  # the bank returns the requisition's reference, which is our state
    abilities=frozenset({Ability.PREFLIGHT}),  # bank budgets: refuse a sync before calling
    adapter_factory=create_adapter,
    flow_factory=create_flow,
    # Banks allow ~4 unattended calls a day per account: every 8 hours keeps one free for a
    # manual sync; 6 hours is the floor.
    schedule=SyncSchedule(default_minutes=480, minimum_minutes=360),
    resources=lambda settings, **options: {"tokens": GoCardlessTokens.from_settings(settings, **options)},
)

__all__ = [
    "METADATA",
    "GoCardlessAdapter",
    "GoCardlessFlow",
    "GoCardlessSettings",
    "GoCardlessTokens",
    "create_adapter",
    "create_client",
    "create_flow",
    "institutions",
]
