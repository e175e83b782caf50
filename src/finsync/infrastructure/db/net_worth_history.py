"""Net worth history on PostgreSQL in one statement: every point's total, already converted
and revalued, comes back as one array.

Why: at ten years of daily points the earlier design (FX rates built in Python and sent as
arrays of ~7,000 Decimals, two queries, recorded holdings revalued in a Python loop, a result
row per point) spent more time moving and converting values than computing them.

One trick serves balances, rates and holdings alike: a running sum of changes.

- Balances: ``net_worth_deltas`` holds per currency and day the move of the sum of
  carried-forward balances, so its running sum at a point is that currency's total there.
- Euro fixings: each fixing minus the currency's previous one, summed up to a point, is
  exactly the last fixing on or before the point (``numeric`` adds exactly); no sum yet
  means no fixing yet. A cross rate is ``target/EUR ÷ currency/EUR`` rounded half-even to
  10 places, exactly (an integer division and its remainder), as ``RateBook`` rounds.
- Recorded holdings: a position's value moves by ``quantity * (close - previous close)`` at
  each close inside its span, starts at ``quantity * its last close`` and leaves at its end;
  per account and close currency the running sum is the positions' value at every point.
  Running counts of open positions and of positions without a close yet say whether a point
  can be revalued (as ``application.net_worth._revalue`` decides it). Those moves are stored
  per account, currency and day (``holding_value_deltas``, kept by triggers: ``holding_values``);
  only an account holding an instrument whose last close up to ``end`` is quoted in another
  currency than its latest close (the stored rows' key) is revalued from the closes here.

Every row (delta, fixing, snapshot, close) goes to the *bucket* of the first point on or
after its day; the per-currency columns are pivoted (the currencies are read first and
bound as parameters), so the running sums are one window pass over the points.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from finsync.domain.analytics_ports import HistoryPoints
from finsync.domain.market import EUR
from finsync.domain.worth import LIABILITY_TYPES

# The currencies met: the stored deltas' (loose index scan: a few probes, not a scan of every
# delta), each recorded instrument's latest close's, and the revalued accounts' own; and the
# accounts with recorded holdings.
_PREPARE = """
WITH RECURSIVE c AS (
  SELECT (SELECT min(currency) FROM net_worth_deltas WHERE user_id = :user_id) AS cur
  UNION ALL
  SELECT (SELECT min(currency) FROM net_worth_deltas WHERE user_id = :user_id AND currency > c.cur)
  FROM c WHERE c.cur IS NOT NULL)
SELECT 'delta', cur, CAST(NULL AS uuid) FROM c WHERE cur IS NOT NULL
UNION ALL
SELECT DISTINCT 'close', (SELECT p.currency FROM prices p WHERE p.instrument_id = i.id AND p.day <= :end
                          ORDER BY p.day DESC LIMIT 1), CAST(NULL AS uuid)
