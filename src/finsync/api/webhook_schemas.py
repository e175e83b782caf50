"""Webhook request/response schemas."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from finsync.api.wire import UtcDateTime
from finsync.domain.webhooks import DeliveryStatus, EventType


class WebhookCreate(BaseModel):
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="https URL of your endpoint (public address; see FINSYNC_WEBHOOK_ALLOWED_HOSTS)",
    )
    events: list[EventType] = Field(
        min_length=1, max_length=len(EventType), description="Event types to deliver to this URL"
    )
    description: str | None = Field(default=None, max_length=200)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://client.example.com/finsync/webhook",
                    "events": ["sync.failed", "connection.needs_reauth", "connection.expiring"],
                    "description": "budget app",
                }
            ]
        }
    )


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    url: str
    events: list[EventType]
    description: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes: the HMAC-SHA256 key of the "
        "`webhook-signature` header (Standard Webhooks). Shown only in this answer"
    )


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: UtcDateTime
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer")
    error: str | None = Field(description="Why the attempt failed (non-2xx, refused target, network)")
    duration_ms: int


class DeliveryOut(BaseModel):
    id: UUID = Field(description="The delivery's id; its `webhook-id` header is `msg_` + this id's hex")
    event: EventType
    status: DeliveryStatus = Field(
        description="pending (queued or waiting to retry), succeeded (a 2xx answer) or failed "
        "(out of attempts, or the target was refused)"
    )
    attempts: list[AttemptOut]
    created_at: UtcDateTime
    last_attempt_at: UtcDateTime | None
    delivered_at: UtcDateTime | None
    payload: dict[str, Any] = Field(description="The JSON body sent: {type, timestamp, data}")
