"""CSV statement import: detection (detect), presets (presets/), column mappings (mapping), reader."""

from __future__ import annotations

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.providers.csv.reader import CsvFormat, CsvNoRows
from finsync.providers.spec import ProviderMetadata

__all__ = ["METADATA", "CsvFormat", "CsvNoRows"]

METADATA = ProviderMetadata(
    slug="csv",
    display_name="CSV export",
    category=ProviderCategory.OTHER,
    auth_type=AuthType.FILE,
    capabilities=frozenset({Capability.ACCOUNTS, Capability.TRANSACTIONS}),
    description=(
        "Upload CSV exports (Trading 212 history, Revolut, Monzo, Chase and American Express "
        "activity, Vanguard UK cash transactions, or any file described by a saved column "
        "mapping): POST /api/v1/imports. "
        "Re-uploads and overlapping exports never duplicate transactions."
    ),
    docs_url="docs/importing.md",
    institutions=(
        "Trading 212",
        "Revolut",
        "Monzo",
        "Chase",
        "American Express",
        "Vanguard UK",
        "Any CSV-exporting institution",
    ),
    file_format=CsvFormat(),
)
