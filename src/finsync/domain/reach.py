"""One real bank account reached through two connections (e.g. moving from GoCardless to
Enable Banking): which one counts in net worth, and which one is its shadow.

Accounts are the same when they carry the same IBAN (normalised) and currency: currency
pockets of one multi-currency account share an IBAN but are different money.

The rule is deterministic and does not flip between syncs: the account whose connection is
healthy (status ``active`` and consent not lapsed) wins over one whose connection is not;
between two equally healthy ones, the newer connection wins (a person adds the new provider
when moving to it), then the higher connection id. "Most recently synced" would be simpler
to say, but two live connections sync at different times, so the live account (and every
figure built on it) would swap back and forth several times a day.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from finsync.domain.enums import ConnectionStatus

_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")


def normalise_iban(value: object) -> str | None:
    """Upper-case without spaces; None unless it is a well-formed IBAN with a valid ISO 7064
    check (a masked ``DE89****1234`` or a domestic number must never match another account)."""
    if not isinstance(value, str):
        return None
    text = re.sub(r"\s+", "", value).upper()
    if not _IBAN.match(text):
        return None
    digits = "".join(str(int(ch, 36)) for ch in text[4:] + text[:4])
    return text if int(digits) % 97 == 1 else None


@dataclass(frozen=True, slots=True)
class Reach:
    """An account of the user that carries an IBAN another connection's account carries too."""

    account_id: UUID
    connection_id: UUID
    provider: str
    iban: str
    currency: str
    status: ConnectionStatus
    expires_at: datetime | None
    connected_at: datetime

    def healthy(self, now: datetime) -> bool:
        lapsed = self.expires_at is not None and self.expires_at <= now
        return self.status is ConnectionStatus.ACTIVE and not lapsed


@dataclass(slots=True)
class Duplicates:
    """``live_of``: shadowed account → the account that counts instead; ``peers``: every
    duplicated account → the other accounts reaching the same money (both directions)."""

    live_of: dict[UUID, UUID] = field(default_factory=dict)
    peers: dict[UUID, list[Reach]] = field(default_factory=dict)

    @property
    def shadowed(self) -> frozenset[UUID]:
        return frozenset(self.live_of)


def resolve(reaches: Iterable[Reach], now: datetime) -> Duplicates:
    """Group by (IBAN, currency); in each group of two or more connections, one live account."""
    groups: dict[tuple[str, str], list[Reach]] = defaultdict(list)
    for reach in reaches:
        groups[(reach.iban, reach.currency)].append(reach)
    out = Duplicates()
    for members in groups.values():
        if len({m.connection_id for m in members}) < 2:
            continue
        live = max(members, key=lambda m: (m.healthy(now), m.connected_at, m.connection_id.hex))
        for member in members:
            out.peers[member.account_id] = [m for m in members if m.account_id != member.account_id]
            if member is not live:
                out.live_of[member.account_id] = live.account_id
    return out
