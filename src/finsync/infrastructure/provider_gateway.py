"""The provider registry seen through the application's ``ProviderGateway`` port, plus the
bank-link providers' bank directory: what adapts ``finsync.providers`` to the use cases."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from finsync.config import Settings
from finsync.domain.enums import Capability
from finsync.domain.errors import ProviderNotAvailable
from finsync.domain.ports import ProviderAdapter, ProviderInfo, ProviderSession, RedirectFlow
from finsync.providers.ratelimit import BUCKET_STORE, BucketStore
from finsync.providers.registry import ProviderRegistry
from finsync.providers.spec import ProviderMetadata, check_adapter

__all__ = ["BankDirectory", "RegistryGateway"]


class RegistryGateway:
    """ProviderGateway over the registry; ``adapter_options`` lets tests inject clocks/transports."""

    def __init__(
        self,
        registry: ProviderRegistry,
        settings: Settings,
        adapter_options: dict[str, Any],
        buckets: BucketStore | None = None,
    ) -> None:
        self.registry = registry
        self._settings = settings
        self._options = adapter_options
        self._resources: dict[str, dict[str, Any]] = {}
        self._buckets = buckets

    @contextmanager
    def _shared_budgets(self) -> Iterator[None]:
        """Provider HTTP clients built inside take their rate budgets from the shared store."""
        token = BUCKET_STORE.set(self._buckets)
        try:
            yield
        finally:
            BUCKET_STORE.reset(token)

    def _meta(self, provider: str) -> ProviderMetadata:
        meta = self.registry.get(provider)
        if meta is None:
            raise ProviderNotAvailable(f"provider {provider!r} is not available on this server")
        return meta

    def settings(self, provider: str) -> Any:
        """The provider's own settings (FINSYNC_<SLUG>_*, overlaid by ``Settings.providers``)."""
        return self._meta(provider).load_settings(self._settings)

    def options(self, provider: str) -> dict[str, Any]:
        """Test/deployment options plus the provider's per-process resources (built once)."""
        meta = self._meta(provider)
        if meta.resources is not None and provider not in self._resources:
            self._resources[provider] = meta.resources(self.settings(provider), **self._options)
        return self._options | self._resources.get(provider, {})

    def flow(self, provider: str, options: dict[str, Any]) -> RedirectFlow:
        meta = self._meta(provider)
        if meta.flow_factory is None:
            raise ProviderNotAvailable(f"{meta.display_name} has no browser authorisation flow")
        with self._shared_budgets():
            flow: RedirectFlow = meta.flow_factory(self.settings(provider), options, **self.options(provider))
        return flow

    async def revoke(self, provider: str, session: ProviderSession) -> None:
        meta = self.registry.get(provider)
        if meta is None or meta.revoke is None:
            return
        with self._shared_budgets():
            settings, options = self.settings(provider), self.options(provider)
            await meta.revoke(session, settings, **options)

    def info(self, provider: str) -> ProviderInfo | None:
        meta = self.registry.get(provider)
        if meta is None:
            return None
        fields = meta.credential_fields
        return ProviderInfo(
            slug=meta.slug,
            display_name=meta.display_name,
            auth_type=meta.auth_type,
            capabilities=meta.capabilities,
            required_credentials=frozenset(f.name for f in fields if f.required),
            optional_credentials=frozenset(f.name for f in fields if not f.required),
            environments=meta.environments,
            missing_settings=tuple(meta.missing_settings(self._settings)),
            state_param=meta.state_param,
            schedule=meta.sync_schedule,
            expiry_credential=next((f.name for f in fields if f.expiry), None),
        )

    def capabilities(self, provider: str) -> frozenset[Capability]:
        meta = self.registry.get(provider)
        return meta.capabilities if meta is not None else frozenset()

    def adapter(self, provider: str, session: ProviderSession) -> ProviderAdapter:
        meta = self._meta(provider)
        if meta.adapter_factory is None:
            raise ProviderNotAvailable(f"{meta.display_name} has no sync adapter")
        with self._shared_budgets():
            settings = self.settings(provider)
            adapter: ProviderAdapter = meta.adapter_factory(session, settings, **self.options(provider))
        if problems := check_adapter(meta, adapter):  # a plugin's adapter breaking its own contract
            raise ProviderNotAvailable(f"{meta.display_name} is broken on this server: {'; '.join(problems)}")
        return adapter


class BankDirectory:
    """Banks per provider and country for the bank picker, cached for a day (the lists change
    rarely). Each bank-link provider with a picker is listed in ``LISTERS``: its module's
    ``institutions(settings, country, **options)``."""

    TTL = 86_400.0
    LISTERS: Mapping[str, str] = {
        "gocardless": "finsync.providers.gocardless",
        "enablebanking": "finsync.providers.enablebanking",
    }

    def __init__(self, gateway: RegistryGateway, settings: Settings) -> None:
        self._gateway = gateway
        self._settings = settings
        self._cache: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}

    async def __call__(self, country: str, provider: str = "gocardless") -> list[dict[str, Any]]:
        module = self.LISTERS.get(provider)
        if module is None:
            raise ProviderNotAvailable(f"provider {provider!r} has no bank directory")
        hit = self._cache.get((provider, country))
        if hit is not None and time.monotonic() - hit[0] < self.TTL:
            return hit[1]
        lister = importlib.import_module(module).institutions
        settings = self._gateway.settings(provider)
        banks: list[dict[str, Any]] = await lister(settings, country, **self._gateway.options(provider))
        self._cache[(provider, country)] = (time.monotonic(), banks)
        return banks
