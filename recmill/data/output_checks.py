"""Checks on a recommendations frame before it is published.

``check_recommendations`` checks a frame shaped like the ``recommendations`` table (one row
per recommendation: user_id, item_id, rank, score, any other columns) and, under its own
name, ``recommendations_challenger``. A failure stops the publish; the summary names the
table, the column and the rows or users at fault, with example rows.

The checks, where ``users`` are the users the lists were made for, ``had`` the distinct
(user_id, item_id) pairs of the items users already have (given when those are left out;
had[u]: user u's items) and ``n_items`` the catalogue size:

- columns: user_id, item_id, rank and score exist (the checks below need all four);
- ids: user_id and item_id are not null, and every user_id is one of ``users``;
- duplicates: no (user_id, item_id) pair appears twice (every copy is reported);
- seen, only when ``had`` is given: no row recommends an item in had[user_id];
- scores: score is numeric, not NaN and not +-inf; and, taking one user's rows in rank
  order, no score is higher than the score of the row before it (ties are fine);
- ranks: rank is an integer column, and each user's ranks are exactly 1, 2, ..., n for
  their n rows (no gap, no repeat, starting at 1);
- counts: each user in ``users`` has exactly min(k, n_items - len(had[user])) rows
  (min(k, n_items) without ``had``; never below 0): k, or fewer only when fewer items
  are left to recommend. A user with no rows at all fails here too.

The types are decided from the pandas dtypes: rank must have a signed integer dtype
(numpy's or pandas' nullable one), score a numeric one; in an object column each value
is checked (a numpy integer or float scalar passes). The frame's four columns, ``users``
and the (user, item) pairs of ``had`` are registered on a DuckDB connection, and the
per-row flags (unknown user, repeated pair, seen item, rising score) and per-user figures
(rows, expected rows, ranks in order) are computed there in SQL: only counts, the first
failing rows (ROW_LABELS of them; the counts are exact) and a few example rows come back.
Great-expectations then judges the counts, as in ``recmill.data.validation``: one suite
on the rows and one on the users, each over a one-row frame of failing counts. Each
failure is reported by its plain-words message. Rows are named by position in the frame
("row 7" is ``recs.iloc[7]``), users by their id ("user u2").
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.config import ValidationConfig
from recmill.data.validation import ROW, Check, Failure, ValidationReport, _columns, _context, _exists, _failing_rows, _judge, _measure, write_report
from recmill.errors import ValidationFailed
from recmill.sql import connect, identifier

RANK = "rank"
SCORE = "score"
REQUIRED = (S.USER_ID, S.ITEM_ID, RANK, SCORE)
# The integer dtypes great-expectations' type list accepted (unsigned ones never did), and
# the scalars it accepted value by value in an object column.
INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "Int64", "Int32", "Int16", "Int8")
INTEGER_SCALARS = (np.int64, np.int32, np.int16, np.int8)
FLOAT_SCALARS = (np.float64, np.float32)
EXAMPLE_ROWS = ValidationConfig.model_fields["example_rows"].default
IN_SET = "expect_column_values_to_be_in_set"
IN_TYPES = "expect_column_values_to_be_in_type_list"
# Columns of the per-user relation beside user_id.
ROWS = "rows"
EXPECTED = "expected"


@dataclass
class UserFailure(Failure):
    """A failed per-user check: it counts users, not rows."""

    def headline(self) -> str:
        tail = super().headline()[len(self.description) :]
        return self.description + tail.replace(" rows fail", " users fail", 1)


@dataclass
class OutputCheckResult(ValidationReport):
    path: Path | None = None  # validation_result.json, when written


def _wrong_values(column: pd.Series, scalars: tuple) -> np.ndarray:
    """Per value of an object column: present and not one of ``scalars``."""
    of_type = np.fromiter((isinstance(v, scalars) for v in column), bool, len(column))
    return column.notna().to_numpy() & ~of_type


def _type_check(recs: pd.DataFrame, column: str, sentence: str, accepted: tuple, scalars: tuple, flags: dict) -> Check:
    """The dtype decides, except in an object column, where each value does: those get a
    flag column (in ``flags``) for SQL to count."""
    dtype = recs[column].dtype
    key = f"{column}_wrong_type"
    message = f"{sentence} (column type is {dtype})"
    if pd.api.types.is_object_dtype(dtype):
        flags[key] = _wrong_values(recs[column], scalars)
        return Check(key, IN_TYPES, message, column, failing=key)
    return Check(key, IN_TYPES, message, column, broken=str(dtype) not in accepted)


def _row_checks(recs: pd.DataFrame, had_given: bool, flags: dict) -> list[Check]:
    """The checks on the relation ``recs``; a type check looking at values adds to ``flags``."""
    out = [_exists(recs.columns, c) for c in REQUIRED]
    if any(c.broken for c in out):
        return out
    user, item, score = map(identifier, (S.USER_ID, S.ITEM_ID, SCORE))
    out += [Check(f"{c}_missing", "expect_column_values_to_not_be_null", f"{c} is missing", c, failing=f"{identifier(c)} IS NULL") for c in (S.USER_ID, S.ITEM_ID)]
    out += [
        Check("user_unlisted", IN_SET, "user_id is not one of the users to recommend for", S.USER_ID, failing="_unlisted"),
        # Every copy of a pair fails; a row missing both ids is not a pair.
        Check("pair_repeated", "expect_compound_columns_to_be_unique", "item_id appears twice for the same user_id", S.ITEM_ID,
              failing=f"_repeated AND NOT ({user} IS NULL AND {item} IS NULL)"),
    ]
    if had_given:
        out.append(Check("item_seen", IN_SET, "item_id is an item the user already has", S.ITEM_ID, failing="_seen"))
    out.append(_type_check(recs, RANK, "rank must be an integer", INTEGER_DTYPES, INTEGER_SCALARS, flags))
    if not pd.api.types.is_numeric_dtype(recs[SCORE]):
        out.append(_type_check(recs, SCORE, "score must be numeric", (), FLOAT_SCALARS, flags))
        return out
    out += [
        Check("score_missing", "expect_column_values_to_not_be_null", "score is NaN or missing", SCORE, failing=f"{score} IS NULL"),
        Check("score_infinite", "expect_column_values_to_be_between", "score is infinite", SCORE, failing=f"isinf({score})"),
    ]
    if pd.api.types.is_numeric_dtype(recs[RANK]):
        out.append(Check("score_rises", IN_SET, "score is higher than at the user's previous rank", SCORE, failing=f"{score} > _previous"))
    return out


def _user_checks(k: int, n_items: int, had_given: bool, ranked: bool) -> list[Check]:
    """The checks on the relation ``per_user``."""
    left = f"{n_items} items - items the user has" if had_given else f"{n_items} items"
    out = [Check("rows_expected", "expect_column_pair_values_to_be_equal", f"each user_id must have min({k}, {left}) rows", S.USER_ID, failing=f"{ROWS} <> {EXPECTED}")]
    if ranked:
        # n ranks holding n distinct values from 1 to n are exactly 1..n; a missing rank fails.
        ok = f"coalesce(lo = 1 AND hi = {ROWS} AND distinct_ranks = {ROWS}, FALSE)"
        out.append(Check("ranks_not_1_to_n", IN_SET, "rank must run 1..n within each user_id, with no gap or repeat", RANK, failing=f"{ROWS} > 0 AND NOT {ok}"))
    return out


def _register(con, recs: pd.DataFrame, users: pd.Index, had: pd.DataFrame | None, expected: np.ndarray, flags: dict) -> None:
    """The relations ``frame`` (the checked columns, ROW and ``flags``), ``user_list``
    (user_id, expected rows, ROW: position in ``users``) and ``had`` (user_id, item_id)."""
    columns = {ROW: np.arange(len(recs)), S.USER_ID: recs[S.USER_ID].array, S.ITEM_ID: recs[S.ITEM_ID].array}
    for c in (RANK, SCORE):
        if pd.api.types.is_numeric_dtype(recs[c]):
            # One type for every numeric dtype; DuckDB reads NaN as NULL, so NaN and NA are alike.
            columns[c] = recs[c].to_numpy(float, na_value=np.nan)
    con.register("frame", pd.DataFrame({**columns, **flags}, copy=False))
    con.register("user_list", pd.DataFrame({ROW: np.arange(len(users)), S.USER_ID: users.to_numpy(object), EXPECTED: expected}))
    if had is not None:
        con.register("had", had[[S.USER_ID, S.ITEM_ID]])


def _create_views(con, had_given: bool, ranked: bool, ordered: bool) -> None:
    """``recs``: the frame's rows with their flags; ``per_user``: one row per listed user.
    ``ranked``: rank is numeric; ``ordered``: rank and score are."""
    user, item, rank, score, row = map(identifier, (S.USER_ID, S.ITEM_ID, RANK, SCORE, ROW))
    types = {name: _columns(con, name) for name in ("frame", "user_list", *(["had"] if had_given else []))}

    def equal(other: str, *cols: str) -> str:
        # Compare as text where the relations disagree on a type (ids as str against ints).
        same = [(f"f.{identifier(c)}", f"o.{identifier(c)}") if types["frame"][c] == types[other][c] else
                (f"CAST(f.{identifier(c)} AS VARCHAR)", f"CAST(o.{identifier(c)} AS VARCHAR)") for c in cols]
        return " AND ".join(f"{a} = {b}" for a, b in same)

    flags = [
        f"f.{user} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM user_list o WHERE {equal('user_list', S.USER_ID)}) AS _unlisted",
        # A row whose pair appears twice or more; missing ids count as equal.
        f"row(f.{user}, f.{item}) IN (SELECT row({user}, {item}) FROM frame GROUP BY {user}, {item} HAVING count(*) > 1) AS _repeated",
    ]
    if had_given:
        # An inner join, so that DuckDB hashes the smaller side (an EXISTS would hash all of had).
        flags.append(f"{row} IN (SELECT f.{row} FROM frame f JOIN had o ON {equal('had', S.USER_ID, S.ITEM_ID)}) AS _seen")
    if ordered:
        # Rows of a user in rank order, ties in frame order, a missing rank last.
        flags.append(f"CASE WHEN f.{user} IS NOT NULL THEN lag(f.{score}) OVER (PARTITION BY f.{user} ORDER BY f.{rank} NULLS LAST, f.{row}) END AS _previous")
    con.execute(f"CREATE TEMP VIEW recs AS SELECT f.*, {', '.join(flags)} FROM frame f")

    ranks = f", min({rank}) AS lo, max({rank}) AS hi, count(DISTINCT {rank}) AS distinct_ranks" if ranked else ""
    con.execute(
        f"CREATE TEMP VIEW per_user AS SELECT o.*, coalesce(f.{ROWS}, 0) AS {ROWS}{', f.lo, f.hi, f.distinct_ranks' if ranked else ''} "
        f"FROM user_list o LEFT JOIN (SELECT {user}, count(*) AS {ROWS}{ranks} FROM frame WHERE {user} IS NOT NULL GROUP BY {user}) f "
        f"ON {equal('user_list', S.USER_ID)}"
    )


def _judged(con, source, report: OutputCheckResult, table: str, name: str, relation: str, checks: list[Check], cls) -> list[tuple[Failure, pd.DataFrame]]:
    """Judge ``checks`` on ``relation`` as suite ``name``, add the result to ``report``; each
    failure of ``table`` comes with the first failing rows of ``relation`` (none for a column
    check), indexed by ROW."""
    measured = _measure(con, relation, checks)
    result = _judge(source, name, checks, measured)
    report.results[name] = result.to_json_dict()
    report.success = report.success and bool(result.success)
    verdict = {r.expectation_config.kwargs["column"]: r for r in result.results}
    out = []
    for check in checks:
        r = verdict[check.key]
        if r.success:
            continue
        description = check.message
        if (r.exception_info or {}).get("raised_exception"):
            description += f" (could not be checked: {r.exception_info.get('exception_message')})"
        failure = cls(table, check.expectation, check.column, description, None, None)
        rows = pd.DataFrame()
        if check.failing is not None:
            failure.element_count, failure.unexpected_count = measured[check.key]
            rows = _failing_rows(con, relation, {}, check)
        out.append((failure, rows))
    return out


def _ranks(recs: pd.DataFrame, ids) -> list[list]:
    """Each user's ranks, smallest first (a missing rank last)."""
    mine = recs.loc[recs[S.USER_ID].isin(ids).to_numpy(), [S.USER_ID, RANK]]  # one pass over the frame
    return [mine.loc[mine[S.USER_ID] == u, RANK].sort_values().tolist() for u in ids]


