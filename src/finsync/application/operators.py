"""Operator use cases behind the command line: the user list, disabling a user, key rotation."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from finsync.application.user_auth import find_user
from finsync.domain.entities import User, utcnow
from finsync.domain.errors import CredentialsUnreadable, NotFound
from finsync.domain.ports import (
    CredentialCipher,
    KeyRotator,
    Now,
    StoredSecret,
    UnitOfWorkFactory,
    UserSummary,
)

log = structlog.get_logger(__name__)


class UserAdmin:
    def __init__(self, uow: UnitOfWorkFactory, clock: Now = utcnow) -> None:
        self._uow = uow
        self._clock = clock

    async def list(self) -> list[UserSummary]:
        async with self._uow() as uow:
            return await uow.operators.users()

    async def find(self, email: str) -> User:
        async with self._uow() as uow:
            user = await find_user(uow, email)
        if user is None:
            raise NotFound(f"user {email}")
        return user

    async def set_active(self, email: str, active: bool) -> User:
        """Disabling ends every session at once: no login, no refresh, and access tokens are refused."""
        async with self._uow() as uow:
            user = await find_user(uow, email)
            if user is None:
                raise NotFound(f"user {email}")
            await uow.operators.set_active(user.id, active, self._clock())
            await uow.commit()
        log.info("user_enabled" if active else "user_disabled", user_id=str(user.id))
        user.is_active = active
        return user


@dataclass(slots=True)
class RotationReport:
    re_encrypted: int = 0
    unreadable: list[StoredSecret] = field(default_factory=list)  # no configured key decrypts them
    busy: list[StoredSecret] = field(default_factory=list)  # a sync was running, or the value changed


class KeyRotation:
    """Re-encrypt every stored secret with the newest key, so older keys can be retired."""

    def __init__(self, uow: UnitOfWorkFactory, cipher: CredentialCipher, rotator: KeyRotator) -> None:
        self._uow = uow
        self._cipher = cipher
        self._rotator = rotator

    async def rotate(self) -> RotationReport:
        """Values no key can read are reported, not touched. A connection being synced is left
        for the next run: the sync compares ciphertexts to keep tokens it rotated meanwhile."""
        report = RotationReport()
        async with self._uow() as uow:
            for secret in await uow.operators.secrets():
                try:
                    self._cipher.decrypt(secret.ciphertext)
                except CredentialsUnreadable:
                    report.unreadable.append(secret)
                    continue
                if secret.kind == "connection" and await uow.sync_runs.active_for(secret.id) is not None:
                    report.busy.append(secret)
                elif await uow.operators.replace_secret(secret, self._rotator.rotate(secret.ciphertext)):
                    report.re_encrypted += 1
                else:
                    report.busy.append(secret)
            await uow.commit()
        log.info(
            "keys_rotated",
            re_encrypted=report.re_encrypted,
            unreadable=len(report.unreadable),
            busy=len(report.busy),
        )
        return report
