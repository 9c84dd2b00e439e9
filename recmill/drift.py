"""Drift of a run's data and recommendation lists against the champion's.

Every check returns rows shaped like the ``drift_checks`` table (without run_id):
check, column, statistic, value, threshold, drifted.

Data drift (``data_drift``): each column that both frames hold, other than IDs
(user_id, item_id, order_id) and datetimes, is compared by evidently's DataDriftPreset,
which types each column itself and picks its default test: with at most 1,000 reference
rows K-S for numbers of more than 5 distinct values, otherwise chi-square or the Z-test;
with more rows the Wasserstein distance normed by the reference's standard deviation, or
the Jensen-Shannon distance. A p-value test drifts at p <= ``column_threshold``; a
distance drifts at or above evidently's own default (0.1), since ``column_threshold`` is
a p-value. Missing and infinite values are left out; a column with values on one side
only has drifted (statistic "values on one side only", value and threshold NaN), and
one with values on neither side is skipped. A column evidently cannot test is reported
as not tested (it has not drifted and does not count in the share). Each side is first
sampled to at most ``sample`` rows. The data set drifted when the share of drifted
columns is at least ``drifted_share`` (its row: column "*") and is severe at
``severe_share``.

Prediction drift (``prediction_drift``) compares the new lists with the last published:

- score: the data drift test above on the score column (scores of different model
  families live on different scales, so a change of champion family moves it too);
- concentration: Gini coefficient of item exposure, over the whole catalogue (an item
  never recommended counts 0). With exposures x_1 <= ... <= x_n,
  G = 2 * sum(i * x_i) / (n * sum(x)) - (n + 1) / n, which equals
  sum_ij |x_i - x_j| / (2 * n^2 * mean(x)): 0 when every item is shown equally often,
  1 - 1/n when one item takes every slot. Value: the current Gini; drifted when it
  exceeds the previous one by more than GINI_RISE (the threshold);
- coverage: distinct recommended items / catalogue size. Value: the current coverage;
  drifted below COVERAGE_KEEP x the previous coverage (the threshold);
- overlap: for each user with lists in both, |P & C| / |P | C| of the item sets, then
  the mean over those users. Drifted below ``max_overlap_drop``, and when no user has
  lists in both (value NaN).

The current catalogue has ``n_items`` items; the previous one is taken to hold at least
the items the previous lists name. The lists drifted when any check did (their
``drifted_share`` is the share of the four checks); they are severe when the overlap
check failed, or when the score distribution and the concentration both drifted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recmill import schema as S

if TYPE_CHECKING:
    from recmill.config import DriftConfig

ROW_COLUMNS = ("check", "column", "statistic", "value", "threshold", "drifted")
ID_COLUMNS = (S.USER_ID, S.ITEM_ID, S.ORDER_ID)
P_VALUE = "p_value"  # in the name of evidently's tests that give a p-value ("K-S p_value")
SKIPPED = "not tested"
SHARE_STATISTIC = "share of drifted columns"
ONE_SIDED = "values on one side only"
PREDICTION = "prediction"
SCORE = "score"
GINI_RISE = 0.1  # concentration drifted: exposure Gini rose by more than this (absolute)
COVERAGE_KEEP = 0.5  # coverage drifted: below this share of the previous coverage
WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class DriftResult:
    check: str
    rows: pd.DataFrame  # ROW_COLUMNS
    drifted_share: float  # of columns (data) or of checks (prediction)
    drifted: bool
    severe: bool
    summary: str  # one sentence: what moved


def _row(check: str, column: str, statistic: str, value: float, threshold: float, drifted: bool) -> dict:
    return dict(zip(ROW_COLUMNS, (check, column, statistic, float(value), float(threshold), bool(drifted))))


def _sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return df.sample(n=n, random_state=seed) if len(df) > n else df


def _present(values: pd.Series) -> pd.Series:
    # what evidently tests: missing and infinite values left out
    return values.replace([np.inf, -np.inf], np.nan).dropna()


def _columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """The columns both frames hold to compare: not IDs, not times."""
    out = []
    for column in reference.columns:
        if column in ID_COLUMNS or column not in current:
            continue
        dtypes = (reference[column].dtype, current[column].dtype)
        if not any(pd.api.types.is_datetime64_any_dtype(d) or pd.api.types.is_timedelta64_dtype(d) for d in dtypes):
            out.append(column)
    return out


def _value_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], drift_share: float, thresholds: dict | None = None):
    """evidently's data drift report of these columns, each typed and given its test by
    evidently itself; (the snapshot, column -> (method, its default threshold, value))."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(columns=columns, drift_share=drift_share, per_column_threshold=thresholds or None)
    # evidently correlates the columns for its plots; a constant column would make numpy warn
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = Report([preset], include_tests=True).run(
            Dataset.from_pandas(current[columns], data_definition=DataDefinition()),
            Dataset.from_pandas(reference[columns], data_definition=DataDefinition()),
        )
    found = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            found[config["column"]] = (config["method"], config["threshold"], metric["value"])
    return snapshot, found


