"""Deleting what has outlived its use, in batches: one short transaction per batch, so a
large backlog never holds locks (or a long transaction) while it is cleared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from finsync.domain.ports import UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger(__name__)


async def prune_in_batches(
    uow: UnitOfWorkFactory, delete: Callable[[UnitOfWork], Awaitable[int]], batch: int, event: str
) -> int:
    """Run ``delete`` (at most ``batch`` rows, answering how many) until a batch comes back
    short; log ``event`` with the total when anything went."""
    pruned = 0
    while True:
        async with uow() as u:
            done = await delete(u)
            await u.commit()
        pruned += done
        if done < batch:
            break
    if pruned:
        log.info(event, count=pruned)
    return pruned
