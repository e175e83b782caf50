"""Statement-file uploads."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, File, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from finsync.api.deps import ContainerDep, CurrentUser
from finsync.api.errors import responses
from finsync.api.idempotency import IdempotencyKey, answer, digest, respond
from finsync.api.schemas import AccountPublic
from finsync.application.idempotency import Answer
from finsync.domain.errors import Conflict, FileTooLarge, InvalidInput, MalformedFile, UnsupportedFormat

router = APIRouter(prefix="/imports", tags=["imports"])
CHUNK = 1024 * 1024


class FormatOut(BaseModel):
    name: str
    description: str
    extensions: list[str]


class ImportCounts(BaseModel):
    accounts_created: int
    accounts_updated: int
    accounts_unchanged: int
    transactions_inserted: int
    transactions_already_present: int = Field(description="Deduplicated: same id, same content")
    transactions_updated: int = Field(description="Same id, changed content (e.g. pending → posted)")
    holdings: int
    snapshots: int


class ImportOut(BaseModel):
    sync_run_id: UUID
    connection_id: UUID
    format: str
    accounts: list[AccountPublic]
    counts: ImportCounts
    warnings: list[str] = Field(description="Parts of the file that were read leniently or skipped")


@router.get("/formats", response_model=list[FormatOut])
async def list_formats(container: ContainerDep, _: CurrentUser) -> list[FormatOut]:
    """File formats POST /imports accepts (detected from the content, not the file name).
    CSV presets are listed as ``csv:<preset>``: the header identifies them."""
    out = []
    for f in container.imports.formats:
        out.append(FormatOut(name=f.name, description=f.description, extensions=list(f.extensions)))
        out += [
            FormatOut(name=f"{f.name}:{p.name}", description=p.description, extensions=list(f.extensions))
            for p in getattr(f, "presets", ())
        ]
    return out


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportOut,
    responses=responses(FileTooLarge, UnsupportedFormat, MalformedFile, Conflict, InvalidInput),
)
async def import_file(
    file: Annotated[UploadFile, File(description="An OFX/QFX statement")],
    user: CurrentUser,
    container: ContainerDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Import a statement file: accounts are matched by institution + account id, transactions are
    deduplicated (re-uploading inserts nothing), and nothing at all is written if the file is rejected.
    Uploads of one user run one at a time, so two at once never duplicate anything.

    422 problem types: ``malformed-file`` (broken markup, truncated), ``no-statements`` (sign-on or
    account list only), ``file-too-complex`` (more than one element per 8 bytes, 1,000 statements or
    2,000 element names), ``import-rejected`` (the institution's refusal). Repairs of real-world
    quirks are listed in ``warnings``; see docs/importing.md."""
    limit = container.imports.limit_bytes
    chunks, size = [], 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(f"the upload exceeds the limit of {limit:,} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    chunks.clear()  # one copy of a 50 MB upload is enough

    async def run() -> Answer:
        result = await container.imports.import_file(user.id, data, file.filename)
        out = ImportOut(
            sync_run_id=result.run.id,
            connection_id=result.connection.id,
            format=result.format,
            accounts=[AccountPublic.model_validate(a) for a in result.accounts],
            counts=ImportCounts(**asdict(result.summary())),
            warnings=result.warnings,
        )
        return answer(status.HTTP_201_CREATED, out)

    request = digest("POST", "/imports", (file.filename or "").encode(), data)
    return respond(await container.idempotency.run(user.id, idempotency_key, request, run))
