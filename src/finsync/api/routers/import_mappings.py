"""Saved CSV column mappings: how to read a bank's export that no preset knows."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from finsync.api.deps import ContainerDep, CurrentUser
from finsync.api.errors import responses
from finsync.domain.csvmapping import ColumnMapping, ImportMapping, SignConvention
from finsync.domain.errors import Conflict, InvalidInput, NotFound

router = APIRouter(prefix="/import-mappings", tags=["imports"])
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ColumnsIn(BaseModel):
    """Column roles, by header name. ``date`` and either ``amount`` (optionally signed by a
    ``direction`` column) or ``debit``/``credit`` are needed."""

    model_config = ConfigDict(extra="forbid")
    date: ColumnName
    amount: ColumnName | None = None
    debit: ColumnName | None = Field(default=None, description="Money out, as positive numbers")
    credit: ColumnName | None = Field(default=None, description="Money in, as positive numbers")
    direction: ColumnName | None = Field(
        default=None,
        description=(
            "A column saying whether each row is a debit or a credit (DR/CR, D/C, Debit/Credit, "
            "case ignored) that signs the amount column: debits are money out, credits money in; "
            "an amount already negative with a debit marker stays negative. Needs amount and sign "
            "positive_in; a row whose marker is empty or unknown (or a negative credit) is not "
            "imported and is named in the warnings. Detected when null and the file has such a column"
        ),
    )
    description: list[ColumnName] = Field(
        default_factory=list, max_length=10, description="Joined with ' / '"
    )
    id: ColumnName | None = Field(default=None, description="A unique transaction id, if the file has one")
    currency: ColumnName | None = None
    symbol: ColumnName | None = None
    quantity: ColumnName | None = None
    unit_price: ColumnName | None = None
    fees: ColumnName | None = None
    settlement_date: ColumnName | None = None


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    header: list[ColumnName] = Field(
        min_length=2, max_length=200, description="The file's header (as POST /imports/preview shows it)"
    )
    columns: ColumnsIn
    date_format: Annotated[str, StringConstraints(max_length=20)] | None = Field(
        default=None, description="e.g. DD/MM/YYYY, MM/DD/YYYY, YYYY-MM-DD; detected when null"
    )
    decimal: Annotated[str, StringConstraints(pattern=r"^[.,]$")] | None = Field(
        default=None, description='"." or ","; detected when null'
    )
    sign: SignConvention = Field(
        default=SignConvention.POSITIVE_IN,
        description="positive_in: money in is positive; positive_out: charges are positive (card exports)",
    )
    default_currency: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")] | None = Field(
        default=None, description="The currency when there is no currency column"
    )
    account_id: UUID | None = Field(
        default=None, description="Load files read with this mapping into this account"
    )


class MappingOut(BaseModel):
    id: UUID
    name: str
    header: list[str]
    header_signature: str
    mapping: dict[str, str | list[str]]
    account_id: UUID | None


def _out(m: ImportMapping) -> MappingOut:
    return MappingOut(
        id=m.id, name=m.name, header=m.header, header_signature=m.signature,
        mapping=m.mapping.to_json(), account_id=m.account_id,
    )  # fmt: skip


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MappingOut,
    responses=responses(InvalidInput, NotFound, Conflict),
)
async def save_mapping(body: MappingIn, user: CurrentUser, container: ContainerDep) -> MappingOut:
    """Save how to read a CSV file: later uploads whose header is the same (case and spacing
    ignored) are read with it automatically, or name it with ``POST /imports?mapping_id=``.
    One mapping per header: 409 when one exists."""
    c = body.columns
    mapping = ColumnMapping(
        date=c.date, amount=c.amount, debit=c.debit, credit=c.credit, direction=c.direction, id=c.id,
        description=tuple(c.description),
        currency=c.currency, symbol=c.symbol, quantity=c.quantity, unit_price=c.unit_price, fees=c.fees,
        settlement_date=c.settlement_date, date_format=body.date_format, decimal=body.decimal, sign=body.sign,
        default_currency=body.default_currency.upper() if body.default_currency else None,
    )  # fmt: skip
    saved = ImportMapping(
        user_id=user.id, name=body.name, header=list(body.header), mapping=mapping, account_id=body.account_id
    )
    return _out(await container.imports.save_mapping(saved))


@router.get("", response_model=list[MappingOut])
async def list_mappings(user: CurrentUser, container: ContainerDep) -> list[MappingOut]:
    """Your saved CSV mappings."""
    return [_out(m) for m in await container.imports.mappings(user.id)]


@router.delete("/{mapping_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound))
async def delete_mapping(mapping_id: UUID, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete a saved mapping; files already imported with it keep their rows and accounts."""
    await container.imports.delete_mapping(mapping_id, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