def _column_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], cfg: DriftConfig, check: str, stem: Path) -> tuple[list[dict], list[str]]:
    """Rows and reasons (one per drifted column) from evidently's report, written to
    ``stem``.html and ``stem``.json. A column evidently cannot test (its report fails on
    it, or it gives the column no test) is reported as skipped: a row that has not drifted."""
    tested, one_sided = [], {}
    for column in columns:  # a column with values on neither side gets no row
        ref, cur = _present(reference[column]), _present(current[column])
        if ref.empty != cur.empty:
            one_sided[column] = "current" if ref.empty else "reference"
        elif not ref.empty:
            tested.append(column)
    if not tested:
        raise ValueError(f"{check}: no column has values in both data sets (columns: {sorted(columns)})")
    skipped = {}
    try:
        snapshot, found = _value_drift(reference, current, tested, cfg.drifted_share)
    except Exception:  # find the columns it cannot test, one at a time, and leave them out
        for column in tested:
            try:
                _value_drift(reference, current, [column], cfg.drifted_share)
            except Exception as exc:
                skipped[column] = f"{type(exc).__name__}: {exc}"
        tested = [c for c in tested if c not in skipped]
        if not tested:
            raise ValueError(f"{check}: evidently could test no column ({'; '.join(f'{c}: {why}' for c, why in skipped.items())})") from None
        snapshot, found = _value_drift(reference, current, tested, cfg.drifted_share)
    skipped.update({c: "evidently gave it no drift test" for c in tested if c not in found})
    # a p-value test (few rows) drifts at column_threshold; a distance at evidently's own threshold
    p_values = {c: cfg.column_threshold for c, (method, default, _) in found.items() if P_VALUE in method and default != cfg.column_threshold}
    if p_values:  # again with those thresholds, so the saved report judges as the rows do
        snapshot, found = _value_drift(reference, current, tested, cfg.drifted_share, p_values)
    stem.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(stem.with_suffix(".html")))
    snapshot.save_json(str(stem.with_suffix(".json")))

    rows, reasons = [], []
    for column in columns:
        if column in one_sided:
            rows.append(_row(check, column, ONE_SIDED, math.nan, math.nan, True))
            reasons.append(f"{column}: values in the {one_sided[column]} data only")
        elif column in skipped:
            rows.append(_row(check, column, f"{SKIPPED}: {skipped[column]}", math.nan, math.nan, False))
        elif column in found:
            method, threshold, value = found[column]
            p_value = P_VALUE in method
            drifted = value <= threshold if p_value else value >= threshold
            rows.append(_row(check, column, method, value, threshold, drifted))
            if drifted:
                reasons.append(f"{column}: {method} {value:.3g} {'<=' if p_value else '>='} {threshold:g}")
    return rows, reasons


