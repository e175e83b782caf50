"""Own-transfer detection: opposite amounts across two of a user's accounts within a few days."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from decimal import Decimal
from uuid import UUID

from finsync.domain.analytics_ports import TransferCandidate

WINDOW_DAYS = 3


def match_transfers(
    candidates: Sequence[TransferCandidate],
    rejected: Collection[tuple[UUID, UUID]] = (),
    new: Collection[UUID] | None = None,
    window: int = WINDOW_DAYS,
) -> list[tuple[UUID, UUID]]:
    """(outflow, inflow) pairs: same currency, amounts that cancel, different accounts, dates at
    most ``window`` days apart. Each transaction is used once; an outflow takes the closest
    inflow in time (then the earliest). Pairs the user rejected are never made again. With
    ``new``, only pairs with at least one new transaction are made (the rest were judged before).
    """
    inflows: dict[tuple[str, Decimal], list[TransferCandidate]] = defaultdict(list)
    for c in candidates:
        if c.amount > 0:
            inflows[(c.currency, c.amount)].append(c)
    used: set[UUID] = set()
    pairs = []
    outflows = sorted((c for c in candidates if c.amount < 0), key=lambda c: (c.day, str(c.id)))
    for out in outflows:
        options = [
            i
            for i in inflows.get((out.currency, -out.amount), [])
            if i.id not in used
            and i.account_id != out.account_id
            and abs((i.day - out.day).days) <= window
            and (out.id, i.id) not in rejected
            and (new is None or out.id in new or i.id in new)
        ]
        if not options:
            continue
        best = min(options, key=lambda i: (abs((i.day - out.day).days), i.day, str(i.id)))
        used |= {best.id, out.id}
        pairs.append((out.id, best.id))
    return pairs
