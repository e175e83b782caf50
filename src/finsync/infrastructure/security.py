"""Password hashing (Argon2id), JWT access tokens and credential encryption (MultiFernet)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from finsync.domain.entities import utcnow
from finsync.domain.errors import AuthenticationFailed, CredentialsUnreadable
from finsync.domain.ports import Clock

ALGORITHM = "HS256"


class Argon2PasswordHasher:
    def __init__(self) -> None:
        self._hash = PasswordHash((Argon2Hasher(),))

    def hash(self, password: str) -> str:
        return self._hash.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        return self._hash.verify(password, password_hash)


class JwtAccessTokens:
    def __init__(self, secret: str, minutes: int, clock: Clock = utcnow) -> None:
        self._secret = secret
        self._ttl = timedelta(minutes=minutes)
        self._clock = clock

    def issue(self, user_id: UUID, now: datetime) -> tuple[str, int]:
        claims = {"sub": str(user_id), "iat": now, "exp": now + self._ttl, "typ": "access"}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), int(self._ttl.total_seconds())

    def verify(self, token: str) -> UUID:
        try:
            # Expiry is checked against our (injectable) clock, not PyJWT's wall clock.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub"], "verify_exp": False, "verify_iat": False},
            )
            if claims.get("typ") != "access":
                raise AuthenticationFailed("not an access token")
            if float(claims["exp"]) <= self._clock().timestamp():
                raise AuthenticationFailed("access token is invalid or expired")
            return UUID(claims["sub"])
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthenticationFailed("access token is invalid or expired") from exc


class FernetCipher:
    """Encrypts with the first key, decrypts with any: rotation without downtime."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials, default=str).encode())

    def decrypt(self, token: bytes) -> dict[str, Any]:
        try:
            value = json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            # Never echo the token: it is ciphertext of secrets.
            raise CredentialsUnreadable(
                "stored credentials cannot be decrypted with the configured keys"
            ) from exc
        if not isinstance(value, dict):
            raise CredentialsUnreadable("stored credentials are not an object")
        return value

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)
