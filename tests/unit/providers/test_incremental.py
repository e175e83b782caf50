"""The "nothing new" rule of incremental paging, and what the adapters remember."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finsync.providers.incremental import KnownItems, fingerprint
from finsync.providers.trading212.history import EndpointState

pytestmark = pytest.mark.unit


def test_fingerprint_changes_with_any_content_and_ignores_key_order() -> None:
    order = {"order": {"id": 7, "status": "NEW"}, "fill": None}
    filled = {"order": {"id": 7, "status": "FILLED"}, "fill": {"price": Decimal("10.5")}}
    assert fingerprint(order) != fingerprint(filled)
    assert fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
    assert len(fingerprint(order)) == 12


def test_a_page_holds_nothing_new_only_when_every_id_is_known_with_the_same_content() -> None:
    known = KnownItems({"1": "aa", "2": "bb"})
    assert known.nothing_new([("1", "aa"), ("2", "bb")])
    assert not known.nothing_new([("1", "aa"), ("3", "cc")])  # an unknown id
    assert not known.nothing_new([("1", "aa"), ("2", "zz")])  # a known id whose content changed
    assert not known.nothing_new([])  # an empty page proves nothing


def test_what_is_remembered_is_the_top_of_the_listing_then_older_entries_up_to_a_cap() -> None:
    known = KnownItems({"1": "aa", "2": "bb", "3": "cc"})
    after = known.after([("9", "99"), ("2", "b2")], cap=3)
    assert list(after.items()) == [("9", "99"), ("2", "b2"), ("1", "aa")]


@pytest.mark.parametrize(
    "stored",
    [None, "x", {"newest": "2025-10-01T00:00:00+00:00", "recent": {"1": "2025-10-01"}}, {"known": {}}],
)
def test_unreadable_or_old_trading212_state_means_read_everything(stored: object) -> None:
    assert EndpointState.load(stored) is None


def test_unreadable_known_items_are_nothing_known() -> None:
    assert KnownItems.load(None).entries == {}
    assert KnownItems.load(["1"]).entries == {}
    assert KnownItems.load({"1": "aa", "2": 3}).entries == {"1": "aa"}


def test_trading212_state_round_trips() -> None:
    state = EndpointState(KnownItems({"1": "aa"}), 1_760_000_000.0, "/api/v0/equity/history/orders?cursor=5")
    again = EndpointState.load(state.dump())
    assert again is not None
    assert (again.known.entries, again.full_due, again.resume) == ({"1": "aa"}, 1_760_000_000.0, state.resume)
