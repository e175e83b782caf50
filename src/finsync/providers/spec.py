"""The provider contract: what a provider package declares and what the host may call.

A leaf module (it imports the domain and pydantic-settings, nothing of the providers), so
provider packages import it without importing the registry, and the registry imports
the provider packages at the top. ``check_adapter`` holds a built adapter to what its
metadata declares: an ability is present exactly when declared, and an adapter has no
public coroutine the contract does not name (a misnamed ``validate`` fails, never skips).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic_settings import BaseSettings, SettingsConfigDict

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.ports import (
    HoldingsSource,
    KeyValidator,
    OrderPort,
    Preflight,
    ProviderAdapter,
    ProviderSession,
    RedirectFlow,
    StatementFormat,
)
from finsync.domain.schedule import SyncSchedule

__all__ = [
    "Ability",
    "AdapterFactory",
    "CredentialField",
    "FlowFactory",
    "ProviderMetadata",
    "ProviderSettings",
    "ResourceFactory",
    "RevokeFactory",
    "check_adapter",
]


class Ability(StrEnum):
    """Optional adapter abilities beyond the capabilities clients see."""

    KEY_VALIDATION = "key_validation"  # KeyValidator: credentials are checked before they are stored
    PREFLIGHT = "preflight"  # Preflight: refuses a sync over budget without calling the provider


# Each optional ability and the Protocol an adapter has exactly when it is declared.
ABILITY_PROTOCOLS: Mapping[Capability | Ability, type] = {
    Capability.HOLDINGS: HoldingsSource,
    Capability.TRADING: OrderPort,
    Ability.KEY_VALIDATION: KeyValidator,
    Ability.PREFLIGHT: Preflight,
}
# Public coroutines an adapter may define: the members of the Protocols above.
_CONTRACT_METHODS = frozenset(
    {
        "fetch_accounts",
        "fetch_transactions",
        "aclose",
        "fetch_holdings",
        "validate",
        "preflight",
        "reserve_send",
        "place_order",
        "find_orders",
        "get_order",
        "cancel_order",
        "open_orders",
    }
)


class ProviderSettings(BaseSettings):
    """A provider's own deployment settings, read from ``FINSYNC_<SLUG>_<FIELD>`` variables
    (and ``.env``), so a plugin brings its hosts and keys without touching ``config.Settings``.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="FINSYNC_<SLUG>_", ...)``
    and name the fields a deployment must set in ``required`` (``GET /providers`` reports the
    provider unconfigured until they are). ``timeout_seconds`` defaults to the deployment's
    ``FINSYNC_PROVIDER_TIMEOUT_SECONDS``.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    required: ClassVar[tuple[str, ...]] = ()

    timeout_seconds: float = 30.0

    def missing(self) -> list[str]:
        """Required fields that are unset, as the environment variables that set them."""
        prefix = str(self.model_config.get("env_prefix") or "")
        return [f"{prefix}{name}".upper() for name in self.required if not getattr(self, name)]


class AdapterFactory(Protocol):
    """``(session, settings, *, clock=None, transport=None, **resources) -> adapter``.

    ``settings`` is the provider's ``ProviderSettings`` when it declares a model, else the
    deployment's ``config.Settings``. The return type is checked by mypy: an adapter
    missing a ``ProviderAdapter`` method does not type-check. Keyword options are the
    host's (test clock and transport) plus what ``resources`` built.
    """

    def __call__(
        self, session: ProviderSession, settings: Any, /, *args: Any, **options: Any
    ) -> ProviderAdapter: ...


class FlowFactory(Protocol):
    """``(settings, options, *, clock=None, transport=None, **resources) -> RedirectFlow``."""

    def __call__(
        self, settings: Any, options: dict[str, Any], /, *args: Any, **keywords: Any
    ) -> RedirectFlow: ...


class RevokeFactory(Protocol):
    """``(session, settings, *, clock=None, transport=None, **resources) -> awaitable``: ends the
    person's grant at the provider when its connection is deleted (the host calls it after the
    deletion is committed, best effort: a failure is logged, the deletion stands)."""

    def __call__(
        self, session: ProviderSession, settings: Any, /, *args: Any, **options: Any
    ) -> Awaitable[None]: ...