FROM holding_history h JOIN instruments i ON i.key = h.instrument_key WHERE h.user_id = :user_id
UNION ALL
SELECT 'account', a.currency, a.id FROM accounts a
WHERE a.user_id = :user_id AND a.id IN (SELECT account_id FROM holding_history WHERE user_id = :user_id)
"""


def _bucket(daily: bool) -> str:
    """SQL: the 1-based index of the first point on or after the day ``{x}`` (n + 1 after the last)."""
    if daily:  # points are every day from :start: plain arithmetic
        return "LEAST(GREATEST(({x}) - CAST(:start AS date), 0) + 1, CAST(:n AS int) + 1)"
    return "(width_bucket(({x}) - 1, CAST(:points AS date[])) + 1)"


def history_sql(currencies: Sequence[str], target: str, daily: bool, count: int) -> str:
    """The statement for these currencies (``:c0``, ``:c1``…; ``target`` among them) and
    ``count`` points."""
    b = _bucket(daily)
    n = "CAST(:n AS int)"
    # The number of points is written into the statement: asyncpg prepares statements, and a
    # generic plan would guess 1,000 rows for a series whose length is a parameter.
    series = f"generate_series(1, {int(count)})"
    cols = range(len(currencies))
    t = currencies.index(target)
    which = "CASE currency " + " ".join(f"WHEN :c{j} THEN {j}" for j in cols) + " END"
    pivot = ", ".join(
        f"SUM(bal) FILTER (WHERE j = {j}) AS b{j}, SUM(fx) FILTER (WHERE j = {j}) AS f{j}" for j in cols
    )
    running = ", ".join(
        f"COALESCE(SUM(pv.b{j}) OVER w, 0) AS a{j}, SUM(pv.f{j}) OVER w AS x{j}" for j in cols
    )

    # Cross rates, rounded half-even to 10 places exactly: t = the truncated quotient of
    # q x 10^10 by b (target/EUR and currency/EUR), plus one when twice the remainder passes b
    # or ties on an odd t. (A first stage computes t once: a subquery with OFFSET 0 is not
    # pulled up into the next one, which would evaluate the division three times.)
    others = [j for j in cols if j != t]
    quotients = "".join(
        f", {num} AS n{j}, {den} AS d{j}, div({num}, {den}) AS t{j}"
        for j in others
        for num, den in [
            (
                "10000000000" if target == EUR else f"x{t} * 10000000000",
                "1" if currencies[j] == EUR else f"x{j}",
            )
        ]
    )

    def rate(j: int) -> str:
        if j == t:
            return "1"
        twice = f"2 * (n{j} - t{j} * d{j})"
        return (
            f"CASE WHEN {twice} > d{j} OR ({twice} = d{j} AND mod(t{j}, 2) = 1)"
            f" THEN t{j} + 1 ELSE t{j} END * 0.0000000001"
        )

    rates = ", ".join(f"a{j}, {rate(j)} AS r{j}" for j in cols)
    total = " + ".join(f"COALESCE(CASE WHEN pt.a{j} <> 0 THEN pt.a{j} * pt.r{j} END, 0)" for j in cols)
    missing = ", ".join(f"CASE WHEN pt.a{j} <> 0 AND pt.r{j} IS NULL THEN :c{j} END" for j in cols)

    def rate_of(column: str) -> str:
        whens = " ".join(f"WHEN :c{j} THEN pt.r{j}" for j in cols)
        return f"(CASE {column} {whens} END)"

    day = "CAST(s.taken_at AT TIME ZONE 'UTC' AS date)"
    # The closes that move a position: every one for daily points; else the last of each
    # point's bucket (its changes within a bucket would add up to the same thing).
    closes = (
        f"(SELECT c.instrument_id AS iid, c.day, {b.format(x='c.day')} AS k, c.close FROM prices c"  # noqa: S608
        " WHERE c.instrument_id IN (SELECT iid FROM lv) AND c.day <= :end) c"
    )
    if not daily:
        closes = f"(SELECT DISTINCT ON (iid, k) * FROM {closes} ORDER BY iid, k, day DESC) c"  # noqa: S608

    def day_of(idx: str) -> str:
        """SQL: the date of point ``idx``."""
        return f"CAST(:start AS date) + ({idx} - 1)" if daily else f"(CAST(:points AS date[]))[{idx}]"

    return f"""
WITH
ev AS (
  SELECT {b.format(x="day")} AS idx, {which} AS j, delta AS bal, CAST(NULL AS numeric) AS fx
  FROM net_worth_deltas WHERE user_id = :user_id AND day <= :end
  UNION ALL
  SELECT {b.format(x="day")}, {which}, NULL,
    rate - COALESCE(lag(rate) OVER (PARTITION BY currency ORDER BY day), 0)
  FROM fx_rates WHERE currency IN :curs AND day <= :end),
pv AS (SELECT idx, {pivot} FROM ev GROUP BY idx),
run AS (
  SELECT g.idx, {running}
  FROM {series} AS g(idx) LEFT JOIN pv ON pv.idx = g.idx WINDOW w AS (ORDER BY g.idx)),
qt AS (SELECT run.*{quotients} FROM run OFFSET 0),
pt AS (SELECT idx, {rates} FROM qt),
s AS MATERIALIZED (
  SELECT h.account_id, h.quantity, h.valid_from, i.id AS iid, q.currency, z.currency AS latest,
    {b.format(x="h.valid_from")} AS lo,
    CASE WHEN h.valid_to IS NULL THEN {n} + 1 ELSE {b.format(x="h.valid_to")} END AS hi
  FROM holding_history h LEFT JOIN instruments i ON i.key = h.instrument_key
  LEFT JOIN LATERAL (SELECT c.currency FROM prices c WHERE c.instrument_id = i.id AND c.day <= :end
    ORDER BY c.day DESC LIMIT 1) q ON true
  LEFT JOIN LATERAL (SELECT c.currency FROM prices c WHERE c.instrument_id = i.id
    ORDER BY c.day DESC LIMIT 1) z ON true
  WHERE h.user_id = :user_id),
stale AS (SELECT DISTINCT account_id FROM s WHERE COALESCE(currency, '') <> COALESCE(latest, '')),
cut AS (SELECT id, {b.format(x="day")} AS idx
  FROM unnest(CAST(:cut_ids AS uuid[]), CAST(:cut_days AS date[])) AS u(id, day)),
acc AS (
  SELECT a.id, a.currency, a.type IN :liability AS liability, MIN(s.lo) AS lo,
    COALESCE(MIN(cut.idx), {n} + 1) AS hi,
    CAST(GREATEST(MIN(s.valid_from), CAST(:start AS date)) AS timestamp) AT TIME ZONE 'UTC' AS floor
  FROM accounts a JOIN s ON s.account_id = a.id LEFT JOIN cut ON cut.id = a.id
  WHERE a.user_id = :user_id GROUP BY a.id, a.currency, a.type),
sn AS (
  SELECT DISTINCT ON (s.account_id, k) s.account_id, {b.format(x=day)} AS k, s.balance, s.cash_value
  FROM acc JOIN balance_snapshots s ON s.account_id = acc.id
  WHERE acc.lo < acc.hi AND s.user_id = :user_id AND s.balance IS NOT NULL AND s.taken_at < :limit
    AND s.taken_at >= COALESCE((SELECT max(p.taken_at) FROM balance_snapshots p WHERE p.account_id = acc.id
      AND p.balance IS NOT NULL AND p.taken_at < acc.floor), acc.floor)
  ORDER BY s.account_id, k, s.taken_at DESC, s.id DESC),
cv AS (
  SELECT acc.id, g.idx, acc.currency, acc.liability, sc.balance, sc.cash_value
  FROM (SELECT sn.*, COALESCE(lead(k) OVER (PARTITION BY account_id ORDER BY k), {n} + 1) AS next
        FROM sn) sc
  JOIN acc ON acc.id = sc.account_id
  CROSS JOIN LATERAL generate_series(GREATEST(sc.k, acc.lo), LEAST(sc.next, acc.hi) - 1) AS g(idx)),
sp AS (
  SELECT s.account_id, COALESCE(s.currency, '') AS currency, s.quantity, s.iid, s.lo, s.hi,
    o.close AS opening, e.close AS closing
  FROM s
  LEFT JOIN LATERAL (SELECT c.close FROM prices c WHERE c.instrument_id = s.iid AND c.day <= {day_of("s.lo")}
    ORDER BY c.day DESC LIMIT 1) o ON s.lo <= {n}
  LEFT JOIN LATERAL (SELECT c.close FROM prices c
    WHERE c.instrument_id = s.iid AND c.day <= {day_of("s.hi - 1")}
    ORDER BY c.day DESC LIMIT 1) e ON s.hi <= {n}
  WHERE s.lo < s.hi),
lv AS (SELECT * FROM sp WHERE account_id IN (SELECT account_id FROM stale)),
ch AS (
  SELECT iid, k, close - COALESCE(lag(close) OVER (PARTITION BY iid ORDER BY day), 0) AS change
  FROM {closes}),
pe AS (
  SELECT account_id, currency, lo AS idx, quantity * opening AS v, 1 AS held,
    CASE WHEN opening IS NULL THEN 1 ELSE 0 END AS unpriced FROM lv
  UNION ALL
  SELECT lv.account_id, lv.currency, ch.k, lv.quantity * ch.change, 0, 0
  FROM lv JOIN ch ON ch.iid = lv.iid AND ch.k > lv.lo AND ch.k < lv.hi
  UNION ALL
  SELECT lv.account_id, lv.currency, f.k, NULL, 0, -1
  FROM lv CROSS JOIN LATERAL (SELECT {b.format(x="c.day")} AS k FROM prices c
    WHERE c.instrument_id = lv.iid AND c.day <= :end ORDER BY c.day LIMIT 1) f
  WHERE lv.opening IS NULL AND f.k > lv.lo AND f.k < lv.hi
  UNION ALL
  SELECT account_id, currency, hi, -quantity * closing, -1, CASE WHEN closing IS NULL THEN -1 ELSE 0 END
  FROM lv WHERE hi <= {n}
  UNION ALL
  SELECT d.account_id, d.currency, {b.format(x="d.day")}, d.value, d.held, d.unpriced
  FROM holding_value_deltas d
  WHERE d.account_id IN (SELECT account_id FROM s EXCEPT SELECT account_id FROM stale)
    AND d.user_id = :user_id AND d.day <= :end),
