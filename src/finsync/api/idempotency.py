"""The ``Idempotency-Key`` header of the POSTs that create things (see application.idempotency)."""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import UUID

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from finsync.application.idempotency import MAX_KEY, Answer

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_KEY,
        description="Makes a retry safe: the same key and request within 24 h returns the first "
        "answer and writes nothing (header `Idempotent-Replayed: true`); the same key with a "
        "different request answers 422; a retry while the first still runs answers 409.",
    ),
]


def digest(method: str, path: str, *parts: bytes) -> str:
    """What a key names: the method, the path and the body's meaningful parts."""
    h = hashlib.sha256(f"{method} {path}".encode())
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def answer(status_code: int, body: BaseModel, connection_id: UUID) -> Answer:
    """``connection_id``: the connection the answer names; deleting it forgets the key."""
    return Answer(status_code, body.model_dump(mode="json"), connection_id=connection_id)


def respond(result: Answer) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)