class ResourceFactory(Protocol):
    """Per-process objects (e.g. a token cache) handed to both factories as keywords."""

    def __call__(self, settings: Any, /, *args: Any, **options: Any) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialField:
    """One input of a provider's connect form."""

    name: str
    label: str
    secret: bool = True
    required: bool = True
    help: str = ""
    # A date (YYYY-MM-DD) the person reads off the provider: when these credentials stop working,
    # for tokens whose lifetime finsync cannot read (an IBKR Flex token). Stored as the
    # connection's ``expires_at`` (attention, webhooks), never as a credential; optional.
    expiry: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderMetadata:
    slug: str
    display_name: str
    category: ProviderCategory
    auth_type: AuthType
    capabilities: frozenset[Capability]
    description: str
    docs_url: str
    institutions: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    credential_fields: tuple[CredentialField, ...] = ()
    # Optional adapter abilities beyond capabilities; api_key providers must validate keys.
    abilities: frozenset[Ability] = frozenset()
    # The provider's own settings model (env prefix FINSYNC_<SLUG>_); None: config.Settings.
    settings: type[ProviderSettings] | None = field(default=None, compare=False)
    # Redirect providers: the callback query parameter that carries finsync's state back.
    state_param: str = "state"
    # What provider_account_id is, in words: the account's name that survives re-syncs and
    # re-consents (accounts are matched by it; a key that changes duplicates accounts).
    account_key: str = ""
    adapter_factory: AdapterFactory | None = field(default=None, compare=False)
    # oauth2/link providers: builds the redirect flow.
    flow_factory: FlowFactory | None = field(default=None, compare=False)
    # Providers whose grant outlives a deleted connection (a bank consent): ends it there.
    revoke: RevokeFactory | None = field(default=None, compare=False)
    # Built once per process, on first use; handed to both factories as keyword arguments.
    resources: ResourceFactory | None = field(default=None, compare=False)
    # File providers: the StatementFormat that sniffs and reads uploads.
    file_format: StatementFormat | None = field(default=None, compare=False)
    # Automatic syncs: default and minimum interval (daily providers: once a day after a UTC
    # time). None: files are never scheduled, every other provider hourly (minimum 15 min).
    schedule: SyncSchedule | None = None

    @property
    def sync_schedule(self) -> SyncSchedule:
        if self.schedule is not None:
            return self.schedule
        return SyncSchedule(default_minutes=None if self.auth_type is AuthType.FILE else 60)

    @property
    def declared(self) -> frozenset[Capability | Ability]:
        """The optional abilities an adapter of this provider must have (and no others)."""
        return frozenset({*(c for c in self.capabilities if c in ABILITY_PROTOCOLS), *self.abilities})

    def load_settings(self, app: Any) -> Any:
        """The settings handed to the factories: the provider's own model (environment,
        overlaid by ``app.providers[slug]``; the deployment's provider timeout unless set)
        or, for a provider without one, the deployment's settings themselves."""
        if self.settings is None:
            return app
        own = self.settings(**dict(getattr(app, "providers", {}).get(self.slug, {})))
        if "timeout_seconds" not in own.model_fields_set:
            own = own.model_copy(update={"timeout_seconds": app.provider_timeout_seconds})
        return own

    def missing_settings(self, app: object) -> list[str]:
        """Environment variables this provider needs but that are unset (e.g. an OAuth app key)."""
        if self.settings is None:
            return []
        missing: list[str] = self.load_settings(app).missing()
        return missing

    def problems(self) -> list[str]:
        """What is missing for this provider to work; empty when complete."""
        issues: list[str] = []
        if not self.slug or not self.slug.replace("_", "").isalnum() or self.slug != self.slug.lower():
            issues.append("slug must be lowercase letters, digits and underscores")
        if not self.display_name or not self.description or not self.docs_url:
            issues.append("display_name, description and docs_url are required")
        if not self.capabilities:
            issues.append("at least one capability is required")
        if self.auth_type is AuthType.API_KEY and not self.credential_fields:
            issues.append("api_key providers must declare credential fields")
        if [f for f in self.credential_fields if f.expiry and (f.secret or f.required)] or (
            len([f for f in self.credential_fields if f.expiry]) > 1
        ):
            issues.append("at most one expiry credential field, not secret and not required")
        if self.auth_type is AuthType.API_KEY and Ability.KEY_VALIDATION not in self.abilities:
            issues.append("api_key providers must validate keys (abilities: key_validation)")
        if self.auth_type is not AuthType.FILE and self.adapter_factory is None:
            issues.append("a syncing provider needs an adapter_factory")
        if self.auth_type is AuthType.FILE and (
            self.file_format is None or self.file_format.name != self.slug
        ):
            issues.append("a file provider needs a file_format named like its slug")
        if self.auth_type.in_browser and self.flow_factory is None:
            issues.append("oauth2/link providers need a flow_factory")
        if self.settings is not None:
            prefix = f"FINSYNC_{self.slug}_".upper()
            if str(self.settings.model_config.get("env_prefix") or "").upper() != prefix:
                issues.append(f"the settings model must read its environment with the prefix {prefix}")
        issues += self.sync_schedule.problems()
        if self.auth_type is AuthType.FILE and self.sync_schedule.default_minutes is not None:
            issues.append("statement files are never synced on a schedule")
        return issues


def check_adapter(meta: ProviderMetadata, adapter: object) -> list[str]:
    """Where a built adapter disagrees with its provider's declaration; empty when it agrees."""
    issues: list[str] = []
    if not isinstance(adapter, ProviderAdapter):
        issues.append("the adapter lacks fetch_accounts, fetch_transactions or aclose")
    for ability, protocol in ABILITY_PROTOCOLS.items():
        has, declared = isinstance(adapter, protocol), ability in meta.declared
        if has and not declared:
            issues.append(f"the adapter implements {protocol.__name__} but {ability.value!r} is not declared")
        elif declared and not has:
            issues.append(
                f"{ability.value!r} is declared but the adapter does not implement {protocol.__name__}"
            )
    for name, member in inspect.getmembers(type(adapter)):
        if not name.startswith("_") and inspect.iscoroutinefunction(member) and name not in _CONTRACT_METHODS:
            issues.append(f"the adapter's public coroutine {name}() is no part of the contract (a typo?)")
    return issues