pw AS (SELECT account_id, currency, idx, SUM(v) AS v, SUM(held) AS held, SUM(unpriced) AS unpriced
  FROM pe GROUP BY 1, 2, 3),
pr AS (
  SELECT g.account_id, g.currency, g.idx, COALESCE(SUM(pw.v) OVER w, 0) AS value,
    SUM(pw.held) OVER w AS held, SUM(pw.unpriced) OVER w AS unpriced
  FROM (SELECT e.account_id, e.currency, i.idx
        FROM (SELECT account_id, currency, MIN(lo) AS lo FROM sp GROUP BY 1, 2) e
        CROSS JOIN LATERAL generate_series(e.lo, {n}) AS i(idx)) g
  LEFT JOIN pw ON pw.account_id = g.account_id AND pw.currency = g.currency AND pw.idx = g.idx
  WINDOW w AS (PARTITION BY g.account_id, g.currency ORDER BY g.idx)),
pos AS (
  SELECT pr.account_id, pr.idx, SUM(pr.value * {rate_of("pr.currency")}) AS value,
    bool_and(pr.held = 0 OR (pr.unpriced = 0 AND {rate_of("pr.currency")} IS NOT NULL)) AS priced
  FROM pr JOIN pt ON pt.idx = pr.idx GROUP BY 1, 2),
adj AS (
  SELECT cv.idx, SUM((cv.cash_value - CASE WHEN cv.liability THEN -abs(cv.balance) ELSE cv.balance END)
    * {rate_of("cv.currency")} + COALESCE(pos.value, 0)) AS value
  FROM cv JOIN pt ON pt.idx = cv.idx LEFT JOIN pos ON pos.account_id = cv.id AND pos.idx = cv.idx
  WHERE cv.cash_value IS NOT NULL AND {rate_of("cv.currency")} IS NOT NULL AND pos.priced IS NOT false
  GROUP BY cv.idx)
SELECT array_agg({total} + COALESCE(adj.value, 0) ORDER BY pt.idx),
  string_agg(NULLIF(concat_ws(',', {missing}), ''), ',')
FROM pt LEFT JOIN adj ON adj.idx = pt.idx
"""  # noqa: S608 - generated from column numbers only; every value is bound


async def history_points(
    session: AsyncSession,
    user_id: UUID,
    start: date,
    end: date,
    points: Sequence[date],
    daily: bool,
    target: str,
    cuts: dict[UUID, date],
) -> HistoryPoints:
    """Net worth at each point (sorted period ends, the last one ``end``; ``daily``: every day
    from ``start``), unrounded, in ``target``; a shadowed account is revalued only before its cut."""
    found = (await session.execute(text(_PREPARE), {"user_id": user_id, "end": end})).all()
    met = {c for kind, c, _ in found if kind != "account" and c is not None}
    revalued = sorted({a for kind, _, a in found if kind == "account"}, key=str)
    currencies = sorted({c for _, c, _ in found if c is not None} | {target})
    sql = history_sql(currencies, target, daily, len(points))
    stmt = text(sql).bindparams(bindparam("curs", expanding=True), bindparam("liability", expanding=True))
    params: dict[str, Any] = {
        "user_id": user_id, "start": start, "end": end, "n": len(points),
        "curs": currencies, "liability": sorted(t.value for t in LIABILITY_TYPES),
        "cut_ids": list(cuts), "cut_days": list(cuts.values()),
        "limit": datetime.combine(end + timedelta(days=1), time(), UTC),
    }  # fmt: skip
    params |= {f"c{j}": c for j, c in enumerate(currencies)}
    if not daily:
        params["points"] = list(points)
    # One row of two arrays: thousands of result rows cost more to read than to compute.
    totals, left_out = (await session.execute(stmt, params)).one()
    return HistoryPoints(list(totals), set(left_out.split(",")) if left_out else set(), met, revalued)
