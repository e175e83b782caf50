"""The one list of providers finsync can connect to, plus third-party entry points.

A provider appears here only once its adapter works; registry tests enforce
complete metadata. Third-party packages add providers through the
``finsync.providers`` entry-point group, each entry pointing at a ProviderMetadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points

import structlog

from finsync.domain.ports import StatementFormat
from finsync.providers import (
    alpaca,
    ccxt,
    csv,
    enablebanking,
    gocardless,
    ibkr,
    schwab,
    simplefin,
    trading212,
)
from finsync.providers.ofx import format as ofx
from finsync.providers.spec import CredentialField, ProviderMetadata

__all__ = ["ENTRY_POINT_GROUP", "NOT_PROVIDERS", "CredentialField", "ProviderMetadata", "ProviderRegistry"]

log = structlog.get_logger(__name__)
ENTRY_POINT_GROUP = "finsync.providers"


# Packages under finsync/providers/ that are not providers; every other one must be listed
# in builtin_providers() (a test fails otherwise, so a new provider cannot be forgotten).
NOT_PROVIDERS: frozenset[str] = frozenset()


def builtin_providers() -> list[ProviderMetadata]:
    """Providers shipped with finsync: the one list."""
    return [
        ofx.METADATA,
        csv.METADATA,
        trading212.METADATA,
        alpaca.METADATA,
        schwab.METADATA,
        gocardless.METADATA,
        enablebanking.METADATA,
        simplefin.METADATA,
        ibkr.METADATA,
        *(module.METADATA for module in ccxt.EXCHANGES),
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

    def file_formats(self) -> list[StatementFormat]:
        return [m.file_format for m in self.all() if m.file_format is not None]

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug
