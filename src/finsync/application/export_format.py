"""Byte encoders for a user's data export: one JSON document, or a zip of one CSV per section.

Both are written incrementally: each batch of rows becomes bytes at once and nothing
accumulates, so memory stays flat whatever the size of the history. Decimals are strings
(exact), timestamps are UTC with a ``Z``, dates are ISO 8601.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

import orjson

from finsync.domain.ports import ExportSection

FORMAT_NAME = "finsync-export"
FORMAT_VERSION = 1
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):  # asyncpg's UUID subclass is not orjson's uuid.UUID
        return str(value)
    raise TypeError(f"cannot export {type(value).__name__}")


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


class ExportWriter(Protocol):
    media_type: str
    extension: str

    def start(self, header: dict[str, Any]) -> bytes: ...
    def open(self, section: ExportSection) -> bytes: ...
    def rows(self, section: ExportSection, rows: Sequence[Sequence[Any]]) -> bytes: ...
    def close(self, section: ExportSection) -> bytes: ...
    def finish(self) -> bytes: ...


class JsonWriter:
    """``{"format": …, "user": {…}, "connections": [{…}, …], …}`` with one record per line."""

    media_type = "application/json"
    extension = "json"

    def __init__(self) -> None:
        self._first = True

    def start(self, header: dict[str, Any]) -> bytes:
        return _json(header)[:-1]  # left open: the sections follow

    def open(self, section: ExportSection) -> bytes:
        self._first = True
        return b',\n"' + section.name.encode() + (b'":' if section.single else b'":[')

    def rows(self, section: ExportSection, rows: Sequence[Sequence[Any]]) -> bytes:
        fields, raw = section.fields, [i for i, f in enumerate(section.fields) if f in section.json_fields]
        out = bytearray()
        for values in rows[:1] if section.single else rows:
            record = dict(zip(fields, values, strict=True))
            for i in raw:  # stored JSON text goes out as it is, not parsed and printed again
                if values[i] is not None:
                    record[fields[i]] = orjson.Fragment(values[i])
            out += b"" if section.single else b"\n" if self._first else b",\n"
            out += _json(record)
            self._first = False
        return bytes(out)

    def close(self, section: ExportSection) -> bytes:
        if section.single:
            return b"null" if self._first else b""
        return b"]" if self._first else b"\n]"

    def finish(self) -> bytes:
        return b"}\n"


def _cell(value: Any) -> Any:
    """One CSV cell; JSON fields arrive as text already and stay as they are."""
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        return value  # csv writes None as an empty cell
    if isinstance(value, datetime):
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()
    if isinstance(value, date | Decimal | UUID):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _json(value).decode()
    return value


class _Sink(io.RawIOBase):
    """An unseekable file that hands over what zipfile wrote so far (zipfile then writes
    sizes after each member, in data descriptors, instead of seeking back)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class CsvZipWriter:
    """A zip holding ``<section>.csv`` per section (header row first) and ``export.json``."""

    media_type = "application/zip"
    extension = "zip"

    def __init__(self) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_DEFLATED)
        self._member: Any = None
        self._text: io.TextIOWrapper | None = None
        self._csv: Any = None

    def start(self, header: dict[str, Any]) -> bytes:
        self._zip.writestr("export.json", _json(header))
        return self._sink.take()

    def open(self, section: ExportSection) -> bytes:
        self._member = self._zip.open(f"{section.name}.csv", "w", force_zip64=True)
        self._text = io.TextIOWrapper(self._member, encoding="utf-8", newline="")
        self._csv = csv.writer(self._text)
        self._csv.writerow(section.fields)
        return self._sink.take()

    def rows(self, section: ExportSection, rows: Sequence[Sequence[Any]]) -> bytes:
        assert self._text is not None
        self._csv.writerows([_cell(value) for value in values] for values in rows)
        self._text.flush()
        return self._sink.take()

    def close(self, section: ExportSection) -> bytes:
        assert self._text is not None
        self._text.close()  # closes the member: its data descriptor is written
        self._text = self._member = self._csv = None
        return self._sink.take()

    def finish(self) -> bytes:
        self._zip.close()  # the central directory
        return self._sink.take()


def writer_for(fmt: ExportFormat) -> ExportWriter:
    return JsonWriter() if fmt is ExportFormat.JSON else CsvZipWriter()
