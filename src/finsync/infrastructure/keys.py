"""The service's secrets: generated once into the data dir (mode 0600) for the embedded default,
required and checked for PostgreSQL. Light on imports, so that a command refusing to start
says why before the application is loaded."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import structlog
from cryptography.fernet import Fernet

from finsync.config import Settings

log = structlog.get_logger(__name__)


def load_or_create_secret(path: Path, make: str) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = Fernet.generate_key().decode() if make == "fernet" else secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    log.warning("secret_generated", path=str(path), hint="back this file up; losing it loses access")
    return value


class ConfigurationError(RuntimeError):
    """The deployment's settings cannot work; the message says what to set (never a secret)."""


def resolve_secrets(settings: Settings) -> tuple[list[str], str]:
    """Embedded default: generate secrets on first run. Production: refuse to start without them."""
    keys = [k.get_secret_value() for k in settings.encryption_keys]
    jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if settings.is_sqlite:
        if not keys:
            keys = [load_or_create_secret(settings.data_dir / "encryption.key", "fernet")]
        if not jwt_secret:
            jwt_secret = load_or_create_secret(settings.data_dir / "jwt.secret", "token")
    missing = [
        name for name, v in (("FINSYNC_ENCRYPTION_KEYS", keys), ("FINSYNC_JWT_SECRET", jwt_secret)) if not v
    ]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set when using PostgreSQL (see docs/configuration.md)"
        )
    if len(jwt_secret) < 32:
        raise ConfigurationError(
            "FINSYNC_JWT_SECRET must be at least 32 characters (see docs/configuration.md)"
        )
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key.encode())
        except ValueError:  # the message names the key's position, never its value
            raise ConfigurationError(
                f"FINSYNC_ENCRYPTION_KEYS: key {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; see docs/configuration.md)"
            ) from None
    return keys, jwt_secret
