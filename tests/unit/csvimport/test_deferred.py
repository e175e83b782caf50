"""Rows with an id are keyed from their raw cells and mapped only when the writer builds them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finsync.providers.csv import CsvFormat, CsvNoRows
from finsync.providers.csv.reader import rows_of

HEADER = b"Date,Description,Amount,Currency,Transaction ID\n"
GOOD_BAD_GOOD = HEADER + (
    b"2024-01-05,Coffee,-3.20,EUR,a\n2024-01-06,Broken,abc,EUR,b\n2024-01-07,Salary,2500.00,EUR,c\n"
)


def test_keyed_rows_are_mapped_only_when_built() -> None:
    parsed = CsvFormat().read(GOOD_BAD_GOOD)
    (statement,) = parsed.statements
    (group,) = statement.deferred
    assert [pid for pid, _ in group.keys] == ["a", "b", "c"]  # named before any is mapped
    assert parsed.warnings == []
    built = list(group.build([0, 2]))  # what a re-import finds new: the bad row is never read
    assert [(t.provider_transaction_id, t.amount) for t in built] == [
        ("a", Decimal("-3.20")),
        ("c", Decimal("2500.00")),
    ]
    assert [t.fingerprint for t in built] == [group.keys[0][1], group.keys[2][1]]
    assert built[1].raw == {
        "Date": "2024-01-07", "Description": "Salary", "Amount": "2500.00", "Currency": "EUR",
        "Transaction ID": "c",
    }  # fmt: skip
    assert parsed.warnings == []
    assert list(group.build([1])) == []  # built, it is reported by its line
    assert parsed.warnings == ["line 3: amount 'abc' is not a number; the row was not imported"]


def test_keys_and_rows_match_the_eager_reading() -> None:
    """Ids and fingerprints do not depend on whether a row was mapped before or after keying."""
    (statement,) = CsvFormat().read(GOOD_BAD_GOOD).statements
    (preview,) = [CsvFormat().preview(GOOD_BAD_GOOD)]
    assert [r["id"] for r in preview["rows"]] == ["a", "c"]
    assert [t.provider_transaction_id for t in rows_of(statement)] == ["a", "c"]


def test_a_file_whose_rows_all_fail_is_refused_at_read() -> None:
    bad = HEADER + b"soon,Coffee,-3.20,EUR,a\n2024-01-06,Broken,abc,EUR,b\n"
    with pytest.raises(CsvNoRows, match="line 2"):
        CsvFormat().read(bad)


def test_a_cell_holding_the_join_character_is_kept_intact() -> None:
    data = HEADER + b"2024-01-05,Coffee,-3.20,EUR,a\n2024-01-06,Tea\x1fand cake,-4.10,EUR,b\n"
    (statement,) = CsvFormat().read(data).statements
    assert [t.description for t in rows_of(statement)] == ["Coffee", "Tea\x1fand cake"]


def test_a_reused_id_keeps_each_different_row_and_drops_exact_repeats() -> None:
    data = HEADER + (
        b"2024-01-05,Coffee,-3.20,EUR,a\n2024-01-06,Tea,-2.00,EUR,a\n2024-01-06,Tea,-2.00,EUR,a\n"
    )
    parsed = CsvFormat().read(data)
    (statement,) = parsed.statements
    assert [(t.provider_transaction_id, t.description) for t in rows_of(statement)] == [
        ("a", "Coffee"),
        ("a#2", "Tea"),
    ]
    assert parsed.warnings == ["id a is used for 2 different rows; kept each of them"]


def test_rows_in_two_currencies_are_keyed_into_two_accounts() -> None:
    data = HEADER + b"2024-01-05,Coffee,-3.20,EUR,a\n2024-01-06,Lunch,-12.00,GBP,b\n2024-01-07,Tea,-2,EUR,c\n"
    statements = CsvFormat().read(data).statements
    assert {s.account.currency: [t.provider_transaction_id for t in rows_of(s)] for s in statements} == {
        "EUR": ["a", "c"],
        "GBP": ["b"],
    }
