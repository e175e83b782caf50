"""First-run secrets for the embedded default: generated once into the data dir, mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import structlog
from cryptography.fernet import Fernet

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
