"""Statement-file uploads."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, File, Query, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from finsync.api.deps import ContainerDep, CurrentUser
from finsync.api.errors import responses
from finsync.api.idempotency import IdempotencyKey, answer, digest, respond
from finsync.api.schemas import AccountPublic
from finsync.application.idempotency import Answer
from finsync.domain.errors import (
    Conflict,
    FileTooLarge,
    InvalidInput,
    MalformedFile,
    NotFound,
    UnsupportedFormat,
)

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


MappingId = Annotated[
    UUID | None,
    Query(description="Read a CSV file with this saved mapping (GET /api/v1/import-mappings)"),
]
AccountId = Annotated[
    UUID | None,
    Query(description="Load the rows into this existing account instead of the file's own account"),
]


class PreviewRow(BaseModel):
    line: int
    account: str
    date: str
    amount: str
    currency: str
    type: str
    subtype: str
    status: str
    description: str | None
    symbol: str | None
    quantity: str | None
    fees: str | None
    id: str = Field(description="The row's id in its account: the file's id column, or h: + a content digest")


class PreviewOut(BaseModel):
    format: str = Field(description="csv:<preset>, csv:mapping (a saved mapping) or csv (guessed columns)")
    header: list[str]
    header_signature: str = Field(description="What saved mappings are matched by")
    settings: dict[str, str] = Field(
        description="Detected encoding, delimiter, quote, date and number format"
    )
    mapping: dict[str, str | list[str]] | None = Field(
        description="The column roles used (saved or guessed); null for a preset"
    )
    mapping_id: UUID | None = Field(description="The saved mapping used, if any")
    rows_total: int
    rows_usable: int
    rows_skipped: int = Field(description="Rows left out on purpose (e.g. declined card payments)")
    rows: list[PreviewRow] = Field(description="The first rows as they would be imported")
    problems: list[str] = Field(description="Rows that could not be read, by line, and detection notes")


async def _read_upload(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(f"the upload exceeds the limit of {limit:,} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    chunks.clear()  # one copy of a 50 MB upload is enough
    return data


@router.post(
    "/preview",
    response_model=PreviewOut,
    responses=responses(FileTooLarge, UnsupportedFormat, MalformedFile, NotFound),
)
async def preview_file(
    file: Annotated[UploadFile, File(description="A CSV export")],
    user: CurrentUser,
    container: ContainerDep,
    mapping_id: MappingId = None,
) -> PreviewOut:
    """What importing this CSV file would read, without writing anything: the detected settings,
    the preset or mapping used (a saved mapping for the same header is used automatically), the
    first rows parsed and every row that could not be read, by line. Use it to build a mapping
    for POST /api/v1/import-mappings."""
    data = await _read_upload(file, container.imports.limit_bytes)
    return PreviewOut.model_validate(
        await container.imports.preview(user.id, data, file.filename, mapping_id)
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportOut,
    responses=responses(FileTooLarge, UnsupportedFormat, MalformedFile, Conflict, InvalidInput, NotFound),
)
async def import_file(
    file: Annotated[UploadFile, File(description="An OFX/QFX statement or a CSV export")],
    user: CurrentUser,
    container: ContainerDep,
    idempotency_key: IdempotencyKey = None,
    mapping_id: MappingId = None,
    account_id: AccountId = None,
) -> JSONResponse:
    """Import a statement file: accounts are matched by institution + account id, transactions are
    deduplicated (re-uploading inserts nothing), and nothing at all is written if the file is rejected.
    Uploads of one user run one at a time, so two at once never duplicate anything.

    CSV files are read with ``mapping_id``'s saved mapping, else the user's mapping saved for the
    file's header, else a preset the header identifies (``csv:<preset>``), else columns guessed from
    common names; a row that cannot be read is left out and named, by line, in ``warnings``. With
    ``account_id`` the rows go into that existing account, and rows it already holds from another
    source (same date, signed amount, currency, symbol and quantity) are not added again.

    422 problem types: ``malformed-file`` (broken markup, truncated), ``no-statements`` (sign-on or
    account list only), ``no-usable-rows`` (a CSV file none of whose rows can be read),
    ``file-too-complex`` (more than one element per 8 bytes, 1,000 statements or
    2,000 element names), ``import-rejected`` (the institution's refusal). Repairs of real-world
    quirks are listed in ``warnings``; see docs/importing.md."""
    data = await _read_upload(file, container.imports.limit_bytes)

    async def run() -> Answer:
        result = await container.imports.import_file(
            user.id, data, file.filename, mapping_id=mapping_id, account_id=account_id
        )
        out = ImportOut(
            sync_run_id=result.run.id,
            connection_id=result.connection.id,
            format=result.format,
            accounts=[AccountPublic.model_validate(a) for a in result.accounts],
            counts=ImportCounts(**asdict(result.summary())),
            warnings=result.warnings,
        )
        return answer(status.HTTP_201_CREATED, out, result.connection.id)

    # The options are part of what a key names; without them the digest is the one it always was.
    options = [
        f"{k}={v}" for k, v in (("mapping_id", mapping_id), ("account_id", account_id)) if v is not None
    ]
    path = "/imports" + ("?" + "&".join(options) if options else "")
    request = digest("POST", path, (file.filename or "").encode(), data)
    return respond(await container.idempotency.run(user.id, idempotency_key, request, run))
