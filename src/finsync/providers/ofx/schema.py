"""What the tree builder knows of the OFX structure: the aggregates finsync reads, the
parents of the structural ones (so a start tag can prove that an open aggregate ended), and
where the readers read every repeated element rather than the first (so the builder keeps
only what can be read)."""

from __future__ import annotations

# Aggregates finsync reads. They never nest in themselves and must be closed; an unknown
# element left open is treated as an empty SGML leaf instead.
# fmt: off
AGGREGATES = frozenset({
    "OFX", "SIGNONMSGSRSV1", "SONRS", "STATUS", "FI", "BANKMSGSRSV1", "CREDITCARDMSGSRSV1",
    "INVSTMTMSGSRSV1", "SECLISTMSGSRSV1", "STMTTRNRS", "CCSTMTTRNRS", "INVSTMTTRNRS", "STMTRS",
    "CCSTMTRS", "INVSTMTRS", "BANKACCTFROM", "CCACCTFROM", "INVACCTFROM", "BANKTRANLIST", "INVTRANLIST",
    "STMTTRN", "LEDGERBAL", "AVAILBAL", "INVPOSLIST", "INVPOS", "INVBAL", "SECLIST", "SECINFO", "SECID",
    "INVTRAN", "INVBUY", "INVSELL", "CURRENCY", "ORIGCURRENCY", "INVBANKTRAN", "BUYSTOCK", "SELLSTOCK",
    "BUYMF", "SELLMF", "BUYDEBT", "SELLDEBT", "BUYOPT", "SELLOPT", "BUYOTHER", "SELLOTHER", "INCOME",
    "REINVEST", "TRANSFER", "SPLIT", "POSSTOCK", "POSMF", "POSDEBT", "POSOPT", "POSOTHER", "STOCKINFO",
    "MFINFO", "DEBTINFO", "OPTINFO", "OTHERINFO"
})
# fmt: on

_BANK_STATEMENTS = frozenset({"STMTRS", "CCSTMTRS"})
_MESSAGE_SETS = ("SIGNONMSGSRSV1", "BANKMSGSRSV1", "CREDITCARDMSGSRSV1", "INVSTMTMSGSRSV1", "SECLISTMSGSRSV1")
# The only parents a structural aggregate can have. When one starts while an aggregate
# above its parent is still open, that aggregate must have ended: its end tag is missing.
PARENTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(_MESSAGE_SETS, frozenset({"OFX"})),
    "SONRS": frozenset({"SIGNONMSGSRSV1"}),
    "STMTTRNRS": frozenset({"BANKMSGSRSV1"}),
    "CCSTMTTRNRS": frozenset({"CREDITCARDMSGSRSV1"}),
    "INVSTMTTRNRS": frozenset({"INVSTMTMSGSRSV1"}),
    "STMTRS": frozenset({"STMTTRNRS"}),
    "CCSTMTRS": frozenset({"CCSTMTTRNRS"}),
    "INVSTMTRS": frozenset({"INVSTMTTRNRS"}),
    "SECLIST": frozenset({"SECLISTMSGSRSV1"}),
    **dict.fromkeys(("BANKACCTFROM", "BANKTRANLIST", "LEDGERBAL", "AVAILBAL"), _BANK_STATEMENTS),
    "CCACCTFROM": _BANK_STATEMENTS,
    **dict.fromkeys(("INVACCTFROM", "INVTRANLIST", "INVPOSLIST", "INVBAL"), frozenset({"INVSTMTRS"})),
    "STMTTRN": frozenset({"BANKTRANLIST", "INVBANKTRAN"}),
}

STATEMENTS = frozenset({"STMTRS", "CCSTMTRS", "INVSTMTRS"})
# The OFX 2.x investment transaction aggregates (besides INVBANKTRAN).
# fmt: off
INVESTMENT_TRANSACTIONS = frozenset({
    "BUYDEBT", "BUYMF", "BUYOPT", "BUYOTHER", "BUYSTOCK", "SELLDEBT", "SELLMF", "SELLOPT", "SELLOTHER",
    "SELLSTOCK", "INCOME", "REINVEST", "TRANSFER", "SPLIT", "INVEXPENSE", "MARGININTEREST", "RETOFCAP",
    "JRNLFUND", "JRNLSEC", "CLOSUREOPT",
})
# fmt: on
POSITIONS = frozenset({"POSSTOCK", "POSMF", "POSDEBT", "POSOPT", "POSOTHER"})
SECURITIES = frozenset({"STOCKINFO", "MFINFO", "DEBTINFO", "OPTINFO", "OTHERINFO"})
_ITEM_LISTS = frozenset({"BANKTRANLIST", "INVTRANLIST", "INVPOSLIST", "SECLIST"})
_STRAY_ITEMS = INVESTMENT_TRANSACTIONS | POSITIONS | {"STMTTRN", "INVBANKTRAN"}
_IN_STATEMENTS = _STRAY_ITEMS | {
    "BANKTRANLIST",
    "INVTRANLIST",
    "INVPOSLIST",
    "LEDGERBAL",
    "AVAILBAL",
    "INVBAL",
}


def is_item(parent: str, tag: str) -> bool:
    """An element the readers flatten (``Node.leaves``): every element inside it is read."""
    return parent in _ITEM_LISTS or (parent in STATEMENTS and tag in _STRAY_ITEMS)


def reads_every(parent: str, tag: str) -> bool:
    """Whether the readers read every ``tag`` child of ``parent`` (message sets, responses,
    statements, lists and their items), not only the first one (``Node.find``)."""
    if parent == "OFX" or parent == "#document":
        return True
    if "MSGSRSV" in parent:
        return tag.endswith("TRNRS") or tag in STATEMENTS or tag == "SECLIST"
    if parent.endswith("TRNRS"):
        return tag in STATEMENTS
    if parent in STATEMENTS:
        return tag in _IN_STATEMENTS
    return parent in _ITEM_LISTS and (tag == "STMTTRN" or parent != "BANKTRANLIST")
