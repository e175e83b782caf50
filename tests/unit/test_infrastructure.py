"""Registry completeness, secret redaction, encryption and first-run secrets."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
import structlog
from cryptography.fernet import Fernet

from finsync.config import Settings
from finsync.domain.enums import AuthType, Capability, ConnectionStatus, ProviderCategory
from finsync.domain.errors import AuthenticationFailed, CredentialsUnreadable
from finsync.infrastructure.db.tables import SCHEDULABLE
from finsync.infrastructure.keys import ConfigurationError, resolve_secrets
from finsync.infrastructure.logs import redact
from finsync.infrastructure.security import FernetCipher, JwtAccessTokens
from finsync.providers.registry import ProviderRegistry
from finsync.providers.schwab import SchwabSettings
from finsync.providers.spec import Ability, CredentialField, ProviderMetadata

pytestmark = pytest.mark.unit


def _meta(**kw: object) -> ProviderMetadata:
    values: dict[str, object] = {
        "slug": "acme",
        "display_name": "Acme",
        "category": ProviderCategory.BROKERAGE,
        "auth_type": AuthType.API_KEY,
        "capabilities": frozenset({Capability.ACCOUNTS}),
        "description": "Acme broker",
        "docs_url": "docs/providers/acme.md",
        "credential_fields": (CredentialField(name="api_key", label="API key"),),
        "abilities": frozenset({Ability.KEY_VALIDATION}),
        "adapter_factory": lambda *a, **k: None,
    }
    return ProviderMetadata(**(values | kw))  # type: ignore[arg-type]


def test_builtin_registry_entries_are_complete() -> None:
    registry = ProviderRegistry.default()
    for meta in registry.all():
        assert meta.problems() == [], meta.slug
        assert (Path(__file__).resolve().parents[2] / meta.docs_url).exists(), meta.docs_url


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"description": ""}, "required"),
        ({"capabilities": frozenset()}, "capability"),
        ({"credential_fields": ()}, "credential fields"),
        ({"adapter_factory": None}, "adapter_factory"),
        ({"auth_type": AuthType.OAUTH2}, "flow_factory"),
        ({"auth_type": AuthType.FILE}, "file_format"),
        ({"abilities": frozenset()}, "must validate keys"),
    ],
)
def test_incomplete_metadata_is_rejected(change: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ProviderRegistry([_meta(**change)])


def test_duplicate_slug_rejected_and_missing_settings_reported() -> None:
    with pytest.raises(ValueError, match="twice"):
        ProviderRegistry([_meta(), _meta()])
    meta = _meta(settings=SchwabSettings)
    assert meta.problems() == ["the settings model must read its environment with the prefix FINSYNC_ACME_"]
    schwab = ProviderRegistry.default().get("schwab")
    assert schwab is not None
    assert schwab.missing_settings(Settings(_env_file=None)) == [  # type: ignore[call-arg]
        "FINSYNC_SCHWAB_APP_KEY",
        "FINSYNC_SCHWAB_APP_SECRET",
    ]
    configured = Settings(_env_file=None, providers={"schwab": {"app_key": "k", "app_secret": "s"}})  # type: ignore[call-arg]
    assert schwab.missing_settings(configured) == []


def test_redaction_scrubs_keys_headers_and_nested_values() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "call",
            "api_key": "fake-key",
            "headers": {"Authorization": "Basic ZmFrZTpmYWtl", "accept": "json"},
            "detail": "sent Bearer fake.jwt.token to host",
            "nested": [{"refresh_token": "fake-refresh"}],
        },
    )
    text = json.dumps(dict(event))
    for secret in ("fake-key", "ZmFrZTpmYWtl", "fake.jwt.token", "fake-refresh"):
        assert secret not in text
    assert event["headers"]["accept"] == "json"


def test_redaction_applies_to_real_log_output(capsys: pytest.CaptureFixture[str]) -> None:
    from finsync.infrastructure.logs import configure_logging

    configure_logging("json", "INFO")
    structlog.get_logger("t").info("connect", password="fake-password", secret_key="fake-secret")
    out = capsys.readouterr().out
    assert "fake-password" not in out
    assert "fake-secret" not in out
    assert '"password": "***"' in out


def test_multifernet_rotation_decrypts_old_and_encrypts_with_new() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = FernetCipher([old]).encrypt({"api_key": "fake-key"})
    rotated = FernetCipher([new, old])
    assert rotated.decrypt(token) == {"api_key": "fake-key"}
    assert FernetCipher([new]).decrypt(rotated.rotate(token)) == {"api_key": "fake-key"}
    with pytest.raises(CredentialsUnreadable) as caught:
        FernetCipher([new]).decrypt(token)
    assert "fake-key" not in str(caught.value)


def test_a_decrypted_value_that_is_not_json_is_unreadable_not_a_crash() -> None:
    """Keys that share their first (signing) half pass each other's check; what such a wrong
    key yields is garbage, which must surface as unreadable credentials, not a decoding error."""
    key = Fernet.generate_key().decode()
    for plaintext in (b"\x8d\xb6\xcc fake garbage", b"not json: fake-key"):
        with pytest.raises(CredentialsUnreadable) as caught:
            FernetCipher([key]).decrypt(Fernet(key.encode()).encrypt(plaintext))
        assert "fake" not in str(caught.value)


def test_first_run_secrets_generated_with_0600(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    keys, jwt_secret = resolve_secrets(settings)
    again = resolve_secrets(settings)
    assert again == (keys, jwt_secret)
    for name in ("encryption.key", "jwt.secret"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_postgres_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url="postgresql+asyncpg://x/y")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="FINSYNC_ENCRYPTION_KEYS and FINSYNC_JWT_SECRET"):
        resolve_secrets(settings)
    assert not (tmp_path / "encryption.key").exists()


def test_a_remembered_access_token_still_expires_and_the_memory_is_bounded() -> None:
    """Verified tokens are remembered (no signature check per request), but expiry is
    checked on every use, and a token differing in any character is verified anew."""
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    tokens = JwtAccessTokens("fake-test-jwt-secret-not-a-real-one", 15, clock=lambda: now[0])
    user, session = uuid4(), uuid4()
    token, _ = tokens.issue(user, session, now[0])
    for _ in range(2):  # checked, then remembered
        claims = tokens.verify(token)
        assert (claims.user_id, claims.session_id) == (user, session)
    with pytest.raises(AuthenticationFailed):
        tokens.verify(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))  # tampered signature
    now[0] += timedelta(minutes=15)
    with pytest.raises(AuthenticationFailed):
        tokens.verify(token)
    tokens.VERIFIED_MAX = 3
    issued = [tokens.issue(uuid4(), uuid4(), now[0])[0] for _ in range(5)]
    for t in issued:
        tokens.verify(t)
    assert len(tokens._verified) == 3
    assert list(tokens._verified) == issued[2:]  # the oldest went first


def test_the_schedulable_predicate_and_reachable_statuses_agree() -> None:
    """The scheduler's SQL predicate and the order follower's rule name the same statuses."""
    listed = re.search(r"status IN \(([^)]*)\)", SCHEDULABLE)
    assert listed is not None
    named = set(listed.group(1).replace("'", "").split(", "))
    assert named == {s.value for s in ConnectionStatus if s.reachable} == {"active", "error"}
