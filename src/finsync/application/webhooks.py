"""Webhooks: endpoints a user registers, the events written for them, and their delivery.

Events are written by the use case that causes them, inside its own transaction (the
outbox): a delivery exists exactly when the change it reports committed, and its job is
handed to the queue only after that commit. The sync never waits for a receiver: delivery
runs later, on the job queue, with retries and back-off, and every attempt is recorded.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from finsync.application.pruning import prune_in_batches
from finsync.domain.entities import Connection, SyncRun, utcnow
from finsync.domain.enums import SyncStatus
from finsync.domain.errors import FinsyncError, InvalidInput, NotFound
from finsync.domain.jobs import DeliverWebhook
from finsync.domain.ports import (
    CredentialCipher,
    JobQueue,
    Now,
    Page,
    PageRequest,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookSender,
)
from finsync.domain.webhooks import (
    EXPIRING_WITHIN,
    DeliveryStatus,
    EventType,
    SendResult,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    expiry_notice,
)

log = structlog.get_logger(__name__)
MAX_WEBHOOKS = 20  # per user: each event fans out to every one


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (Standard Webhooks' format)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def connection_data(connection: Connection) -> dict[str, Any]:
    return {
        "connection_id": str(connection.id),
        "provider": connection.provider,
        "name": connection.name,
        "status": connection.status.value,
        "expires_at": stamp(connection.expires_at) if connection.expires_at else None,
    }


def run_data(connection: Connection, run: SyncRun) -> dict[str, Any]:
    data = connection_data(connection) | {
        "sync_run_id": str(run.id),
        "trigger": run.trigger.value,
        "run_status": run.status.value,
        "started_at": stamp(run.started_at),
        "finished_at": stamp(run.finished_at) if run.finished_at else None,
        "counts": dict(run.counts),
    }
    if run.status is SyncStatus.FAILED:
        data |= {"error": run.error, "error_type": run.error_type}
    return data


class WebhookEvents:
    """Writes an event's deliveries in the caller's transaction; jobs go out after its commit."""

    def __init__(self, clock: Now = utcnow) -> None:
        self._clock = clock

    async def publish(
        self,
        uow: UnitOfWork,
        user_id: UUID,
        event: EventType,
        data: dict[str, Any],
        dedupe_key: str | None = None,
    ) -> int:
        """One delivery per webhook of the user subscribed to ``event``; how many were added
        (a ``dedupe_key`` already delivered to a webhook adds none for it)."""
        hooks = await uow.webhooks.subscribed(user_id, event.value)
        if not hooks:
            return 0
        now = self._clock()
        payload = {"type": event.value, "timestamp": stamp(now), "data": data}
        added = await uow.webhooks.add_deliveries(
            [
                WebhookDelivery(
                    user_id=user_id,
                    webhook_id=hook,
                    event=event.value,
                    payload=payload,
                    dedupe_key=dedupe_key,
                    created_at=now,
                )
                for hook in hooks
            ]
        )
        for delivery_id in added:
            uow.enqueue(DeliverWebhook(delivery_id=delivery_id))
        return len(added)


@dataclass(slots=True)
class Created:
    webhook: Webhook
    secret: str  # the plaintext, answered once


class WebhookService:
    """The user's endpoints: create (secret shown once), list, delete, rotate the secret."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        cipher: CredentialCipher,
        sender: WebhookSender,
        clock: Now = utcnow,
        pages: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow = uow
        self._pages = pages or uow  # reads of one page (bounded: see Container.bounded_read_uow)
        self._cipher = cipher
        self._sender = sender
        self._clock = clock

    def _seal(self, secret: str) -> bytes:
        return self._cipher.encrypt({"secret": secret})

    async def create(
        self, user_id: UUID, url: str, events: Sequence[EventType], description: str | None
    ) -> Created:
        if not events:
            raise InvalidInput("events must name at least one event type")
        url = await self._sender.check_url(url.strip())
        secret = new_secret()
        now = self._clock()
        webhook = Webhook(
            user_id=user_id,
            url=url,
            events=sorted({e.value for e in events}),
            secret=self._seal(secret),
            description=(description or "").replace("\x00", "").strip() or None,
            created_at=now,
            updated_at=now,
        )
        async with self._uow() as uow:
            # Locked: creations racing each other count one after the other, never past the limit.
            if await uow.webhooks.count(user_id, lock=True) >= MAX_WEBHOOKS:
                raise InvalidInput(f"at most {MAX_WEBHOOKS} webhooks per user; delete one first")
            await uow.webhooks.add(webhook)
            await uow.commit()
        log.info("webhook_created", webhook_id=str(webhook.id))
        return Created(webhook, secret)

    async def get(self, user_id: UUID, webhook_id: UUID) -> Webhook:
        async with self._uow() as uow:
            webhook = await uow.webhooks.get(webhook_id, user_id)
        if webhook is None:
            raise NotFound("webhook")
        return webhook

    async def find(self, user_id: UUID, page: PageRequest) -> Page[Webhook]:
        async with self._pages() as uow:
            return await uow.webhooks.find(user_id, page)

    async def delete(self, user_id: UUID, webhook_id: UUID) -> None:
        """Deletes its deliveries and their attempts too; queued deliveries are dropped."""
        async with self._uow() as uow:
            if await uow.webhooks.get(webhook_id, user_id) is None:
                raise NotFound("webhook")
            await uow.webhooks.delete(webhook_id)
            await uow.commit()

    async def rotate(self, user_id: UUID, webhook_id: UUID) -> Created:
        """A new secret at once; deliveries from now on (retries included) are signed with it."""
        secret = new_secret()
        async with self._uow() as uow:
            webhook = await uow.webhooks.get(webhook_id, user_id)
            if webhook is None:
                raise NotFound("webhook")
            webhook.secret, webhook.updated_at = self._seal(secret), self._clock()
            await uow.webhooks.set_secret(webhook_id, webhook.secret, webhook.updated_at)
            await uow.commit()
        log.info("webhook_secret_rotated", webhook_id=str(webhook_id))
        return Created(webhook, secret)

    async def deliveries(
        self, user_id: UUID, webhook_id: UUID, page: PageRequest
    ) -> tuple[Page[WebhookDelivery], dict[UUID, list[WebhookAttempt]]]:
        async with self._pages() as uow:
            if await uow.webhooks.get(webhook_id, user_id) is None:
                raise NotFound("webhook")
            found = await uow.webhooks.deliveries(user_id, webhook_id, page)
            attempts: dict[UUID, list[WebhookAttempt]] = {d.id: [] for d in found.items}
            for attempt in await uow.webhooks.attempts_of(list(attempts)):
                attempts[attempt.delivery_id].append(attempt)
        return found, attempts