def data_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftConfig, name: str, out_dir: Path, seed: int
) -> DriftResult:
    """Drift of ``current`` against ``reference``, column by column; writes evidently's
    report to ``out_dir``/``name``.html and .json."""
    columns = _columns(reference, current)
    if not columns:
        raise ValueError(f"{name}: the data sets share no column to compare")
    reference, current = _sample(reference[columns], cfg.sample, seed), _sample(current[columns], cfg.sample, seed)
    rows, reasons = _column_drift(reference, current, columns, cfg, name, Path(out_dir) / name)

    judged = [r for r in rows if not r["statistic"].startswith(SKIPPED)]
    n_columns, n_drifted = len(judged), sum(r["drifted"] for r in judged)
    share = n_drifted / n_columns
    rows.append(_row(name, "*", SHARE_STATISTIC, share, cfg.drifted_share, share >= cfg.drifted_share))
    summary = f"{name}: {n_drifted} of {n_columns} columns drifted" + (f" ({'; '.join(reasons)})" if reasons else "")
    return DriftResult(
        check=name,
        rows=pd.DataFrame(rows, columns=ROW_COLUMNS),
        drifted_share=share,
        drifted=share >= cfg.drifted_share,
        severe=share >= cfg.severe_share,
        summary=summary,
    )


# --- recommendation lists -------------------------------------------------------


def gini(counts) -> float:
    """Gini coefficient of non-negative counts, not all zero (see the module docstring)."""
    x = np.sort(np.asarray(counts, dtype=float))
    if x.size == 0 or (x < 0).any() or x.sum() == 0:
        raise ValueError("gini needs non-negative counts, not all zero")
    n = x.size
    return float(2 * (np.arange(1, n + 1) @ x) / (n * x.sum()) - (n + 1) / n)


def item_exposure(recs: pd.DataFrame, n_items: int) -> np.ndarray:
    """How often each of the ``n_items`` catalogue items appears in the lists (0 if never)."""
    counts = recs[S.ITEM_ID].value_counts().to_numpy()
    if len(counts) > n_items:
        raise ValueError(f"the lists name {len(counts)} distinct items, more than the catalogue's {n_items}")
    return np.concatenate([counts, np.zeros(n_items - len(counts))])


def mean_jaccard(previous: pd.DataFrame, current: pd.DataFrame) -> float:
    """Mean over users with lists in both of |P & C| / |P | C|; NaN when there is none."""
    keys = [S.USER_ID, S.ITEM_ID]
    p, c = previous[keys].drop_duplicates(), current[keys].drop_duplicates()
    sizes = pd.concat([p.groupby(S.USER_ID).size().rename("p"), c.groupby(S.USER_ID).size().rename("c")], axis=1, join="inner")
    if sizes.empty:
        return math.nan
    shared = p.merge(c, on=keys).groupby(S.USER_ID).size().reindex(sizes.index, fill_value=0)
    return float((shared / (sizes["p"] + sizes["c"] - shared)).mean())


