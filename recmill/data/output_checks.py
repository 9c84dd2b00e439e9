"""Great-expectations checks on a recommendations frame before it is published.

``check_recommendations`` checks a frame shaped like the ``recommendations`` table (one row
per recommendation: user_id, item_id, rank, score, any other columns) and, under its own
name, ``recommendations_challenger``. A failure stops the publish; the summary names the
table, the column and the rows or users at fault, with example rows.

The checks, where ``users`` are the users the lists were made for, ``had[u]`` the items
user u already has (given when those are left out) and ``n_items`` the catalogue size:

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

Per-row flags (unknown user, seen item, rising score) and per-user figures (rows,
expected rows, ranks in order) are computed in pandas first; great-expectations then
evaluates every check, on the frame and on a derived frame with one row per user, and
each failure is reported by its plain-words message. Rows are named by position in the
frame ("row 7" is ``recs.iloc[7]``), users by their id ("user u2").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.config import ValidationConfig
from recmill.data.validation import Failure, ValidationReport, _context, _expect, write_report
from recmill.errors import ValidationFailed

RANK = "rank"
SCORE = "score"
REQUIRED = (S.USER_ID, S.ITEM_ID, RANK, SCORE)
# GE 1.x names pandas' nullable dtypes by class ("Int32Dtype"); a bare "Int32" never matches.
INTEGER_TYPES = ["int64", "int32", "int16", "int8", "Int64Dtype", "Int32Dtype", "Int16Dtype", "Int8Dtype"]
EXAMPLE_ROWS = ValidationConfig.model_fields["example_rows"].default
# Flag columns of the copies GE checks; the frame itself is never changed.
LISTED = "_user_listed"
SEEN = "_seen"
RISES = "_score_rises"
RANKS_OK = "_ranks_ok"
# Per-user frame columns beside user_id (and RANKS_OK).
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


def _row_flags(recs: pd.DataFrame, users: pd.Index, had: dict[str, set[str]] | None) -> pd.DataFrame:
    """recs with the per-row flags its checks need."""
    flags = {LISTED: recs[S.USER_ID].isin(users) | recs[S.USER_ID].isna()}
    if had is not None:
        flags[SEEN] = [item in had.get(user, ()) for user, item in zip(recs[S.USER_ID], recs[S.ITEM_ID])]
    if pd.api.types.is_numeric_dtype(recs[RANK]) and pd.api.types.is_numeric_dtype(recs[SCORE]):
        flags[RISES] = _score_rises(recs)
    return recs.assign(**flags)


def _score_rises(recs: pd.DataFrame) -> np.ndarray:
    """True where a row's score is above that of the same user's row one rank before it."""
    user, _ = pd.factorize(recs[S.USER_ID])  # a missing user_id is -1
    order = np.lexsort((recs[RANK].to_numpy(float, na_value=np.nan), user))
    user, score = user[order], recs[SCORE].to_numpy(float, na_value=np.nan)[order]
    rises = np.zeros(len(recs), dtype=bool)
    rises[order[1:]] = (user[1:] == user[:-1]) & (user[1:] >= 0) & (score[1:] > score[:-1])
    return rises


def _per_user(recs: pd.DataFrame, users: pd.Index, had: dict[str, set[str]] | None, k: int, n_items: int) -> pd.DataFrame:
    """One row per user: rows they have, rows they should have, and whether ranks run 1..n."""
    ranks = recs[RANK].groupby(recs[S.USER_ID], sort=False)
    rows = ranks.size().reindex(users, fill_value=0).to_numpy()
    owned = np.array([len(had.get(u, ())) for u in users], dtype=int) if had is not None else 0
    out = pd.DataFrame({S.USER_ID: users, ROWS: rows, EXPECTED: np.clip(np.minimum(k, n_items - owned), 0, None)})
    if pd.api.types.is_numeric_dtype(recs[RANK]):
        # n rows whose ranks hold n distinct values from 1 to n are exactly 1..n
        lo, hi, distinct = (ranks.agg(f).reindex(users).to_numpy() for f in ("min", "max", "nunique"))
        out[RANKS_OK] = (rows == 0) | ((lo == 1) & (hi == rows) & (distinct == rows))
    return out


def _row_suite(checked: pd.DataFrame) -> list:
    out = [_expect("ExpectColumnToExist", f"column '{c}' is missing", column=c) for c in REQUIRED]
    if not set(REQUIRED) <= set(checked.columns):
        return out
    out += [
        _expect("ExpectColumnValuesToNotBeNull", "user_id is missing", column=S.USER_ID),
        _expect("ExpectColumnValuesToNotBeNull", "item_id is missing", column=S.ITEM_ID),
        _expect("ExpectColumnValuesToBeInSet", "user_id is not one of the users to recommend for", report_column=S.USER_ID, column=LISTED, value_set=[True]),
        _expect("ExpectCompoundColumnsToBeUnique", "item_id appears twice for the same user_id", report_column=S.ITEM_ID, column_list=[S.USER_ID, S.ITEM_ID]),
    ]
    if SEEN in checked:
        out.append(_expect("ExpectColumnValuesToBeInSet", "item_id is an item the user already has", report_column=S.ITEM_ID, column=SEEN, value_set=[False]))
    out.append(_expect("ExpectColumnValuesToBeInTypeList", f"rank must be an integer (column type is {checked[RANK].dtype})", column=RANK, type_list=INTEGER_TYPES))
    if not pd.api.types.is_numeric_dtype(checked[SCORE]):
        out.append(_expect("ExpectColumnValuesToBeInTypeList", f"score must be numeric (column type is {checked[SCORE].dtype})", column=SCORE, type_list=["float64", "float32", "Float64Dtype"]))
        return out
    out += [
        _expect("ExpectColumnValuesToNotBeNull", "score is NaN or missing", column=SCORE),
        # The largest float as bounds rejects +-inf (NaN is the not-null check's).
        _expect("ExpectColumnValuesToBeBetween", "score is infinite", column=SCORE, min_value=-sys.float_info.max, max_value=sys.float_info.max),
    ]
    if RISES in checked:
        out.append(_expect("ExpectColumnValuesToBeInSet", "score is higher than at the user's previous rank", report_column=SCORE, column=RISES, value_set=[False]))
    return out


def _user_suite(per_user: pd.DataFrame, k: int, n_items: int, had_given: bool) -> list:
    left = f"{n_items} items - items the user has" if had_given else f"{n_items} items"
    out = [
        _expect("ExpectColumnPairValuesToBeEqual", f"each user_id must have min({k}, {left}) rows", report_column=S.USER_ID, column_A=ROWS, column_B=EXPECTED),
    ]
    if RANKS_OK in per_user:
        out.append(_expect("ExpectColumnValuesToBeInSet", "rank must run 1..n within each user_id, with no gap or repeat", report_column=RANK, column=RANKS_OK, value_set=[True]))
    return out


def _validate(source, name: str, frame: pd.DataFrame, suite: list):
    import great_expectations as gx

    batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name).get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(gx.ExpectationSuite(name=name, expectations=suite), result_format={"result_format": "COMPLETE"})
    # GE groups results by column; keep suite order (messages are unique within a suite).
    order = {e.meta["message"]: i for i, e in enumerate(suite)}
    failed = sorted((r for r in result.results if not r.success), key=lambda r: order[r.expectation_config.meta["message"]])
    return result, failed


def _failure(cls, table: str, r, rows: list[str], examples: pd.DataFrame) -> Failure:
    conf, res = r.expectation_config, r.result or {}
    description = conf.meta["message"]
    if (r.exception_info or {}).get("raised_exception"):
        description += f" (could not be checked: {r.exception_info.get('exception_message')})"
    return cls(
        table=table,
        expectation=conf.type,
        column=conf.meta.get("column", conf.kwargs.get("column")),
        description=description,
        unexpected_count=res.get("unexpected_count"),
        element_count=res.get("element_count"),
        rows=rows,
        examples=examples,
    )


def _ranks_of(recs: pd.DataFrame, user: str) -> list:
    return recs.loc[recs[S.USER_ID] == user, RANK].sort_values().tolist()  # a missing rank last


def check_recommendations(
    recs: pd.DataFrame,
    k: int,
    users: list[str],
    had: dict[str, set[str]] | None,
    n_items: int,
    report_dir: Path | None = None,
    *,
    table: str = "recommendations",
    example_rows: int = EXAMPLE_ROWS,
) -> OutputCheckResult:
    """Run the checks on ``recs``; write ``report_dir/<table>/`` (validation_result.json,
    summary.txt) when report_dir is given. Never raises on a failed check: see raise_if_failed.
    """
    recs = recs.reset_index(drop=True)  # positional index: GE's failing rows are row numbers
    users = pd.Index(pd.unique(pd.Series(list(users), dtype=object)))
    complete = set(REQUIRED) <= set(recs.columns)
    checked = _row_flags(recs, users, had) if complete else recs
    shown = [c for c in REQUIRED if c in recs]

    source = _context().data_sources.add_pandas("recmill")
    result, failed = _validate(source, table, checked, _row_suite(checked))
    report = OutputCheckResult(success=bool(result.success), failures=[], results={table: result.to_json_dict()})
    for r in failed:
        index = list((r.result or {}).get("unexpected_index_list") or [])
        report.failures.append(_failure(Failure, table, r, [f"row {i}" for i in index], recs.loc[index[:example_rows], shown]))
    evaluated, n_failed = len(result.results), len(failed)

    if complete:
        per_user = _per_user(recs, users, had, k, n_items)
        name = f"{table} per user"
        result, failed = _validate(source, name, per_user, _user_suite(per_user, k, n_items, had is not None))
        report.results[name] = result.to_json_dict()
        report.success = report.success and bool(result.success)
        for r in failed:
            index = list((r.result or {}).get("unexpected_index_list") or [])
            examples = per_user.loc[index[:example_rows], [S.USER_ID, ROWS, EXPECTED]]
            examples["ranks"] = [_ranks_of(recs, u) for u in examples[S.USER_ID]]
            report.failures.append(_failure(UserFailure, table, r, [f"user {u}" for u in per_user[S.USER_ID].iloc[index]], examples))
        evaluated, n_failed = evaluated + len(result.results), n_failed + len(failed)

    report.counts[table] = (evaluated, n_failed, None)
    if report_dir is not None:
        report.path = write_report(report, Path(report_dir) / table)
    return report


def raise_if_failed(result: OutputCheckResult) -> None:
    """Raise ValidationFailed with the summary (and the report's path) when a check failed."""
    if not result.success:
        raise ValidationFailed(result.summary(), result.path)
