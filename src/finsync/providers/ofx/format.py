"""OFX/QFX as an import format: sniffing, then reader + mappers into ParsedFile."""

from __future__ import annotations

from dataclasses import replace

from finsync.domain.enums import AuthType, Capability, ProviderCategory
from finsync.domain.ports import ParsedFile, ParsedStatement
from finsync.domain.records import ProviderTransaction
from finsync.providers.ofx.encoding import looks_like_ofx
from finsync.providers.ofx.mappers import map_document
from finsync.providers.ofx.reader import parse_ofx
from finsync.providers.spec import ProviderMetadata


class OfxFormat:
    name = "ofx"
    description = "OFX 1.x (SGML) and 2.x (XML) statements, including Quicken QFX and Microsoft Money files"
    extensions: tuple[str, ...] = (".ofx", ".qfx", ".qbo")

    def sniff(self, head: bytes, filename: str | None) -> bool:
        return looks_like_ofx(head)

    def read(self, data: bytes) -> ParsedFile:
        document = parse_ofx(data, defer=True)
        warnings = document.warnings  # the same list: deferred transactions add theirs later
        statements = [
            ParsedStatement(
                account=mapped.account,
                transactions=_unique_ids(mapped.transactions, warnings),
                deferred=[mapped.deferred] if mapped.deferred is not None else [],
                holdings=mapped.holdings,  # None: the file says nothing about positions
                institution=mapped.institution_fid or mapped.institution,
            )
            for mapped in map_document(document)
        ]
        return ParsedFile(format=self.name, statements=statements, warnings=warnings)


def _unique_ids(transactions: list[ProviderTransaction], warnings: list[str]) -> list[ProviderTransaction]:
    """Some banks reuse a FITID for different transactions in one file. Keeping the first and
    dropping the rest would lose money movements, so later distinct ones get ``#n`` suffixes;
    exact repeats are the same transaction and count once."""
    seen: dict[str, list[tuple[object, ...]]] = {}
    out = []
    for t in transactions:
        key = (t.transaction_date, t.amount, t.description, t.type, t.subtype)
        variants = seen.setdefault(t.provider_transaction_id, [])
        if key in variants:
            continue
        if variants:
            warnings.append(
                f"FITID {t.provider_transaction_id} is used for {len(variants) + 1} different transactions; "
                "kept each of them"
            )
            t = replace(t, provider_transaction_id=f"{t.provider_transaction_id}#{len(variants) + 1}")
        variants.append(key)
        out.append(t)
    return out


METADATA = ProviderMetadata(
    slug="ofx",
    display_name="OFX/QFX statement file",
    category=ProviderCategory.OTHER,
    auth_type=AuthType.FILE,
    capabilities=frozenset(
        {Capability.ACCOUNTS, Capability.BALANCES, Capability.HOLDINGS, Capability.TRANSACTIONS}
    ),
    description=(
        "Upload OFX or QFX statements (bank, credit card, investment) exported from your bank or "
        "broker: POST /api/v1/imports. Re-uploads never duplicate transactions."
    ),
    docs_url="docs/importing.md",
    institutions=("Chase", "Vanguard", "Fidelity", "American Express", "Any OFX-exporting institution"),
    file_format=OfxFormat(),
)
