"""OFX/QFX file import: a hand-written, linear-time reader and pure mappers to finsync records.

The import use-case calls :func:`looks_like_ofx` to detect the format, :func:`parse_ofx`
to read the bytes, then :func:`map_document` to get one :class:`MappedStatement` per account.
"""

from finsync.providers.ofx.encoding import looks_like_ofx
from finsync.providers.ofx.mappers import MappedStatement, map_document
from finsync.providers.ofx.model import (
    OfxDocument,
    OfxInstitutionError,
    OfxInvestmentTransaction,
    OfxLimitExceeded,
    OfxNoStatements,
    OfxPosition,
    OfxSecurity,
    OfxStatement,
    OfxTransaction,
)
from finsync.providers.ofx.reader import parse_ofx

__all__ = [
    "MappedStatement",
    "OfxDocument",
    "OfxInstitutionError",
    "OfxInvestmentTransaction",
    "OfxLimitExceeded",
    "OfxNoStatements",
    "OfxPosition",
    "OfxSecurity",
    "OfxStatement",
    "OfxTransaction",
    "looks_like_ofx",
    "map_document",
    "parse_ofx",
]
