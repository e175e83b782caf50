"""Webhooks: endpoints of your own clients, told about syncs, imports and connections."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from finsync.api.deps import ContainerDep, CurrentUser, PageDep, bounded
from finsync.api.errors import responses
from finsync.api.pagination import PageOut, encode_cursor
from finsync.api.webhook_schemas import (
    AttemptOut,
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookWithSecret,
)
from finsync.application.webhooks import Created
from finsync.domain.errors import InvalidInput, NotFound

router = APIRouter(tags=["webhooks"])


def _with_secret(created: Created) -> WebhookWithSecret:
    fields = WebhookOut.model_validate(created.webhook).model_dump()
    return WebhookWithSecret.model_validate(fields | {"secret": created.secret})


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    responses=responses(InvalidInput),
)
async def create_webhook(
    body: WebhookCreate, user: CurrentUser, container: ContainerDep
) -> WebhookWithSecret:
    """Register an endpoint for the given event types. The answer holds the signing `secret`
    **once**: store it (rotate it with `POST /webhooks/{id}/rotate-secret` if lost). The URL
    must be `https` and resolve to a public address; loopback, private and link-local targets
    (and plain `http`) only when the operator lists them in `FINSYNC_WEBHOOK_ALLOWED_HOSTS`.
    Deliveries are JSON signed per Standard Webhooks (see docs/webhooks.md). At most 20
    webhooks per user: one more is refused with 422 (delete one first), also when creations
    race each other."""
    created = await container.webhooks.create(user.id, body.url, body.events, body.description)
    return _with_secret(created)


@router.get("/webhooks", response_model=PageOut[WebhookOut])
@bounded
async def list_webhooks(user: CurrentUser, container: ContainerDep, page: PageDep) -> PageOut[WebhookOut]:
    """Your webhooks, oldest first (secrets are never shown again)."""
    found = await container.webhooks.find(user.id, page)
    return PageOut[WebhookOut](
        items=[WebhookOut.model_validate(w) for w in found.items],
        next_cursor=encode_cursor(found.next_key) if found.next_key else None,
    )


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, responses=responses(NotFound))
async def get_webhook(webhook_id: UUID, user: CurrentUser, container: ContainerDep) -> WebhookOut:
    """One webhook."""
    return WebhookOut.model_validate(await container.webhooks.get(user.id, webhook_id))


@router.delete(
    "/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound)
)
async def delete_webhook(webhook_id: UUID, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete a webhook with its delivery history; deliveries not sent yet are dropped."""
    await container.webhooks.delete(user.id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret", response_model=WebhookWithSecret, responses=responses(NotFound)
)
async def rotate_webhook_secret(
    webhook_id: UUID, user: CurrentUser, container: ContainerDep
) -> WebhookWithSecret:
    """Replace the signing secret at once and answer the new one (**once**); every delivery
    from now on, retries included, is signed with it."""
    return _with_secret(await container.webhooks.rotate(user.id, webhook_id))


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=PageOut[DeliveryOut],
    responses=responses(NotFound),
)
@bounded
async def list_deliveries(
    webhook_id: UUID, user: CurrentUser, container: ContainerDep, page: PageDep
) -> PageOut[DeliveryOut]:
    """The webhook's deliveries, newest first, each with its attempts (status code, error, time)."""
    found, attempts = await container.webhooks.deliveries(user.id, webhook_id, page)
    items = [
        DeliveryOut(
            id=d.id,
            event=d.event,
            status=d.status,
            attempts=[AttemptOut.model_validate(a) for a in attempts.get(d.id, [])],
            created_at=d.created_at,
            last_attempt_at=d.last_attempt_at,
            delivered_at=d.delivered_at,
            payload=d.payload,
        )
        for d in found.items
    ]
    return PageOut[DeliveryOut](
        items=items, next_cursor=encode_cursor(found.next_key) if found.next_key else None
    )
