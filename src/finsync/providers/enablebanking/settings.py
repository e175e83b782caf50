"""Enable Banking deployment settings and the application's signed JWT.

Every API call carries ``Authorization: Bearer <JWT>`` signed RS256 with the
application's private key (header ``kid`` = application id). One ``EnableBankingSigner``
per process signs a token valid for an hour and reuses it until five minutes before it
lapses; the key file is read on first use, so building an adapter reads no file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic_settings import SettingsConfigDict

from finsync.domain.errors import ProviderNotAvailable, Unavailable
from finsync.providers.http import Clock, SystemClock
from finsync.providers.spec import ProviderSettings

ISSUER = "enablebanking.com"
AUDIENCE = "api.enablebanking.com"  # api.tilisy.com is deprecated
TOKEN_SECONDS = 3600  # Enable Banking refuses tokens living longer than 24 h
MARGIN_SECONDS = 300


class EnableBankingSettings(ProviderSettings):
    """``FINSYNC_ENABLEBANKING_*``: the deployment's application id, its private key file and host."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_ENABLEBANKING_")
    required = ("application_id", "key_path")

    url: str = "https://api.enablebanking.com"
    application_id: str | None = None
    # Path of the application's RSA private key (PEM, the ``<application id>.pem`` download).
    key_path: str | None = None
    # Days of history read on a connection's first sync (banks may offer less).
    history_days: int = 90


class EnableBankingSigner:
    """Signs the application JWT; shared by every client of one process (``METADATA.resources``)."""

    def __init__(self, *, application_id: str, key_path: str, clock: Clock | None = None) -> None:
        self.application_id = application_id
        self._key_path = key_path
        self._clock: Clock = clock or SystemClock()
        self._key: RSAPrivateKey | None = None
        self._token = ""
        self._until = 0.0
        self._lock = threading.Lock()
        self.signed = 0  # tokens signed by this instance (observability, tests)

    @classmethod
    def from_settings(
        cls, settings: EnableBankingSettings, *, clock: Clock | None = None
    ) -> EnableBankingSigner:
        if not settings.application_id or not settings.key_path:
            raise ProviderNotAvailable(
                "Enable Banking is not configured (FINSYNC_ENABLEBANKING_APPLICATION_ID / _KEY_PATH)"
            )
        return cls(application_id=settings.application_id, key_path=settings.key_path, clock=clock)

    def _load(self) -> RSAPrivateKey:
        if self._key is None:
            try:
                key = load_pem_private_key(Path(self._key_path).read_bytes(), password=None)
            except (OSError, ValueError, TypeError):  # never repeat the file's content
                raise Unavailable(
                    "Enable Banking: the application's private key (FINSYNC_ENABLEBANKING_KEY_PATH) "
                    "cannot be read as an unencrypted PEM RSA key"
                ) from None
            if not isinstance(key, RSAPrivateKey):
                raise Unavailable("Enable Banking: FINSYNC_ENABLEBANKING_KEY_PATH is not an RSA key")
            self._key = key
        return self._key

    def token(self) -> str:
        """A valid application JWT (a new one shortly before the current one lapses)."""
        with self._lock:
            now = self._clock.now()
            if self._token and self._until - MARGIN_SECONDS > now:
                return self._token
            issued = int(now)
            claims: dict[str, Any] = {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "iat": issued,
                "exp": issued + TOKEN_SECONDS,
            }
            headers = {"typ": "JWT", "kid": self.application_id}
            self._token = jwt.encode(claims, self._load(), algorithm="RS256", headers=headers)
            self._until = issued + TOKEN_SECONDS
            self.signed += 1
            return self._token