def prediction_drift(
    previous: pd.DataFrame, current: pd.DataFrame, n_items: int, cfg: DriftConfig, out_dir: Path, seed: int
) -> DriftResult:
    """Drift of the new lists against the last published ones (``recommendations``
    shaped frames); ``n_items`` is the current catalogue's size. Writes evidently's score
    report to ``out_dir``/prediction.html and .json."""
    if previous.empty or current.empty:
        raise ValueError("prediction drift needs the previous and the current lists, both non-empty")
    score_rows, reasons = _column_drift(
        _sample(previous[[SCORE]], cfg.sample, seed), _sample(current[[SCORE]], cfg.sample, seed),
        [SCORE], cfg, PREDICTION, Path(out_dir) / PREDICTION,
    )
    score = score_rows[0]

    # items may have left the catalogue since the previous lists were made
    n_before = max(n_items, previous[S.ITEM_ID].nunique())
    gini_before, gini_now = gini(item_exposure(previous, n_before)), gini(item_exposure(current, n_items))
    concentration = _row(PREDICTION, S.ITEM_ID, "Gini of item exposure", gini_now, gini_before + GINI_RISE, gini_now > gini_before + GINI_RISE)
    if concentration["drifted"]:
        reasons.append(f"item exposure Gini {gini_now:.3g} > {gini_before:.3g} before + {GINI_RISE:g}")

    coverage_before, coverage_now = previous[S.ITEM_ID].nunique() / n_before, current[S.ITEM_ID].nunique() / n_items
    coverage = _row(PREDICTION, S.ITEM_ID, "catalogue coverage", coverage_now, COVERAGE_KEEP * coverage_before, coverage_now < COVERAGE_KEEP * coverage_before)
    if coverage["drifted"]:
        reasons.append(f"catalogue coverage {coverage_now:.3g} < {COVERAGE_KEEP:g} x {coverage_before:.3g} before")

    jaccard = mean_jaccard(previous, current)
    overlap = _row(PREDICTION, S.USER_ID, "mean Jaccard overlap", jaccard, cfg.max_overlap_drop, not jaccard >= cfg.max_overlap_drop)
    if math.isnan(jaccard):
        reasons.append("no user has lists in both")
    elif overlap["drifted"]:
        reasons.append(f"mean Jaccard overlap of users' lists {jaccard:.3g} < {cfg.max_overlap_drop:g}")

    rows = [score, concentration, coverage, overlap]
    n_drifted = sum(r["drifted"] for r in rows)
    summary = f"{PREDICTION}: {n_drifted} of {len(rows)} checks drifted" + (f" ({'; '.join(reasons)})" if reasons else "")
    return DriftResult(
        check=PREDICTION,
        rows=pd.DataFrame(rows, columns=ROW_COLUMNS),
        drifted_share=n_drifted / len(rows),
        drifted=n_drifted > 0,
        severe=overlap["drifted"] or (score["drifted"] and concentration["drifted"]),
        summary=summary,
    )


# --- a shifted data set ---------------------------------------------------------


def shift_category(events: pd.DataFrame, items: pd.DataFrame, category: str, factor: int, seed: int) -> pd.DataFrame:
    """Canonical ``events`` with every purchase of an item in ``category`` there ``factor``
    times: the original and ``factor - 1`` copies. Each copy of an order (an event without
    order_id is an order of its own) gets a new order id and moves by a random whole
    number of weeks that keeps it within the events' time range, so the hours and
    weekdays of the events keep their distribution."""
    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    in_category = items.loc[items["category"] == category, S.ITEM_ID]
    chosen = events[(events[S.EVENT_TYPE] == "purchase") & events[S.ITEM_ID].isin(in_category)]
    if chosen.empty:
        raise ValueError(f"no purchase of an item in category {category!r}")

    orders = chosen[S.ORDER_ID] if S.ORDER_ID in chosen else pd.Series(pd.NA, index=chosen.index, dtype="string")
    key = orders.astype("string").fillna("#" + chosen.index.astype(str).to_series(index=chosen.index))
    span = chosen.groupby(key)[S.TIMESTAMP].agg(["min", "max"])
    back = ((span["min"] - events[S.TIMESTAMP].min()) // WEEK).to_numpy()  # whole weeks an order may move back ...
    forward = ((events[S.TIMESTAMP].max() - span["max"]) // WEEK).to_numpy()  # ... and forward
    rng = np.random.default_rng(seed)
    copies = []
    for copy in range(1, factor):
        offset = pd.Series(rng.integers(-back, forward + 1) * WEEK, index=span.index)
        shifted = chosen.assign(**{S.TIMESTAMP: chosen[S.TIMESTAMP] + offset.reindex(key).to_numpy()})
        if S.ORDER_ID in chosen:
            shifted[S.ORDER_ID] = chosen[S.ORDER_ID].astype("string") + f"-copy{copy}"
        copies.append(shifted)
    return pd.concat([events, *copies], ignore_index=True)
