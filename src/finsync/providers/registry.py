"""The one list of providers finsync can connect to, plus third-party entry points.

A provider appears here only once its adapter works; registry tests enforce
complete metadata. Third-party packages add providers through the
``finsync.providers`` entry-point group, each entry pointing at a ProviderMetadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import structlog

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.schedule import SyncSchedule

log = structlog.get_logger(__name__)
ENTRY_POINT_GROUP = "finsync.providers"


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialField:
    """One input of a provider's connect form."""

    name: str
    label: str
    secret: bool = True
    required: bool = True
    help: str = ""


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
    required_settings: tuple[str, ...] = ()
    # Redirect providers: the callback query parameter that carries finsync's state back.
    state_param: str = "state"
    # What provider_account_id is, in words: the account's name that survives re-syncs and
    # re-consents (accounts are matched by it; a key that changes duplicates accounts).
    account_key: str = ""
    # Builds the sync adapter: (ProviderSession, Settings) -> ProviderAdapter.
    adapter_factory: Callable[..., Any] | None = field(default=None, compare=False)
    # Builds the redirect flow for oauth2/link providers: (Settings, options) -> RedirectFlow.
    flow_factory: Callable[..., Any] | None = field(default=None, compare=False)
    # Per-process shared objects (e.g. a token cache) handed to both factories as keyword
    # arguments: (Settings, **options) -> dict. Built once, on first use.
    resources: Callable[..., dict[str, Any]] | None = field(default=None, compare=False)
    # File providers: the StatementFormat that sniffs and reads uploads.
    file_format: Any = field(default=None, compare=False)
    # Automatic syncs: default and minimum interval (daily providers: once a day after a UTC
    # time). None: files are never scheduled, every other provider hourly (minimum 15 min).
    schedule: SyncSchedule | None = None

    @property
    def sync_schedule(self) -> SyncSchedule:
        if self.schedule is not None:
            return self.schedule
        return SyncSchedule(default_minutes=None if self.auth_type is AuthType.FILE else 60)

    def missing_settings(self, settings: object) -> list[str]:
        """Deployment settings this provider needs but that are unset (e.g. an OAuth app key)."""
        return [name for name in self.required_settings if not getattr(settings, name, None)]

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
        if self.auth_type is not AuthType.FILE and self.adapter_factory is None:
            issues.append("a syncing provider needs an adapter_factory")
        if self.auth_type is AuthType.FILE and getattr(self.file_format, "name", None) != self.slug:
            issues.append("a file provider needs a file_format named like its slug")
        if self.auth_type.in_browser and self.flow_factory is None:
            issues.append("oauth2/link providers need a flow_factory")
        issues += self.sync_schedule.problems()
        if self.auth_type is AuthType.FILE and self.sync_schedule.default_minutes is not None:
            issues.append("statement files are never synced on a schedule")
        return issues


def builtin_providers() -> list[ProviderMetadata]:
    """Providers shipped with finsync: the one list. Imported here, not at module import."""
    from finsync.providers import alpaca, csv, gocardless, schwab, trading212
    from finsync.providers.ofx import format as ofx

    return [
        ofx.METADATA,
        csv.METADATA,
        trading212.METADATA,
        alpaca.METADATA,
        schwab.METADATA,
        gocardless.METADATA,
    ]


def discover_plugins() -> list[ProviderMetadata]:
    found: list[ProviderMetadata] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            meta = ep.load()
        except Exception as exc:  # a broken plugin must not take the service down
            log.warning("provider_plugin_failed", entry_point=ep.name, error=str(exc))
            continue
        if isinstance(meta, ProviderMetadata) and not meta.problems():
            found.append(meta)
        else:
            log.warning("provider_plugin_rejected", entry_point=ep.name)
    return found


class ProviderRegistry:
    def __init__(self, providers: Iterable[ProviderMetadata]) -> None:
        self._by_slug: dict[str, ProviderMetadata] = {}
        for meta in providers:
            if meta.slug in self._by_slug:
                raise ValueError(f"provider {meta.slug!r} registered twice")
            problems = meta.problems()
            if problems:
                raise ValueError(f"provider {meta.slug!r} is incomplete: {'; '.join(problems)}")
            self._by_slug[meta.slug] = meta

    @classmethod
    def default(cls) -> ProviderRegistry:
        return cls([*builtin_providers(), *discover_plugins()])

    def all(self) -> list[ProviderMetadata]:
        return sorted(self._by_slug.values(), key=lambda m: m.display_name.lower())

    def get(self, slug: str) -> ProviderMetadata | None:
        return self._by_slug.get(slug)

    def file_formats(self) -> list[Any]:
        return [m.file_format for m in self.all() if m.file_format is not None]

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug
