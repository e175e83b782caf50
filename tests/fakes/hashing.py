"""A cheap password hasher for tests: real Argon2id, with the smallest parameters.

Production Argon2 costs ~0.25 s of CPU per hash by design; the suite registers and logs in
hundreds of users, so tests use the same algorithm and code path at a trivial cost.
"""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class CheapArgon2:
    def __init__(self) -> None:
        self._hash = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))

    def hash(self, password: str) -> str:
        return self._hash.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        return self._hash.verify(password, password_hash)


CHEAP_HASHER = CheapArgon2()
