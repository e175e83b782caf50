"""Incremental paging: stop only at a page that holds nothing new.

A listing that should be newest first is not always so (items out of order, an old
order that fills today, a server that ignores ``after``), so time is never a stopping
rule. Instead the adapter remembers the ids and content fingerprints of the items at
the top of the listing (bounded), and a page is "nothing new" only when every item
on it has a known id *and* an unchanged fingerprint. Whatever incremental paging can
still miss deep in history is reconciled by a periodic full pass (see Trading 212).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

FINGERPRINT_CHARS = 12  # 48 bits: collisions among one account's items are not a practical concern


def fingerprint(item: Any) -> str:
    """A short digest of an item's whole content: any change (a fill, a status) changes it."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=FINGERPRINT_CHARS // 2).hexdigest()


class KnownItems:
    """Ids → fingerprints of the items last seen at the top of a listing, in listing order."""

    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self.entries: dict[str, str] = dict(entries or {})

    @classmethod
    def load(cls, value: Any) -> KnownItems:
        """Stored state; anything unreadable means nothing is known (the sync reads on)."""
        if not isinstance(value, dict):
            return cls()
        return cls({str(k): str(v) for k, v in value.items() if isinstance(v, str)})

    def is_new(self, item_id: str, print_: str) -> bool:
        return self.entries.get(item_id) != print_

    def nothing_new(self, page: Iterable[tuple[str, str]]) -> bool:
        """True for a non-empty page whose every item is known with the same content."""
        seen = False
        for item_id, print_ in page:
            if self.is_new(item_id, print_):
                return False
            seen = True
        return seen

    def after(self, top: Iterable[tuple[str, str]], cap: int) -> dict[str, str]:
        """What to remember next time: ``top`` (the pages just read, in listing order) first,
        then earlier entries not seen again, at most ``cap`` of them."""
        merged: dict[str, str] = {}
        for item_id, print_ in top:
            merged.setdefault(item_id, print_)
        for item_id, print_ in self.entries.items():
            if len(merged) >= cap:
                break
            merged.setdefault(item_id, print_)
        return dict(list(merged.items())[:cap])
