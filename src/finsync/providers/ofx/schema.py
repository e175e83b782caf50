"""What the tree builder knows of the OFX structure: the aggregates finsync reads, and the
parents of the structural ones (so a start tag can prove that an open aggregate ended)."""

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
