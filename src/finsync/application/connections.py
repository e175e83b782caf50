"""Connection lifecycle use cases."""

from __future__ import annotations

from uuid import UUID

import structlog

from finsync.domain.errors import NotFound
from finsync.domain.ports import UnitOfWorkFactory

log = structlog.get_logger(__name__)


class ConnectionService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def delete(self, connection_id: UUID, user_id: UUID) -> None:
        """Deletes the connection with its accounts, holdings, transactions, snapshots and runs."""
        async with self._uow() as uow:
            if await uow.connections.get(connection_id, user_id) is None:
                raise NotFound("connection")
            await uow.connections.delete(connection_id)
            await uow.commit()
        log.info("connection_deleted", connection_id=str(connection_id))