def check_recommendations(
    recs: pd.DataFrame,
    k: int,
    users: list[str],
    had: pd.DataFrame | None,
    n_items: int,
    report_dir: Path | None = None,
    *,
    table: str = "recommendations",
    example_rows: int = EXAMPLE_ROWS,
) -> OutputCheckResult:
    """Run the checks on ``recs``; write ``report_dir/<table>/`` (validation_result.json,
    summary.txt) when report_dir is given. Never raises on a failed check: see raise_if_failed.
    """
    users = pd.Index(pd.unique(pd.Series(list(users), dtype=object)))
    flags: dict[str, np.ndarray] = {}
    checks = _row_checks(recs, had is not None, flags)
    complete = set(REQUIRED) <= set(recs.columns)
    shown = [c for c in REQUIRED if c in recs]
    source = _context().data_sources.add_pandas("recmill")
    report = OutputCheckResult(success=True, failures=[], results={})
    con = connect()
    try:
        if complete:
            owned = had[S.USER_ID].value_counts().reindex(users, fill_value=0).to_numpy(int) if had is not None else 0
            _register(con, recs, users, had, np.clip(np.minimum(k, n_items - owned), 0, None), flags)
            ranked = pd.api.types.is_numeric_dtype(recs[RANK])
            _create_views(con, had is not None, ranked, ranked and pd.api.types.is_numeric_dtype(recs[SCORE]))
        for failure, rows in _judged(con, source, report, table, table, "recs", checks, Failure):
            failure.rows = [f"row {i}" for i in rows.index]
            shown_at = rows.index[:example_rows]
            failure.examples = recs.iloc[shown_at][shown].set_axis(shown_at)
            report.failures.append(failure)
        evaluated = len(checks)

        if complete:
            user_checks = _user_checks(k, n_items, had is not None, ranked)
            for failure, rows in _judged(con, source, report, table, f"{table} per user", "per_user", user_checks, UserFailure):
                failure.rows = [f"user {u}" for u in users[rows.index]]
                examples = rows.head(example_rows)[[ROWS, EXPECTED]]
                examples.insert(0, S.USER_ID, users[examples.index])
                examples["ranks"] = _ranks(recs, examples[S.USER_ID].tolist())
                failure.examples = examples
                report.failures.append(failure)
            evaluated += len(user_checks)
    finally:
        con.close()

    report.counts[table] = (evaluated, len(report.failures), None)
    if report_dir is not None:
        report.path = write_report(report, Path(report_dir) / table)
    return report


def raise_if_failed(result: OutputCheckResult) -> None:
    """Raise ValidationFailed with the summary (and the report's path) when a check failed."""
    if not result.success:
        raise ValidationFailed(result.summary(), result.path)
