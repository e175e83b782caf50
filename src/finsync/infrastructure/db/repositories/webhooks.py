"""Webhooks, their deliveries (the event outbox) and the attempts of each delivery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import structlog
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.ports import Page, PageRequest, WrittenPage
from finsync.domain.webhooks import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from finsync.infrastructure.db import written as w
from finsync.infrastructure.db.mapping import keyset, make_page, to_entity, to_row
from finsync.infrastructure.db.tables import UserRow, WebhookAttemptRow, WebhookDeliveryRow, WebhookRow

log = structlog.get_logger(__name__)
hooks = WebhookRow.__table__  # type: ignore[attr-defined]
deliveries = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]
_ATTEMPT = w.item(  # AttemptOut's fields
    {
        "attempted_at": w.utc("a.attempted_at"),
        "status_code": w.number("a.status_code"),
        "error": w.text("a.error"),
        "duration_ms": w.number("a.duration_ms"),
    }
)
_DELIVERY_JSON = {  # DeliveryOut's fields but its payload (the last, written from the decoded JSON)
    "id": w.quoted("id", nullable=False),
    **{c: w.quoted(c, nullable=False) for c in ("event", "status")},
    "attempts": f"'[', COALESCE((SELECT string_agg({_ATTEMPT}, ',' ORDER BY a.id) "  # noqa: S608
    "FROM webhook_attempts AS a WHERE a.delivery_id = webhook_deliveries.id), ''), ']'",
    "created_at": w.utc("created_at"),
    **{c: w.utc(c, nullable=True) for c in ("last_attempt_at", "delivered_at")},
}
_HOOK_JSON = {  # WebhookOut's fields, see db/written.py
    "id": w.quoted("id", nullable=False),
    "url": w.text("url", nullable=False),
    "events": w.strings("events"),
    "description": w.text("description"),
    "created_at": w.utc("created_at"),
    "updated_at": w.utc("updated_at"),
}
attempts = WebhookAttemptRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]


class SqlWebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, webhook: Webhook) -> None:
        await self._s.execute(insert(hooks).values(to_row(webhook)))

    async def get(self, webhook_id: UUID, user_id: UUID | None = None) -> Webhook | None:
        stmt = select(hooks).where(hooks.c.id == webhook_id)
        if user_id is not None:
            stmt = stmt.where(hooks.c.user_id == user_id)
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(Webhook, row)

    async def find(self, user_id: UUID, page: PageRequest) -> Page[Webhook]:
        stmt = keyset(
            select(hooks).where(hooks.c.user_id == user_id), [(hooks.c.id, UUID)], page, descending=False
        )
        items = [to_entity(Webhook, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda hook: (hook.id,), of=hooks)

    async def written(self, user_id: UUID, page: PageRequest) -> WrittenPage | None:
        """``find``'s page as ``WebhookOut`` JSON, see ``db/written.py``."""
        return await w.written(self._s, hooks, _HOOK_JSON, {"user_id": user_id}, page, descending=False)

    async def count(self, user_id: UUID, *, lock: bool = False) -> int:
        """With ``lock``, first serialise with the user's other webhook creations until commit,
        so a limit checked on this count holds under concurrency: PostgreSQL locks the user row
        (``FOR NO KEY UPDATE``: inserts referencing the user are not blocked), SQLite takes its
        one write lock (a write matching no row), which a competing creation waits for."""
        if lock and self._s.get_bind().dialect.name == "postgresql":
            mine = select(users.c.id).where(users.c.id == user_id).with_for_update(key_share=True)
            await self._s.execute(mine)
        elif lock:
            await self._s.execute(text("UPDATE webhooks SET id = id WHERE 0 = 1"))
        stmt = select(func.count()).select_from(hooks).where(hooks.c.user_id == user_id)
        return int((await self._s.execute(stmt)).scalar_one())

    async def set_secret(self, webhook_id: UUID, secret: bytes, when: datetime) -> None:
        await self._s.execute(
            update(hooks).where(hooks.c.id == webhook_id).values(secret=secret, updated_at=when)
        )

    async def delete(self, webhook_id: UUID) -> None:
        mine = select(deliveries.c.id).where(deliveries.c.webhook_id == webhook_id)
        await self._s.execute(delete(attempts).where(attempts.c.delivery_id.in_(mine)))
        await self._s.execute(delete(deliveries).where(deliveries.c.webhook_id == webhook_id))
        await self._s.execute(delete(hooks).where(hooks.c.id == webhook_id))

    async def subscribed(self, user_id: UUID, event: str) -> list[UUID]:
        """One indexed read of the user's (few) webhooks; the event match is done here, the
        same way on both databases."""
        rows = await self._s.execute(select(hooks.c.id, hooks.c.events).where(hooks.c.user_id == user_id))
        return [row.id for row in rows if event in (row.events or [])]

    async def add_deliveries(self, new: Sequence[WebhookDelivery]) -> list[UUID]:
        """In a savepoint: a failure here is logged and drops the event, never the transaction
        of the change it reports (a sync's result outweighs its notification)."""
        if not new:
            return []
        dialect = self._s.get_bind().dialect.name
        insert_ = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(deliveries)
        stmt = insert_.on_conflict_do_nothing(index_elements=["webhook_id", "dedupe_key"]).returning(
            deliveries.c.id
        )
        try:
            async with self._s.begin_nested():
                result = await self._s.execute(stmt, [to_row(d) for d in new])
                return [UUID(str(i)) for i in result.scalars()]
        except Exception:
            log.exception("webhook_event_not_recorded", event_type=new[0].event)  # not event=: the message's
            return []

    async def delivery(self, delivery_id: UUID, *, lock: bool = False) -> WebhookDelivery | None:
        stmt = select(deliveries).where(deliveries.c.id == delivery_id)
        if lock:
            if self._s.get_bind().dialect.name == "sqlite":  # take the write lock before reading
                await self._s.execute(
                    update(deliveries).where(deliveries.c.id == delivery_id).values(id=deliveries.c.id)
                )
            stmt = stmt.with_for_update()
        row = (await self._s.execute(stmt)).mappings().first()
        return None if row is None else to_entity(WebhookDelivery, row)

    async def deliveries(self, user_id: UUID, webhook_id: UUID, page: PageRequest) -> Page[WebhookDelivery]:
        stmt = select(deliveries).where(
            deliveries.c.webhook_id == webhook_id, deliveries.c.user_id == user_id
        )
        stmt = keyset(stmt, [(deliveries.c.id, UUID)], page, descending=True)
        items = [to_entity(WebhookDelivery, r) for r in (await self._s.execute(stmt)).mappings()]
        return make_page(items, page, lambda d: (d.id,), of=deliveries)

    async def written_deliveries(
        self, user_id: UUID, webhook_id: UUID, page: PageRequest
    ) -> WrittenPage | None:
        """``deliveries``' page with each delivery's attempts, as ``DeliveryOut`` JSON, see
        ``db/written.py``."""
        scope = {"user_id": user_id, "webhook_id": webhook_id}
        return await w.written(
            self._s, deliveries, _DELIVERY_JSON, scope, page, descending=True, last=("payload", "payload")
        )

    async def attempts_of(self, delivery_ids: Sequence[UUID]) -> list[WebhookAttempt]:
        if not delivery_ids:
            return []
        stmt = (
            select(attempts)
            .where(attempts.c.delivery_id.in_(list(delivery_ids)))
            .order_by(attempts.c.delivery_id, attempts.c.id)
        )
        return [to_entity(WebhookAttempt, r) for r in (await self._s.execute(stmt)).mappings()]

    async def record_attempt(self, delivery: WebhookDelivery, attempt: WebhookAttempt) -> None:
        await self._s.execute(insert(attempts).values(to_row(attempt)))
        await self._s.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery.id)
            .values(
                status=delivery.status.value,
                attempts=delivery.attempts,
                last_attempt_at=delivery.last_attempt_at,
                delivered_at=delivery.delivered_at,
            )
        )

    async def stale_pending(self, before: datetime, limit: int) -> list[WebhookDelivery]:
        stmt = (
            select(deliveries)
            .where(deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.created_at < before)
            .order_by(deliveries.c.created_at)
            .limit(limit)
        )
        return [to_entity(WebhookDelivery, r) for r in (await self._s.execute(stmt)).mappings()]

    async def prune(self, before: datetime, limit: int) -> int:
        old = (
            select(deliveries.c.id)
            .where(deliveries.c.created_at < before, deliveries.c.status != DeliveryStatus.PENDING.value)
            .order_by(deliveries.c.created_at)
            .limit(limit)
        )
        ids = list((await self._s.execute(old)).scalars())
        if not ids:
            return 0
        await self._s.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
        await self._s.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))
        return len(ids)
