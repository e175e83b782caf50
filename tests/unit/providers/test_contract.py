"""Every registered provider keeps the contract in ``providers/spec.py``, and the contract
catches the mistakes a contributor makes: a misnamed method, an ability declared but not
implemented (or the reverse), a provider package nobody registered."""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from pathlib import Path
from typing import Any

import pytest

import finsync.providers
from finsync.config import Settings
from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.errors import ProviderNotAvailable
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch
from finsync.providers.registry import NOT_PROVIDERS, ProviderRegistry, builtin_providers
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata, check_adapter
from tests.fakes.clock import VirtualClock

pytestmark = pytest.mark.unit

SYNCING = [m for m in builtin_providers() if m.auth_type is not AuthType.FILE]


def _configured(meta: ProviderMetadata) -> Settings:
    """Deployment settings with every required provider setting filled with a fake value."""
    required = meta.settings.required if meta.settings is not None else ()
    return Settings(_env_file=None, providers={meta.slug: dict.fromkeys(required, "fake-value")})  # type: ignore[call-arg]


def _session(meta: ProviderMetadata) -> ProviderSession:
    credentials: dict[str, Any] = {f.name: f"fake-{f.name}-0000" for f in meta.credential_fields}
    return ProviderSession(connection_id=uuid.uuid4(), credentials=credentials)


@pytest.mark.parametrize("meta", SYNCING, ids=lambda m: m.slug)
async def test_every_provider_builds_an_adapter_that_keeps_its_declaration(meta: ProviderMetadata) -> None:
    """No network: building an adapter only reads settings and credentials."""
    assert meta.adapter_factory is not None
    settings = meta.load_settings(_configured(meta))
    options: dict[str, Any] = {"clock": VirtualClock()}
    if meta.resources is not None:
        options |= meta.resources(settings, **options)
    adapter = meta.adapter_factory(_session(meta), settings, **options)
    try:
        assert check_adapter(meta, adapter) == []
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("meta", SYNCING, ids=lambda m: m.slug)
def test_every_provider_reads_its_own_settings_from_its_own_prefix(meta: ProviderMetadata) -> None:
    assert meta.settings is not None, "each provider owns its settings (spec.ProviderSettings)"
    assert meta.settings.model_config.get("env_prefix") == f"FINSYNC_{meta.slug.upper()}_"
    assert meta.missing_settings(_configured(meta)) == []


def test_every_package_under_providers_is_registered_or_excluded() -> None:
    """A provider written but missing from builtin_providers() fails here, not in production."""
    registered = set()
    for meta in builtin_providers():
        maker = meta.adapter_factory if meta.adapter_factory is not None else type(meta.file_format)
        registered.add(maker.__module__.split(".")[2])
    packages = {m.name for m in pkgutil.iter_modules(finsync.providers.__path__) if m.ispkg}
    assert packages - registered - NOT_PROVIDERS == set()
    assert packages >= NOT_PROVIDERS, "exclude only packages that exist"
    for name in packages - NOT_PROVIDERS:  # each package's METADATA is the registered one
        module = importlib.import_module(f"finsync.providers.{name}")
        metadata = getattr(module, "METADATA", None)
        assert metadata is None or metadata in builtin_providers(), name


# The mistakes the issue lists, each made on purpose against a small provider.


class _Adapter:
    async def validate(self) -> list[str]:
        return []

    async def fetch_accounts(self) -> list[ProviderAccount]:
        return []

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        return TransactionBatch()

    async def aclose(self) -> None:
        return None


class _Misnamed(_Adapter):
    async def fetch_holding(self, account: ProviderAccount) -> list[ProviderHolding]:  # "s" missing
        return []


class _NoValidate:
    async def validat(self) -> list[str]:  # typo: key validation would be skipped silently
        return []

    fetch_accounts = _Adapter.fetch_accounts
    fetch_transactions = _Adapter.fetch_transactions
    aclose = _Adapter.aclose


class _WithHoldings(_Adapter):
    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        return []


def _meta(adapter: type, **changes: Any) -> ProviderMetadata:
    values: dict[str, Any] = {
        "slug": "toy",
        "display_name": "Toy bank",
        "category": ProviderCategory.BANK,
        "auth_type": AuthType.API_KEY,
        "capabilities": frozenset({Capability.ACCOUNTS, Capability.TRANSACTIONS}),
        "description": "A toy",
        "docs_url": "docs/providers/index.md",
        "credential_fields": (CredentialField(name="api_key", label="API key"),),
        "abilities": frozenset({Ability.KEY_VALIDATION}),
        "adapter_factory": lambda session, settings, **_: adapter(),
    }
    return ProviderMetadata(**(values | changes))


def test_a_correct_adapter_passes() -> None:
    assert check_adapter(_meta(_Adapter), _Adapter()) == []


def test_a_misnamed_method_fails() -> None:
    problems = check_adapter(_meta(_Misnamed), _Misnamed())
    assert problems == ["the adapter's public coroutine fetch_holding() is no part of the contract (a typo?)"]


def test_a_misnamed_validate_fails_instead_of_skipping_key_validation() -> None:
    problems = check_adapter(_meta(_NoValidate), _NoValidate())
    assert "'key_validation' is declared but the adapter does not implement KeyValidator" in problems
    assert any("validat()" in p for p in problems)


def test_holdings_must_agree_with_the_capability() -> None:
    undeclared = check_adapter(_meta(_WithHoldings), _WithHoldings())
    assert undeclared == ["the adapter implements HoldingsSource but 'holdings' is not declared"]
    declared = _meta(_Adapter, capabilities=frozenset({Capability.ACCOUNTS, Capability.HOLDINGS}))
    assert check_adapter(declared, _Adapter()) == [
        "'holdings' is declared but the adapter does not implement HoldingsSource"
    ]


def test_undeclared_preflight_fails() -> None:
    class WithPreflight(_Adapter):
        async def preflight(self) -> None:
            return None

    assert check_adapter(_meta(WithPreflight), WithPreflight()) == [
        "the adapter implements Preflight but 'preflight' is not declared"
    ]


async def test_the_host_refuses_an_adapter_that_breaks_its_contract() -> None:
    """A plugin's broken adapter is refused with a precise reason before any sync uses it."""
    from finsync.bootstrap import RegistryGateway

    gateway = RegistryGateway(ProviderRegistry([_meta(_Misnamed)]), Settings(_env_file=None), {})  # type: ignore[call-arg]
    session = ProviderSession(connection_id=uuid.uuid4(), credentials={"api_key": "fake-key-0000"})
    with pytest.raises(ProviderNotAvailable, match=r"Toy bank is broken on this server: .*fetch_holding\(\)"):
        gateway.adapter("toy", session)


@pytest.mark.parametrize("meta", SYNCING, ids=lambda m: m.slug)
def test_every_provider_setting_is_documented_and_in_the_env_examples(meta: ProviderMetadata) -> None:
    """A self-hoster finds each variable in docs/configuration.md and env/*.example."""
    assert meta.settings is not None
    root = Path(__file__).resolve().parents[3]
    prefix = str(meta.settings.model_config.get("env_prefix"))
    names = [f"{prefix}{name}".upper() for name in meta.settings.model_fields if name != "timeout_seconds"]
    docs = (root / "docs" / "configuration.md").read_text()
    for example in ("env/.env.dev.example", "env/.env.test.example", "env/.env.prod.example"):
        text = (root / example).read_text()
        assert [n for n in names if f"{n}=" not in text] == [], example
    assert [n for n in names if f"`{n}`" not in docs] == []
    assert (root / meta.docs_url).exists()
