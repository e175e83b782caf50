"""Letting people leave: export everything a user owns, and delete all of it.

Both walk the same coverage (``UserDataRepository``): a feature that stores data of a
user extends export and erasure with it (docs/operations.md), and the test suite fails
for a table keyed by user_id that erasure misses or export has not decided about.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import structlog

from finsync.application.export_format import FORMAT_NAME, FORMAT_VERSION, ExportFormat, writer_for
from finsync.domain.entities import utcnow
from finsync.domain.errors import NotFound
from finsync.domain.ports import Now, UnitOfWorkFactory

log = structlog.get_logger(__name__)
BATCH = 2_000  # rows per database fetch and per chunk written


class UserDataService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Now = utcnow) -> None:
        self._uow = uow
        self._clock = clock

    def media_type(self, fmt: ExportFormat) -> str:
        return writer_for(fmt).media_type

    def filename(self, fmt: ExportFormat) -> str:
        return f"finsync-export-{self._clock():%Y-%m-%d}.{writer_for(fmt).extension}"

    async def export(self, user_id: UUID, fmt: ExportFormat = ExportFormat.JSON) -> AsyncIterator[bytes]:
        """The user's data as chunks of one document, read from one consistent snapshot."""
        writer = writer_for(fmt)
        async with self._uow() as uow:
            await uow.user_data.freeze()
            yield writer.start(
                {"format": FORMAT_NAME, "version": FORMAT_VERSION, "exported_at": self._clock()}
            )
            for section in uow.user_data.sections():
                yield writer.open(section)
                async for rows in uow.user_data.export(user_id, section, BATCH):
                    yield writer.rows(section, rows)
                yield writer.close(section)
            yield writer.finish()
        log.info("user_data_exported", user_id=str(user_id), format=fmt.value)

    async def delete_account(self, user_id: UUID) -> dict[str, int]:
        """Erase the user and everything they own (the caller has had the password confirmed)."""
        async with self._uow() as uow:
            if await uow.users.get(user_id) is None:
                raise NotFound("user")
            deleted = await uow.user_data.erase(user_id)
            await uow.commit()
        log.info("user_deleted", user_id=str(user_id), rows=deleted)
        return deleted
