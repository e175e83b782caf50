"""Password hashing (Argon2id, in worker threads), JWT access tokens and credential encryption."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from uuid import UUID

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from finsync.domain.entities import utcnow
from finsync.domain.errors import AuthenticationFailed, CredentialsUnreadable
from finsync.domain.ports import AccessClaims, Now

ALGORITHM = "HS256"
T = TypeVar("T")


class BlockingHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, password: str, password_hash: str) -> bool: ...


class Argon2PasswordHasher:
    """Argon2id with pwdlib's defaults: ~0.25 s of CPU per call, by design. Blocking."""

    def __init__(self) -> None:
        self._hash = PasswordHash((Argon2Hasher(),))

    def hash(self, password: str) -> str:
        return self._hash.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        return self._hash.verify(password, password_hash)


class ThreadedHasher:
    """Runs a blocking hasher in worker threads, at most ``concurrency`` at a time.

    The event loop keeps serving other requests while a hash runs; a login flood queues on the
    semaphore instead of stalling the process. A slot is freed when the hash finishes, not when
    its request is cancelled, so the bound holds even for clients that hang up.
    """

    def __init__(self, inner: BlockingHasher, concurrency: int) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(max(1, concurrency))

    async def hash(self, password: str) -> str:
        return await self._run(self._inner.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        return await self._run(self._inner.verify, password, password_hash)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        await self._slots.acquire()
        try:
            future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        # shield: a cancelled request stops waiting, but its slot stays taken until the thread is done
        return await asyncio.shield(future)


class JwtAccessTokens:
    """HS256 access tokens. A token whose signature and claims were checked once is
    remembered (at most ``VERIFIED_MAX``, with its expiry): decoding and verifying it again
    was a tenth of an authenticated request's CPU. Only the signature check is remembered:
    expiry is checked on every use, and whether its session is still live is the caller's
    database read on every request, so revoking a session still refuses its token at once."""

    VERIFIED_MAX = 4096

    def __init__(self, secret: str, minutes: int, clock: Now = utcnow) -> None:
        self._secret = secret
        self._ttl = timedelta(minutes=minutes)
        self._clock = clock
        self._verified: dict[str, tuple[float, AccessClaims]] = {}

    def issue(self, user_id: UUID, session_id: UUID, now: datetime) -> tuple[str, int]:
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": now,
            "exp": now + self._ttl,
            "typ": "access",
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), int(self._ttl.total_seconds())

    def verify(self, token: str) -> AccessClaims:
        """Every claim is type-checked: a well-signed token with a malformed claim is a 401, never a 500."""
        known = self._verified.get(token)
        if known is not None:
            if known[0] <= self._clock().timestamp():
                del self._verified[token]
                raise AuthenticationFailed("access token is invalid or expired")
            return known[1]
        expires, claims = self._verify(token)
        if len(self._verified) >= self.VERIFIED_MAX:  # oldest first: dicts keep insertion order
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (expires, claims)
        return claims

    def _verify(self, token: str) -> tuple[float, AccessClaims]:
        invalid = AuthenticationFailed("access token is invalid or expired")
        try:
            # Expiry is checked against our (injectable) clock, not PyJWT's wall clock.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "sid"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise invalid from exc
        if claims.get("typ") != "access":
            raise AuthenticationFailed("not an access token")
        exp, iat, sub, sid = claims["exp"], claims["iat"], claims["sub"], claims["sid"]
        if not (_is_number(exp) and _is_number(iat) and isinstance(sub, str) and isinstance(sid, str)):
            raise invalid
        if exp <= self._clock().timestamp():
            raise invalid
        try:
            return float(exp), AccessClaims(user_id=UUID(sub), session_id=UUID(sid))
        except ValueError as exc:
            raise invalid from exc


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
        except ValueError:  # not JSON (e.g. keys that share their signing half): never echo it
            raise CredentialsUnreadable("stored credentials are not readable JSON") from None
        if not isinstance(value, dict):
            raise CredentialsUnreadable("stored credentials are not an object")
        return value

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)
