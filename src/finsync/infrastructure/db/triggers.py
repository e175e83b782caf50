"""DDL shared by the derived tables PostgreSQL keeps in step with their sources (cash flow
sums, holding value moves): statement-level triggers that see the statement's rows."""

from __future__ import annotations

EVENTS = ("insert", "update", "delete")
_ROWS = {
    "insert": "NEW TABLE AS new_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
}


def statement_triggers(table: str, name: str, function: str) -> list[str]:
    """``{table}_{name}_{event}`` for each event: ``function`` runs once per statement, the
    rows it wrote as the transition tables ``new_rows`` / ``old_rows``."""
    return [
        f"CREATE TRIGGER {table}_{name}_{event} AFTER {event.upper()} ON {table}"
        f" REFERENCING {_ROWS[event]} FOR EACH STATEMENT EXECUTE FUNCTION {function}"
        for event in EVENTS
    ]
