"""CSV presets: known exports recognised from their header. One small module per preset.

A preset names the columns that identify its export (all must be present, case and
spacing ignored) and builds a row mapper for a file's header. Most bank presets are a
:class:`~finsync.domain.csvmapping.ColumnMapping` plus a kind/status rule; see
``monzo.py`` for the shortest one and docs/providers/index.md for the recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from finsync.domain.csvmapping import normalise_header
from finsync.providers.csv.mapping import AccountInfo, Mapped, Settings


class RowMapper(Protocol):
    settings: Settings

    def __call__(self, cells: Sequence[str]) -> Mapped:
        """The row mapped (raises ``RowError``, or ``SkipRow`` for a row not to import)."""
        ...

    def key(self, cells: Sequence[str]) -> tuple[AccountInfo, str] | None:
        """The row's account and id from its raw cells, or None to map the row to key it.
        A row keyed here is mapped only if the writer finds it new or changed, so the
        account must be the one ``__call__`` gives."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    name: str  # reported as "csv:<name>"
    display_name: str
    description: str
    columns: frozenset[str]  # normalised header names that identify the export
    build: Callable[[Sequence[str], Sequence[Sequence[str]]], RowMapper]  # (header, sample rows)
    # Header names of which at least one must be present, matched as prefixes ("total"
    # matches "Total (GBP)"): for exports whose columns depend on the period's content.
    any_of: tuple[str, ...] = ()

    def matches(self, header: Sequence[str]) -> bool:
        names = normalise_header(header)
        if not self.columns <= set(names):
            return False
        return not self.any_of or any(n.startswith(self.any_of) for n in names)


def identify(header: Sequence[str]) -> Preset | None:
    """The most specific preset whose columns the header has."""
    found = [p for p in all_presets() if p.matches(header)]
    return max(found, key=lambda p: len(p.columns)) if found else None


def all_presets() -> list[Preset]:
    from finsync.providers.csv.presets import amex, chase, monzo, revolut, trading212, vanguard_uk

    return [trading212.PRESET, revolut.PRESET, monzo.PRESET, chase.PRESET, amex.PRESET, vanguard_uk.PRESET]
