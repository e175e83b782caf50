"""The wire types: what they render, and that every API model uses them (a bare ``datetime`` or
``Decimal`` field would render an offset or an exponent again)."""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import ModuleType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, PlainSerializer, TypeAdapter, ValidationError

from finsync.api import errors, pagination, schemas, wire
from finsync.api.routers import imports

pytestmark = pytest.mark.unit
OURS = (wire.utc_text, wire.decimal_text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2012, 9, 8, 3, 30, 34, tzinfo=timezone(timedelta(hours=-4))), "2012-09-08T07:30:34Z"),
        (datetime(2026, 11, 21, 9, 0, tzinfo=UTC), "2026-11-21T09:00:00Z"),
        (datetime(2026, 11, 21, 9, 0, 0, 120000, tzinfo=UTC), "2026-11-21T09:00:00.120000Z"),
        (datetime(2026, 11, 21, 9, 0), "2026-11-21T09:00:00Z"),  # naive is stored UTC
    ],
)
def test_timestamps_render_utc_with_z(value: datetime, text: str) -> None:
    assert TypeAdapter(wire.UtcDateTime).dump_json(value).decode() == f'"{text}"'


@pytest.mark.parametrize(
    ("value", "text"),
    [("4.3E+2", "430"), ("1E-5", "0.00001"), ("-6.60", "-6.60"), ("5.00", "5.00"), ("0E-8", "0.00000000")],
)
def test_decimals_render_fixed_point(value: str, text: str) -> None:
    assert TypeAdapter(wire.DecimalText).dump_json(Decimal(value)).decode() == f'"{text}"'


@pytest.mark.parametrize("text", ["0", "20260101", "1700000000.5", "-1", " 12 "])
def test_query_dates_refuse_numbers(text: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(wire.QueryDate).validate_python(text)
    with pytest.raises(ValidationError):
        TypeAdapter(wire.QueryDateTime).validate_python(text)


def test_query_dates_read_iso_text() -> None:
    assert TypeAdapter(wire.QueryDate).validate_python("2026-01-05") == date(2026, 1, 5)
    moment = TypeAdapter(wire.QueryDateTime).validate_python("2026-01-05T10:00:00-05:00")
    assert moment == datetime(2026, 1, 5, 15, tzinfo=UTC)


def _bare(annotation: Any) -> list[Any]:
    """Every ``datetime``/``Decimal`` inside ``annotation`` that no wire serializer covers."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *meta = get_args(annotation)
        covered = any(isinstance(m, PlainSerializer) and m.func in OURS for m in meta)
        return [] if covered else _bare(base)
    if origin in (Union, UnionType) or origin in (list, dict, tuple, set):
        return [found for arg in get_args(annotation) for found in _bare(arg)]
    if annotation in (datetime, Decimal):
        return [annotation]
    return []


def _models(*modules: ModuleType) -> list[type[BaseModel]]:
    return [
        obj
        for module in modules
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]


def _api_modules() -> list[ModuleType]:
    """Every module of the API layer: a new schema module is covered without listing it here."""
    import importlib
    import pkgutil

    import finsync.api

    names = [m.name for m in pkgutil.walk_packages(finsync.api.__path__, "finsync.api.")]
    return [importlib.import_module(name) for name in names]


def test_every_api_model_renders_timestamps_and_decimals_through_the_wire_types() -> None:
    models = _models(*_api_modules())
    assert {schemas, errors, pagination, imports} <= set(_api_modules())
    assert len(models) > 15
    offenders = []
    for model in models:
        for name, info in model.model_fields.items():
            covered = any(isinstance(m, PlainSerializer) and m.func in OURS for m in info.metadata)
            if not covered and _bare(info.annotation):
                offenders.append(f"{model.__name__}.{name}")
    assert offenders == []
