"""Leaving: take everything you own with you, then delete your account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from finsync.api.deps import ClientDep, ContainerDep, CurrentUser
from finsync.api.errors import responses
from finsync.application.export_format import ExportFormat
from finsync.domain.errors import AuthenticationFailed, TooManyAttempts, WrongPassword

router = APIRouter(prefix="/users/me", tags=["your data"])

_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export, streamed",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **responses(AuthenticationFailed),
}


class DeleteConfirmation(BaseModel):
    password: str = Field(min_length=1, max_length=1024, description="Your current password")


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses=_EXPORT_RESPONSES,
)
async def export_my_data(
    user: CurrentUser, container: ContainerDep, format: ExportFormat = ExportFormat.JSON
) -> StreamingResponse:
    """Everything you own, streamed as one JSON document: your profile, connections (never their
    credentials), accounts, holdings, transactions (with the provider's raw payload), balance
    snapshots, sync runs, sessions, categories, rules, transfers, holding history, webhooks
    (never their secret) with their deliveries, import mappings, trading settings, orders with
    their audit trail and API tokens (never the token). `?format=csv` gives a zip with one CSV
    per kind instead. Decimals are strings, timestamps UTC (`Z`); the export reads one
    consistent snapshot."""
    service = container.userdata
    return StreamingResponse(
        service.export(user.id, format),
        media_type=service.media_type(format),
        headers={"Content-Disposition": f'attachment; filename="{service.filename(format)}"'},
    )


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(AuthenticationFailed, WrongPassword, TooManyAttempts),
)
async def delete_me(
    body: DeleteConfirmation, user: CurrentUser, client: ClientDep, container: ContainerDep
) -> Response:
    """Delete your account and everything it owns — connections, accounts, transactions and
    every other kind the export holds, sessions and API tokens — at once and for good. Confirm with your
    password (a wrong one answers 403 and deletes nothing). Export first if you want a copy."""
    await container.user_auth.confirm_password(user, body.password, client)
    await container.userdata.delete_account(user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
