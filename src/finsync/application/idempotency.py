"""``Idempotency-Key``: a client may retry a request that creates something, safely.

Per user, a key names one request (a digest of method, path and body) for 24 hours. The
first request claims the key in its own committed transaction, so a concurrent retry sees
the claim at once: while the first runs, a retry answers 409; once it succeeded, a retry
gets the first answer again and writes nothing; the same key with another request is a
422. A request that fails gives its key back, so its retry runs again (it wrote nothing).
Deleting the connection an answer names (made, or imported into) forgets the key with it:
what the answer described is gone, so a retry runs again instead of naming deleted rows.
A claim older than ``STALE`` without an answer belongs to a process that died: taken over.
Expired keys are deleted by an hourly periodic task (``prune``), so the table holds about a
day of keys. Orders' keys are not here: they live, permanently, on the order row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from finsync.application.pruning import prune_in_batches
from finsync.domain.entities import IdempotencyRecord, utcnow
from finsync.domain.errors import Conflict, InvalidInput
from finsync.domain.ports import Now, UnitOfWorkFactory

TTL = timedelta(hours=24)
STALE = timedelta(minutes=15)
MAX_KEY = 255


@dataclass(frozen=True, slots=True)
class Answer:
    """What the first request answered (status and JSON body), replayed to its retries."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False
    connection_id: UUID | None = None  # what the answer names: deleting it forgets the key


class IdempotencyService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Now = utcnow, batch: int = 1000) -> None:
        self._uow = uow
        self._clock = clock
        self._batch = batch

    async def prune(self) -> int:
        """Expired keys are deleted, in batches (expiry is otherwise only seen on reuse)."""
        now = self._clock()
        return await prune_in_batches(
            self._uow,
            lambda uow: uow.idempotency.prune(now, self._batch),
            self._batch,
            "idempotency_keys_pruned",
        )

    async def run(
        self, user_id: UUID, key: str | None, request: str, operation: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """Run ``operation`` once per key; ``request`` is the digest of what the key names."""
        if key is None:
            return await operation()
        if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
            raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters")
        claimed = await self._claim(user_id, key, request)
        if isinstance(claimed, Answer):
            return claimed
        try:
            answer = await operation()
        except BaseException:
            async with self._uow() as uow:
                await uow.idempotency.remove(claimed.id)
                await uow.commit()
            raise
        async with self._uow() as uow:
            await uow.idempotency.complete(claimed.id, answer.status_code, answer.body, answer.connection_id)
            await uow.commit()
        return answer

    async def _claim(self, user_id: UUID, key: str, request: str) -> IdempotencyRecord | Answer:
        now = self._clock()
        record = IdempotencyRecord(
            user_id=user_id, key=key, request=request, expires_at=now + TTL, created_at=now
        )
        async with self._uow() as uow:
            stored = await uow.idempotency.get(user_id, key)
            abandoned = stored is not None and stored.status_code is None and stored.created_at < now - STALE
            if stored is not None and (stored.expires_at <= now or abandoned):
                await uow.idempotency.remove(stored.id)
                stored = None
            if stored is None and await uow.idempotency.claim(record):
                await uow.commit()
                return record
            stored = stored or await uow.idempotency.get(user_id, key)
        if stored is None:  # claimed and given back meanwhile: the caller may retry
            raise Conflict("a request with this Idempotency-Key just finished without an answer; retry")
        if stored.request != request:
            raise InvalidInput("this Idempotency-Key was already used for a different request")
        if stored.status_code is None or stored.response is None:
            raise Conflict("a request with this Idempotency-Key is still being processed; retry later")
        return Answer(stored.status_code, stored.response, replayed=True)
