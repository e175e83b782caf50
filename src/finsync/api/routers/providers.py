"""The provider catalogue a client renders its connect forms from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from finsync.api.deps import ContainerDep, CurrentUser
from finsync.api.errors import responses
from finsync.api.schemas import CredentialFieldOut, InstitutionOut, ProviderOut
from finsync.domain.errors import InvalidInput, ProviderNotAvailable, Unavailable
from finsync.providers.spec import ProviderMetadata

router = APIRouter(prefix="/providers", tags=["providers"])


def provider_out(meta: ProviderMetadata, settings: object) -> ProviderOut:
    missing = meta.missing_settings(settings)
    return ProviderOut(
        slug=meta.slug,
        display_name=meta.display_name,
        category=meta.category,
        auth_type=meta.auth_type,
        capabilities=sorted(meta.capabilities),
        description=meta.description,
        docs_url=meta.docs_url,
        institutions=list(meta.institutions),
        environments=list(meta.environments),
        credential_fields=[CredentialFieldOut.model_validate(f) for f in meta.credential_fields],
        configured=not missing,
        unavailable_reason=(
            f"this server is not configured for {meta.display_name}: set " + ", ".join(missing)
            if missing
            else None
        ),
    )


@router.get("", response_model=list[ProviderOut])
async def list_providers(container: ContainerDep, _: CurrentUser) -> list[ProviderOut]:
    """Every provider this server can connect, with its connect-form fields."""
    return [provider_out(meta, container.settings) for meta in container.registry.all()]


@router.get(
    "/gocardless/institutions",
    response_model=list[InstitutionOut],
    responses=responses(InvalidInput, ProviderNotAvailable, Unavailable),
)
async def gocardless_institutions(
    container: ContainerDep,
    _: CurrentUser,
    country: Annotated[str, Query(min_length=2, max_length=2, description="ISO 3166 country code, e.g. GB")],
) -> list[InstitutionOut]:
    """Banks reachable through GoCardless in a country (cached for a day), for the bank picker."""
    banks = await container.institutions(country.upper())
    return [InstitutionOut.model_validate(b) for b in banks]


@router.get(
    "/enablebanking/institutions",
    response_model=list[InstitutionOut],
    responses=responses(InvalidInput, ProviderNotAvailable, Unavailable),
)
async def enablebanking_institutions(
    container: ContainerDep,
    _: CurrentUser,
    country: Annotated[str, Query(min_length=2, max_length=2, description="ISO 3166 country code, e.g. FI")],
) -> list[InstitutionOut]:
    """Banks (ASPSPs) reachable through Enable Banking in a country, for the bank picker (cached
    for a day). Connect with `{"provider": "enablebanking", "options": {"institution_id": <id>}}`;
    `max_access_valid_for_days` is the longest consent the bank allows (asked for unless
    `options.consent_days` is smaller)."""
    banks = await container.institutions(country.upper(), "enablebanking")
    return [InstitutionOut.model_validate(b) for b in banks]