class DeliveryFailed(Exception):
    """This attempt did not reach a 2xx answer; the job queue retries with back-off."""


class WebhookDeliverer:
    """The ``DeliverWebhook`` job body and the periodic webhook use cases."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        cipher: CredentialCipher,
        sender: WebhookSender,
        jobs: JobQueue,
        events: WebhookEvents,
        clock: Now = utcnow,
        *,
        max_attempts: int = 8,
        lost_after: timedelta = timedelta(minutes=10),
        keep: timedelta = timedelta(days=30),
        batch: int = 500,
    ) -> None:
        self._keep = keep
        self._uow = uow
        self._cipher = cipher
        self._sender = sender
        self._jobs = jobs
        self._events = events
        self._clock = clock
        self.max_attempts = max_attempts
        self._lost_after = lost_after
        self._batch = batch

    async def deliver(self, job: DeliverWebhook) -> DeliveryStatus | None:
        """One attempt. Raises ``DeliveryFailed`` while attempts remain, so the queue retries."""
        async with self._uow() as uow:
            delivery = await uow.webhooks.delivery(job.delivery_id)
            webhook = None if delivery is None else await uow.webhooks.get(delivery.webhook_id)
        if delivery is None or webhook is None or delivery.status is not DeliveryStatus.PENDING:
            return None  # deleted with its webhook, or finished by an earlier attempt
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
        sent_at = self._clock()
        try:
            secret = str(self._cipher.decrypt(webhook.secret)["secret"])
        except FinsyncError:  # its key was removed from FINSYNC_ENCRYPTION_KEYS: rotate the secret
            result = SendResult(None, "the signing secret cannot be decrypted; rotate it", refused=True)
        else:
            result = await self._sender.send(webhook.url, secret, f"msg_{delivery.id.hex}", body)
        async with self._uow() as uow:
            current = await uow.webhooks.delivery(job.delivery_id, lock=True)
            if current is None or current.status is not DeliveryStatus.PENDING:
                return None
            current.attempts += 1
            current.last_attempt_at = sent_at
            if result.ok:
                current.status, current.delivered_at = DeliveryStatus.SUCCEEDED, self._clock()
            elif result.refused or current.attempts >= self.max_attempts:
                current.status = DeliveryStatus.FAILED
            attempt = WebhookAttempt(
                user_id=current.user_id,
                delivery_id=current.id,
                attempted_at=sent_at,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
            )
            await uow.webhooks.record_attempt(current, attempt)
            await uow.commit()
        log.info(
            "webhook_attempt",
            delivery_id=str(current.id),
            attempt=current.attempts,
            status_code=result.status_code,
            outcome=current.status.value,
        )
        if current.status is DeliveryStatus.PENDING:
            raise DeliveryFailed(result.error or "no 2xx answer")
        return current.status

    async def notify_expiring(self) -> int:
        """``connection.expiring`` 7 days ahead (authorisations over 14 days) and 1 day ahead,
        once per threshold and ``expires_at`` (the delivery's dedupe key); how many were added."""
        added = 0
        async with self._uow() as uow:
            now = self._clock()
            for connection in await uow.connections.expiring(now, EXPIRING_WITHIN, self._batch):
                ahead = expiry_notice(connection, now)
                if ahead is None or connection.expires_at is None:
                    continue
                days = ahead.days
                key = f"expiring:{connection.id}:{connection.expires_at.timestamp():.0f}:{days}d"
                data = connection_data(connection) | {"notice_days": days}
                added += await self._events.publish(
                    uow, connection.user_id, EventType.CONNECTION_EXPIRING, data, key
                )
            await uow.commit()
        if added:
            log.info("expiry_notices_queued", count=added)
        return added

    async def requeue_lost(self) -> int:
        """Pending deliveries whose job is gone (a crash between commit and enqueue) are
        queued again; a delivery waiting for its retry still has its job and is left alone."""
        async with self._uow() as uow:
            stale = await uow.webhooks.stale_pending(self._clock() - self._lost_after, self._batch)
        if not stale:
            return 0
        locks = {DeliverWebhook.lock_of(d.id): d for d in stale}
        alive = await self._jobs.pending(DeliverWebhook.kind, list(locks))
        lost = [d for lock, d in locks.items() if lock not in alive]
        for delivery in lost:
            await self._jobs.enqueue(DeliverWebhook(delivery_id=delivery.id))
        if lost:
            log.warning("webhook_deliveries_requeued", count=len(lost))
        return len(lost)

    async def prune(self) -> int:
        """Finished deliveries (and their attempts) older than the retention are deleted, in
        batches: an hourly sync with a webhook adds 24 a day per connection."""
        before = self._clock() - self._keep
        return await prune_in_batches(
            self._uow,
            lambda uow: uow.webhooks.prune(before, self._batch),
            self._batch,
            "webhook_deliveries_pruned",
        )
