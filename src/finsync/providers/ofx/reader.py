"""``parse_ofx``: bytes of an OFX/QFX file → :class:`OfxDocument`.

Hand-written on purpose: no XML parser (so no DTD, external entity or entity-expansion
surface), linear time and memory (one decode, one tokenizer pass, no re-joining of
the text), tolerant of what real banks send (SGML without end tags, lowercase tags,
missing headers, wrong charsets, Intuit ``INTU.*`` and other dotted extensions).

What is fatal (``MalformedFile``): no ``<OFX>``, broken or truncated markup, DTD
declarations, a statement without an account id, no statement at all
(``OfxNoStatements``). What refuses the file (``OfxInstitutionError``): a failed
sign-on, or statement responses that all carry an error status and no data; and
(``OfxLimitExceeded``) more work than the file's size justifies: more than one element
per :data:`BYTES_PER_ELEMENT` bytes on average, or more than :data:`MAX_STATEMENTS`
statements. Everything else is a warning in ``OfxDocument.warnings``, with the line
number, and the affected item is left out or left ``None``.
"""

from __future__ import annotations

from finsync.domain.errors import MalformedFile
from finsync.gcpause import gc_paused
from finsync.providers.ofx.encoding import decode, read_header
from finsync.providers.ofx.investments import investment_statement, securities
from finsync.providers.ofx.model import OfxDocument, OfxInstitutionError, OfxLimitExceeded, OfxNoStatements
from finsync.providers.ofx.nodes import Lines, Node
from finsync.providers.ofx.statements import Context, bank_statement
from finsync.providers.ofx.tokenizer import MAX_STATEMENTS, build_tree, find_body

__all__ = ["BYTES_PER_ELEMENT", "MAX_STATEMENTS", "parse_ofx"]

BYTES_PER_ELEMENT = 8
ELEMENT_ALLOWANCE = 256  # so that tiny files are never refused

_STATEMENTS = ("STMTRS", "CCSTMTRS", "INVSTMTRS")
_OK_SEVERITIES = ("INFO", "WARN")
_Failure = tuple[int, str, str, str, int]  # code, severity, message, description, offset


@gc_paused
def parse_ofx(data: bytes, *, defer: bool = False) -> OfxDocument:
    """Read a whole OFX 1.x/2.x or QFX file. The caller bounds ``len(data)``.

    ``defer=True`` leaves the bulk of a bank statement's STMTTRNs unconverted in
    ``statement.unread`` (an investment statement's entries in ``statement.unread_entries``),
    for importers that convert only what they do not store yet; the warnings about those
    transactions then arrive when they are converted.
    """
    if not data or data.isspace():  # same as ``not data.strip()``, without copying the file
        raise MalformedFile("the file is empty")
    check_elements(data)
    warnings: list[str] = []
    header = read_header(data)
    text, codec = decode(data, header, warnings)
    lines = Lines(text)
    start = find_body(text, lines)
    del text  # the tree builder may replace it by a normalised copy: keep only that one
    ofx = build_tree(lines, start, warnings)
    ctx = Context(lines, warnings, defer=defer)
    document = OfxDocument(header=header, encoding=codec, warnings=warnings)
    _sign_on(ofx, document, ctx)
    failures: list[_Failure] = []
    other_responses: set[str] = set()
    for message_set in ofx.children:
        if message_set.tag == "SIGNONMSGSRSV1" or message_set.value is not None:
            continue
        for child in message_set.children:
            if child.tag.endswith("TRNRS"):
                _response(child, document, ctx, failures, other_responses)
            elif child.tag in _STATEMENTS:  # a statement without its TRNRS wrapper
                _statement(child, document, ctx)
            elif child.tag == "SECLIST":
                document.securities.extend(securities(child, ctx))
    if not document.statements:
        if failures:
            code, severity, message, what, pos = failures[0]
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            where = f"{what} at line {ctx.line(pos)}{more}"
            raise OfxInstitutionError(
                f"the institution returned an error instead of a statement: {where}",
                status_code=code,
                severity=severity,
                message=message,
            )
        only = f"only {', '.join(sorted(other_responses))}" if other_responses else "sign-on only"
        raise OfxNoStatements(f"the file contains no account statement ({only}): there is nothing to import")
    for *_, what, pos in failures:
        ctx.warn(pos, f"the institution returned an error instead of a statement: {what}")
    ctx.finish()
    return document


def check_elements(data: bytes) -> None:
    """Refuse, before decoding or building anything, a file with more markup than its size
    justifies: a real statement has an element per 10-20 bytes, and a file of tiny elements
    is cheap to send but costly to read. Markup is counted as ``<`` not followed by ``/``
    (start tags, comments, declarations): two C-level scans."""
    budget = len(data) // BYTES_PER_ELEMENT + ELEMENT_ALLOWANCE
    elements = data.count(b"<")
    if elements > budget and (elements := elements - data.count(b"</")) > budget:
        raise OfxLimitExceeded(
            f"the file holds {elements:,} elements in {len(data):,} bytes; at most one element per "
            f"{BYTES_PER_ELEMENT} bytes on average ({budget:,} here) is accepted"
        )


def _sign_on(ofx: Node, document: OfxDocument, ctx: Context) -> None:
    message_set = ofx.find("SIGNONMSGSRSV1")
    response = message_set.find("SONRS") if message_set is not None else None
    if response is None:
        return
    institution = response.find("FI")
    if institution is not None:
        document.institution_org = institution.text("ORG")
        document.institution_fid = institution.text("FID")
    code, severity, message = _status(response, ctx)
    if code == 0:
        return
    if severity in _OK_SEVERITIES:
        ctx.warn(response.pos, f"sign-on status {code} {severity}: {message or 'no message'}")
        return
    raise OfxInstitutionError(
        f"the institution refused the sign-on: code {code} ({message or 'no message'})",
        status_code=code,
        severity=severity,
        message=message,
    )


def _status(node: Node, ctx: Context) -> tuple[int, str, str]:
    """(code, severity, message) of the STATUS child; a missing STATUS counts as success."""
    status = node.find("STATUS")
    if status is None:
        return 0, "INFO", ""
    raw = status.text("CODE") or "0"
    try:
        code = int(raw)
    except ValueError:
        ctx.warn(status.pos, f"<STATUS>/<CODE> {raw!r} is not a number; treated as an error")
        code = -1
    return code, (status.text("SEVERITY") or "").upper(), status.text("MESSAGE") or ""


def _response(
    node: Node, document: OfxDocument, ctx: Context, failures: list[_Failure], others: set[str]
) -> None:
    statements = [child for child in node.children if child.tag in _STATEMENTS and child.value is None]
    code, severity, message = _status(node, ctx)
    if code != 0:
        what = f"code {code} {severity or '?'} ({message or 'no message'}) in <{node.tag}>"
        if not statements:
            failures.append((code, severity, message, what, node.pos))
        else:
            ctx.warn(node.pos, f"the institution reported {what}; its statement is still read")
    if len(statements) > 1:  # one per response in the standard; real files do hold more
        ctx.warn(statements[1].pos, f"<{node.tag}> holds {len(statements)} statements; all of them are read")
    for statement in statements:
        _statement(statement, document, ctx)
    if not statements and code == 0:
        others.add(next((c.tag for c in node.children if c.value is None and c.tag != "STATUS"), node.tag))


def _statement(node: Node, document: OfxDocument, ctx: Context) -> None:
    if node.tag == "INVSTMTRS":
        document.statements.append(investment_statement(node, ctx))
    else:
        document.statements.append(bank_statement(node, ctx))
