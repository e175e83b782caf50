"""Webhooks and connection attention: what a separate client is told, and when a user must act.

Events are written in the same transaction as the change they report (an outbox): one
delivery per subscribed webhook, handed to the job queue after the commit. A delivery is
retried with back-off; every attempt is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from finsync.domain.entities import Connection, new_id, utcnow
from finsync.domain.enums import ConnectionStatus


class EventType(StrEnum):
    SYNC_SUCCEEDED = "sync.succeeded"
    SYNC_FAILED = "sync.failed"
    CONNECTION_NEEDS_REAUTH = "connection.needs_reauth"
    CONNECTION_EXPIRING = "connection.expiring"
    IMPORT_COMPLETED = "import.completed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # queued, or waiting for its next attempt
    SUCCEEDED = "succeeded"  # the receiver answered 2xx
    FAILED = "failed"  # out of attempts, or the target was refused (never retried)


class Attention(StrEnum):
    """Why a connection needs its user (None: it does not). Precedence: the first that applies."""

    NEEDS_REAUTH = "needs_reauth"
    FAILING = "failing"
    EXPIRING = "expiring"
    RATE_LIMITED = "rate_limited"


# A connection is "expiring" this long before expires_at.
EXPIRING_WITHIN = timedelta(days=7)
# "failing": this many consecutive failed syncs (one transient failure is retried soon anyway).
FAILING_AFTER = 2
RATE_LIMITED_CODE = "provider-rate-limited"
# connection.expiring is sent 7 days ahead (only when the authorisation lasts over 14 days,
# or it would arrive the day it was granted) and 1 day ahead; once per threshold.
EXPIRY_NOTICES = ((timedelta(days=7), timedelta(days=14)), (timedelta(days=1), timedelta(0)))


def attention(connection: Connection, now: datetime) -> Attention | None:
    """The rules of docs/webhooks.md (and the `attention` filter's SQL mirrors them)."""
    if connection.status is ConnectionStatus.NEEDS_REAUTH or (
        connection.expires_at is not None
        and connection.expires_at <= now
        and connection.status in (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)
    ):
        return Attention.NEEDS_REAUTH
    if connection.status is ConnectionStatus.ERROR and connection.failure_count >= FAILING_AFTER:
        return Attention.FAILING
    if (
        connection.expires_at is not None
        and connection.status in (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)
        and connection.expires_at <= now + EXPIRING_WITHIN
    ):
        return Attention.EXPIRING
    if connection.last_error_code == RATE_LIMITED_CODE and connection.status in (
        ConnectionStatus.ACTIVE,
        ConnectionStatus.ERROR,
    ):
        return Attention.RATE_LIMITED
    return None


def expiry_notice(connection: Connection, now: datetime) -> timedelta | None:
    """The notice threshold due now for this connection (7 or 1 day), or None. Only the
    tightest crossed threshold: time only moves on, so the wider one is never due again for
    the same ``expires_at`` (a new one, after re-authorising, starts over)."""
    expires = connection.expires_at
    if expires is None or expires <= now:
        return None
    if connection.status not in (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR):
        return None
    granted = connection.authorized_at or connection.created_at
    lifetime = expires - granted
    for ahead, longer_than in reversed(EXPIRY_NOTICES):  # 1 day first: the tightest
        if expires - now <= ahead:
            return ahead if lifetime > longer_than else None
    return None


@dataclass(slots=True, kw_only=True)
class Webhook:
    user_id: UUID
    url: str
    events: list[str]
    secret: bytes  # ciphertext of "whsec_<base64>"; shown to the user once, on create or rotate
    description: str | None = None
    id: UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(slots=True, kw_only=True)
class WebhookDelivery:
    """One event for one webhook; its id is the Standard Webhooks ``webhook-id`` (the same on
    every attempt, so receivers can deduplicate)."""

    user_id: UUID
    webhook_id: UUID
    event: str
    payload: dict[str, Any]
    id: UUID = field(default_factory=new_id)
    dedupe_key: str | None = None  # at most one delivery per webhook and key (expiry notices)
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    created_at: datetime = field(default_factory=utcnow)
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class WebhookAttempt:
    user_id: UUID
    delivery_id: UUID
    attempted_at: datetime
    id: UUID = field(default_factory=new_id)
    status_code: int | None = None  # None: no HTTP answer (refused, connection error, timeout)
    error: str | None = None
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one HTTP attempt got; ``refused``: the target is forbidden (never retried)."""

    status_code: int | None
    error: str | None = None
    refused: bool = False
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
