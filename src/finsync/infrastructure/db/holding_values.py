"""Recorded holdings' value moves per account, close currency and day (``holding_value_deltas``),
kept in step by PostgreSQL triggers.

Why: revaluing ten years of positions on every history request means every close of every
held instrument (20,000 at five brokerage accounts), a window over them and a join with each
position's span. The value of an account's positions moves only on a close or at a span's
edges, so those moves are stored once and a request sums a few thousand rows.

A position's value starts at ``quantity * the last close on or before its first day``, moves
by ``quantity * (close - previous close)`` at each close inside its span and leaves at its end
(``-quantity * the last close before valid_to``); ``held`` counts open positions and
``unpriced`` those without a close yet, so their running sums say whether a day can be
revalued, exactly as ``net_worth_history`` decides it. Rows are keyed by the currency of the
instrument's latest close: a request ending before a change of quote currency finds the
currency differs and revalues that account from the closes instead (never a different figure).

The triggers recompute, in the writing statement's transaction and under a per-account
advisory lock, every account whose holdings, closes or instrument keys the statement
touched: no write path (COPY, a price refresh, a cascade) can leave the table behind.
SQLite computes history in Python and has no triggers: its table stays empty.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from finsync.infrastructure.db.triggers import EVENTS, statement_triggers

# The moves of the accounts in ``ids`` (a uuid[] expression).
_MOVES = """
WITH s AS (
  SELECT h.user_id, h.account_id, h.quantity, h.valid_from, h.valid_to, i.id AS iid,
    COALESCE((SELECT c.currency FROM prices c WHERE c.instrument_id = i.id
              ORDER BY c.day DESC LIMIT 1), '') AS currency
  FROM holding_history h LEFT JOIN instruments i ON i.key = h.instrument_key
  WHERE h.account_id = ANY({ids}) AND (h.valid_to IS NULL OR h.valid_to > h.valid_from)),
sp AS (
  SELECT s.*,
    (SELECT c.close FROM prices c WHERE c.instrument_id = s.iid AND c.day <= s.valid_from
     ORDER BY c.day DESC LIMIT 1) AS opening,
    (SELECT c.close FROM prices c WHERE c.instrument_id = s.iid AND c.day < s.valid_to
     ORDER BY c.day DESC LIMIT 1) AS closing,
    (SELECT c.day FROM prices c WHERE c.instrument_id = s.iid AND c.day > s.valid_from
     ORDER BY c.day LIMIT 1) AS first
  FROM s),
ch AS (
  SELECT c.instrument_id AS iid, c.day,
    c.close - COALESCE(lag(c.close) OVER (PARTITION BY c.instrument_id ORDER BY c.day), 0) AS change
  FROM prices c WHERE c.instrument_id IN (SELECT iid FROM s)),
pe AS (
  SELECT user_id, account_id, currency, valid_from AS day, quantity * opening AS v, 1 AS held,
    CASE WHEN opening IS NULL THEN 1 ELSE 0 END AS unpriced FROM sp
  UNION ALL
  SELECT sp.user_id, sp.account_id, sp.currency, ch.day, sp.quantity * ch.change, 0, 0
  FROM sp JOIN ch ON ch.iid = sp.iid AND ch.day > sp.valid_from
    AND (sp.valid_to IS NULL OR ch.day < sp.valid_to)
  UNION ALL
  SELECT user_id, account_id, currency, first, NULL, 0, -1 FROM sp
  WHERE opening IS NULL AND first IS NOT NULL AND (valid_to IS NULL OR first < valid_to)
  UNION ALL
  SELECT user_id, account_id, currency, valid_to, -quantity * closing, -1,
    CASE WHEN closing IS NULL THEN -1 ELSE 0 END
  FROM sp WHERE valid_to IS NOT NULL)
INSERT INTO holding_value_deltas (user_id, account_id, currency, day, value, held, unpriced)
SELECT user_id, account_id, currency, day, SUM(v), SUM(held), SUM(unpriced)
FROM pe GROUP BY user_id, account_id, currency, day
"""

_REFRESH = f"""
CREATE OR REPLACE FUNCTION holding_values_refresh(ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  a uuid;
BEGIN
  -- One writer per account at a time, in a fixed order: a second writer recomputes after the
  -- first commits, from what both wrote (and never inserts next to rows it cannot see).
  FOR a IN SELECT DISTINCT u FROM unnest(ids) AS u WHERE u IS NOT NULL ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtextextended('holding_values:' || a::text, 0));
  END LOOP;
  DELETE FROM holding_value_deltas WHERE account_id = ANY(ids);
  {_MOVES.format(ids="ids")};
END $$
"""  # noqa: S608 - fixed text


def _changed(table: str, rows: str) -> str:
    """SQL: the accounts whose holding values depend on the rows of transition table ``rows``."""
    if table == "holding_history":
        return f"SELECT account_id FROM {rows}"  # noqa: S608 - fixed names
    if table == "prices":
        return (
            "SELECT h.account_id FROM holding_history h JOIN instruments i ON i.key = h.instrument_key"  # noqa: S608
            f" WHERE i.id IN (SELECT instrument_id FROM {rows})"
        )
    return f"SELECT h.account_id FROM holding_history h WHERE h.instrument_key IN (SELECT key FROM {rows})"  # noqa: S608


TABLES = ("holding_history", "prices", "instruments")
TRIGGER_NAMES = [f"{t}_holding_values_{e}" for t in TABLES for e in EVENTS]
FUNCTION_NAMES = ["holding_values_refresh(uuid[])", *(f"{t}_holding_values()" for t in TABLES)]


def _trigger_function(table: str) -> str:
    ids = {
        "INSERT": _changed(table, "new_rows"),
        "UPDATE": f"{_changed(table, 'old_rows')} UNION {_changed(table, 'new_rows')}",
        "DELETE": _changed(table, "old_rows"),
    }
    branches = " ".join(
        f"{'IF' if k == 'INSERT' else 'ELSIF'} TG_OP = '{k}' THEN PERFORM holding_values_refresh(ARRAY({v}));"
        for k, v in ids.items()
    )
    return (
        f"CREATE OR REPLACE FUNCTION {table}_holding_values() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {branches} END IF; RETURN NULL; END $$"
    )


PG_TRIGGERS = [
    _REFRESH,
    *(_trigger_function(t) for t in TABLES),
    *(
        statement
        for t in TABLES
        for statement in statement_triggers(t, "holding_values", f"{t}_holding_values()")
    ),
]


def backfill(connection: Connection) -> None:
    """Compute every account's moves (PostgreSQL; the migration, after the triggers exist)."""
    if connection.dialect.name != "postgresql":
        return
    connection.execute(
        text("SELECT holding_values_refresh(ARRAY(SELECT DISTINCT account_id FROM holding_history))")
    )


def drop(connection: Connection) -> None:
    """Remove the triggers and functions (the migration's downgrade)."""
    if connection.dialect.name != "postgresql":
        return
    for name in TRIGGER_NAMES:
        table = next(t for t in TABLES if name.startswith(t))
        connection.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
    for function in FUNCTION_NAMES:
        connection.execute(text(f"DROP FUNCTION IF EXISTS {function}"))
