"""Trading 212 history, read incrementally without missing anything.

History pages are not reliably newest first (an old limit order that fills today is
listed with its old ``createdAt``, pages can interleave), so time never stops paging:
a sync reads from the top until a page holds nothing new — every item's id known
*and* its content fingerprint unchanged (an order whose fill changed is new).

What that cannot see (a change deep in history) a periodic full pass reconciles: once
``FULL_PASS_EVERY`` has passed, each sync also walks ``PASS_PAGES`` pages further down
the listing, continuing where the previous sync stopped, until the listing ends. The
pass is spread over syncs so that no sync holds the endpoint's 6-pages-a-minute budget
for long; a first sync (no state) reads everything and counts as a pass. A stored
cursor the server refuses restarts the pass from the top rather than failing syncs.

``session.state[endpoint]``, bounded::

    {"known": {id: fingerprint, ...},   # at most KNOWN_CAP, the top of the listing first
     "full_due": epoch seconds,         # when the next pass starts
     "resume": "/api/v0/...?cursor=…"}  # where an unfinished pass continues (absent: none)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from finsync.domain.errors import BadData, ProviderError
from finsync.providers.incremental import KnownItems, fingerprint
from finsync.providers.trading212.client import Trading212Client

log = structlog.get_logger(__name__)

FULL_PASS_EVERY = 7 * 86_400.0
PASS_PAGES = 12  # pages of a full pass per sync and endpoint: two minutes of its budget
KNOWN_CAP = 150  # three pages: recognises the top of the listing, even out of order


def item_id(endpoint: str, item: dict[str, Any]) -> str:
    """Orders are keyed by order id, dividends and cash movements by their reference."""
    if endpoint == "history_orders":
        return str((item.get("order") or {}).get("id"))
    return str(item.get("reference"))


def _keys(endpoint: str, items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item_id(endpoint, item), fingerprint(item)) for item in items]


@dataclass(slots=True)
class EndpointState:
    known: KnownItems
    full_due: float
    resume: str | None = None

    @classmethod
    def load(cls, value: Any) -> EndpointState | None:
        """State of an earlier successful sync; anything else (none, or the older watermark
        format) means "read everything", which also reconciles what that format missed."""
        if not isinstance(value, dict) or not isinstance(value.get("known"), dict):
            return None
        try:
            due = float(value["full_due"])
        except (KeyError, TypeError, ValueError):
            return None
        resume = value.get("resume")
        return cls(KnownItems.load(value["known"]), due, resume if isinstance(resume, str) else None)

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"known": self.known.entries, "full_due": self.full_due}
        if self.resume is not None:
            out["resume"] = self.resume
        return out


class HistoryReader:
    """Reads one history endpoint for one sync and says what to remember."""

    def __init__(self, client: Trading212Client, endpoint: str) -> None:
        self.client, self.endpoint = client, endpoint

    async def _walk(
        self, path: str | None, *, known: KnownItems | None, pages: int | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Pages from ``path`` until the listing ends, ``pages`` pages were read, or (with
        ``known``) a page holds nothing new. Returns the items and where to go on."""
        items: list[dict[str, Any]] = []
        read, seen = 0, set[str]()  # paths this walk followed: coming back to one is a server loop
        while True:
            page, next_path = await self.client.page(self.endpoint, path)
            items.extend(page)
            read += 1
            done = known is not None and known.nothing_new(_keys(self.endpoint, page))
            # Only a null nextPagePath ends the listing: an empty page may still name the next.
            if next_path is None or done or (pages is not None and read >= pages):
                return items, next_path
            if next_path in seen:
                raise BadData(f"trading212 {self.endpoint}: pagination loops")
            seen.add(next_path)
            path = next_path

    async def read(self, stored: Any, now: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """This sync's items (top of the listing first, each id once) and the state to store."""
        state = EndpointState.load(stored)
        if state is None:  # first sync: the whole history, which is also a full pass
            items, _ = await self._walk(None, known=None, pages=None)
            known = KnownItems().after(_keys(self.endpoint, items[:KNOWN_CAP]), KNOWN_CAP)
            return items, EndpointState(KnownItems(known), now + FULL_PASS_EVERY).dump()
        top, below = await self._walk(None, known=state.known, pages=None)
        items = list(top)
        resume = state.resume
        if resume is None and now >= state.full_due:
            resume = below  # the pass starts under the pages just read
            if resume is None:  # they reached the end: the pass is complete
                state.full_due = now + FULL_PASS_EVERY
        if resume is not None:
            try:
                deep, resume = await self._walk(resume, known=None, pages=PASS_PAGES)
            except ProviderError as exc:
                if type(exc) is not ProviderError:  # auth, scope, limits, outages, bad data: fail
                    raise
                # The server refused the stored cursor (e.g. it expired): start the pass again.
                log.warning("trading212_full_pass_restarted", endpoint=self.endpoint, error=exc.detail)
                deep, resume = [], None
                state.full_due = now
            else:
                if resume is None:
                    state.full_due = now + FULL_PASS_EVERY
            items.extend(deep)
        state.resume = resume
        state.known = KnownItems(state.known.after(_keys(self.endpoint, top), KNOWN_CAP))
        unique: dict[str, dict[str, Any]] = {}
        for item in items:  # a listing that moved between syncs may show an item twice: top wins
            unique.setdefault(item_id(self.endpoint, item), item)
        return list(unique.values()), state.dump()
