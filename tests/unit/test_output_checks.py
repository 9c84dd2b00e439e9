"""The checks on recommendations before publish: each defect alone fails with its rows or users."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from recmill.data.output_checks import check_recommendations, raise_if_failed
from recmill.data.validation import ROW_LABELS, SHOWN_ROWS
from recmill.errors import ValidationFailed

K = 4
N_ITEMS = 8  # i1..i8
USERS = ["u1", "u2", "u3"]
# u3 has 5 of the 8 items, so only 3 are left to recommend: 3 rows, not K.
HAD = {"u1": {"i1"}, "u2": {"i2", "i3"}, "u3": {"i1", "i2", "i3", "i4", "i5"}}


def pairs(had: dict[str, set[str]] | None) -> pd.DataFrame | None:
    """had as check_recommendations takes it: (user_id, item_id) pairs."""
    if had is None:
        return None
    return pd.DataFrame([(u, i) for u, items in had.items() for i in sorted(items)], columns=["user_id", "item_id"])


def good_recs() -> pd.DataFrame:
    # rows 0-3: u1, rows 4-7: u2, rows 8-10: u3
    return pd.DataFrame(
        {
            "user_id": ["u1"] * 4 + ["u2"] * 4 + ["u3"] * 3,
            "item_id": ["i2", "i3", "i4", "i5", "i1", "i4", "i5", "i6", "i6", "i7", "i8"],
            "rank": [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3],
            "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.4, 0.1, 2.0, 1.0, -1.0],
            "reason": ["popular"] * 11,
        }
    )


def check(recs, users=USERS, had=HAD, **kwargs):
    return check_recommendations(recs, K, users, pairs(had), N_ITEMS, example_rows=2, **kwargs)


def _set(row, column, value):
    def edit(df):
        df.loc[row, column] = value
        return df

    return edit


def _drop(*rows):
    return lambda df: df.drop(index=list(rows))


def _append(**row):
    return lambda df: pd.concat([df, pd.DataFrame([row])], ignore_index=True)


def test_good_frame_passes_with_a_short_list_where_the_catalogue_runs_out():
    result = check(good_recs())
    assert result.success
    assert result.failures == []
    assert result.summary() == "Validation passed: 15 expectations on recommendations"
    raise_if_failed(result)  # no error
    assert set(result.results) == {"recommendations", "recommendations per user"}
    for rank_type in ("int32", "Int32", "Int64"):
        assert check(good_recs().astype({"rank": rank_type})).success, rank_type


@pytest.mark.parametrize(
    "edit, column, headline, example",
    [
        (
            _drop(3),
            "user_id",
            "each user_id must have min(4, 8 items - items the user has) rows: 1 of 3 users fail (user u1)",
            {"user_id": "u1", "rows": 3, "expected": 4, "ranks": [1, 2, 3]},
        ),
        (
            _drop(8, 9, 10),
            "user_id",
            "each user_id must have min(4, 8 items - items the user has) rows: 1 of 3 users fail (user u3)",
            {"user_id": "u3", "rows": 0, "expected": 3, "ranks": []},
        ),
        (
            _set(1, "item_id", "i2"),
            "item_id",
            "item_id appears twice for the same user_id: 2 of 11 rows fail (rows 0, 1)",
            {"user_id": "u1", "item_id": "i2", "rank": 1, "score": 0.9},
        ),
        (
            _set(5, "item_id", "i3"),
            "item_id",
            "item_id is an item the user already has: 1 of 11 rows fail (row 5)",
            {"user_id": "u2", "item_id": "i3", "rank": 2, "score": 0.5},
        ),
        (
            _set(10, "score", np.nan),
            "score",
            "score is NaN or missing: 1 of 11 rows fail (row 10)",
            {"user_id": "u3", "item_id": "i8", "rank": 3, "score": None},
        ),
        (
            _set(4, "score", np.inf),
            "score",
            "score is infinite: 1 of 11 rows fail (row 4)",
            {"user_id": "u2", "item_id": "i1", "rank": 1, "score": math.inf},
        ),
        (
            _set(7, "score", -np.inf),
            "score",
            "score is infinite: 1 of 11 rows fail (row 7)",
            {"user_id": "u2", "item_id": "i6", "rank": 4, "score": -math.inf},
        ),
        (
            _set(10, "rank", 4),
            "rank",
            "rank must run 1..n within each user_id, with no gap or repeat: 1 of 3 users fail (user u3)",
            {"user_id": "u3", "rows": 3, "expected": 3, "ranks": [1, 2, 4]},
        ),
        (
            _set(8, "rank", 0),
            "rank",
            "rank must run 1..n within each user_id, with no gap or repeat: 1 of 3 users fail (user u3)",
            {"user_id": "u3", "rows": 3, "expected": 3, "ranks": [0, 2, 3]},
        ),
        (
            _set(9, "rank", 1),
            "rank",
            "rank must run 1..n within each user_id, with no gap or repeat: 1 of 3 users fail (user u3)",
            {"user_id": "u3", "rows": 3, "expected": 3, "ranks": [1, 1, 3]},
        ),
        (
            _set(1, "score", 0.95),
            "score",
            "score is higher than at the user's previous rank: 1 of 11 rows fail (row 1)",
            {"user_id": "u1", "item_id": "i3", "rank": 2, "score": 0.95},
        ),
        (
            _set(10, "item_id", None),
            "item_id",
            "item_id is missing: 1 of 11 rows fail (row 10)",
            {"user_id": "u3", "item_id": None, "rank": 3, "score": -1.0},
        ),
        (
            _append(user_id="u9", item_id="i1", rank=1, score=0.5, reason="popular"),
            "user_id",
            "user_id is not one of the users to recommend for: 1 of 12 rows fail (row 11)",
            {"user_id": "u9", "item_id": "i1", "rank": 1, "score": 0.5},
        ),
    ],
)
def test_each_defect_alone_fails_naming_column_and_rows(edit, column, headline, example):
    result = check(edit(good_recs()))
    assert not result.success
    assert len(result.failures) == 1, [f.headline() for f in result.failures]
    failure = result.failures[0]
    assert (failure.table, failure.column, failure.headline()) == ("recommendations", column, headline)
    first = failure.examples.iloc[0].replace({np.nan: None}).to_dict()
    assert first == example
    lines = result.summary().splitlines()
    assert lines[0] == "Validation failed: 1 of 15 expectations on recommendations"
    assert lines[1] == f"- {headline}"
    with pytest.raises(ValidationFailed) as err:
        raise_if_failed(result)
    assert str(err.value) == result.summary()


def test_summary_shows_example_rows():
    result = check(_set(10, "rank", 4)(good_recs()))
    assert result.summary().splitlines()[2:] == [
        "    user_id  rows  expected     ranks",
        "         u3     3         3 [1, 2, 4]",
    ]


def test_missing_user_id_is_reported_with_the_short_list_it_leaves():
    result = check(_set(10, "user_id", None)(good_recs()))
    assert [f.headline() for f in result.failures] == [
        "user_id is missing: 1 of 11 rows fail (row 10)",
        "each user_id must have min(4, 8 items - items the user has) rows: 1 of 3 users fail (user u3)",
    ]


def test_wrong_types_and_missing_columns():
    recs = good_recs().astype({"rank": float})
    result = check(recs)
    assert [(f.column, f.headline()) for f in result.failures] == [("rank", "rank must be an integer (column type is float64)")]

    recs = good_recs().astype({"rank": "Int32"})
    recs.loc[10, "rank"] = None
    result = check(recs)
    assert [f.headline() for f in result.failures] == [
        "rank must run 1..n within each user_id, with no gap or repeat: 1 of 3 users fail (user u3)"
    ]
    assert result.failures[0].examples.iloc[0]["ranks"] == [1, 2, pd.NA]

    result = check(good_recs().astype({"score": str}))
    # an object column is checked value by value
    assert [f.headline() for f in result.failures] == [
        "score must be numeric (column type is object): 11 of 11 rows fail (rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... 1 more)"
    ]

    result = check(good_recs().drop(columns=["score"]))
    assert [f.headline() for f in result.failures] == ["column 'score' is missing"]
    assert result.summary().splitlines()[0] == "Validation failed: 1 of 4 expectations on recommendations"


def test_without_had_every_user_needs_k_and_seen_items_are_allowed():
    recs = _set(5, "item_id", "i3")(good_recs())  # u2 has i3, but nothing is excluded
    result = check(recs, had=None)
    assert [f.headline() for f in result.failures] == ["each user_id must have min(4, 8 items) rows: 1 of 3 users fail (user u3)"]
    assert result.failures[0].examples.iloc[0][["rows", "expected"]].tolist() == [3, 4]


def test_expected_rows_never_below_zero():
    # u4 has every item (and one outside the catalogue): nothing to recommend, no rows
    had = {**HAD, "u4": {f"i{i}" for i in range(1, 10)}}
    assert check(good_recs(), users=[*USERS, "u4"], had=had).success


def test_index_of_the_frame_does_not_matter():
    recs = good_recs()
    recs.index = recs.index * 10 + 7
    result = check(_set(27, "score", np.nan)(recs))
    assert result.failures[0].rows == ["row 2"]  # positions, not labels


def test_challenger_table_writes_its_report_and_raises(tmp_path):
    recs = _set(5, "item_id", "i3")(good_recs())
    result = check(recs, table="recommendations_challenger", report_dir=tmp_path)
    assert result.path == tmp_path / "recommendations_challenger" / "validation_result.json"
    with pytest.raises(ValidationFailed) as err:
        raise_if_failed(result)
    assert err.value.report_path == str(result.path)
    assert str(err.value).startswith("Validation failed: 1 of 15 expectations on recommendations_challenger\n")
    data = json.loads(result.path.read_text())
    assert data["success"] is False
    assert data["failures"][0]["rows"] == ["row 5"]
    assert data["results"]["recommendations_challenger"]["success"] is False
    assert data["results"]["recommendations_challenger per user"]["success"] is True
    summary = (tmp_path / "recommendations_challenger" / "summary.txt").read_text()
    assert summary == result.summary() + "\n"


def test_passing_report_is_written(tmp_path):
    result = check(good_recs(), report_dir=tmp_path)
    assert json.loads(result.path.read_text())["success"] is True


def test_counts_are_exact_beyond_the_labelled_rows_and_users():
    n = ROW_LABELS + 500
    recs = pd.DataFrame({"user_id": [f"x{i}" for i in range(n)], "item_id": "i1", "rank": 1, "score": 0.5})
    users = [f"u{i}" for i in range(n)]  # none of them has a row
    result = check_recommendations(recs, K, users, None, N_ITEMS, example_rows=2)
    rows, per_user = result.failures
    assert (rows.unexpected_count, rows.element_count, per_user.unexpected_count, per_user.element_count) == (n, n, n, n)
    assert rows.rows == [f"row {i}" for i in range(ROW_LABELS)]
    assert per_user.rows == [f"user u{i}" for i in range(ROW_LABELS)]
    assert rows.headline().endswith(f", ... {n - SHOWN_ROWS} more)")
    assert per_user.headline() == f"each user_id must have min(4, 8 items) rows: {n} of {n} users fail (users u0, u1, u2, u3, u4, u5, u6, u7, u8, u9, ... {n - SHOWN_ROWS} more)"
    assert len(rows.examples) == len(per_user.examples) == 2


EVIL = "x'; drop table recs; --"
QUOTED = 'say "hi"'


def test_ids_with_quotes_and_sql_are_reported_verbatim():
    recs = _append(user_id=EVIL, item_id=EVIL, rank=1, score=0.5, reason="popular")(good_recs())
    recs = _append(user_id=QUOTED, item_id=QUOTED, rank=1, score=0.5, reason="popular")(recs)
    result = check(recs, users=[*USERS, EVIL], had={**HAD, EVIL: {EVIL}})
    assert [f.headline() for f in result.failures] == [
        "user_id is not one of the users to recommend for: 1 of 13 rows fail (row 12)",
        "item_id is an item the user already has: 1 of 13 rows fail (row 11)",
        f"each user_id must have min(4, 8 items - items the user has) rows: 1 of 4 users fail (user {EVIL})",
    ]
    assert result.failures[0].examples[["user_id", "item_id"]].values.tolist() == [[QUOTED, QUOTED]]
    assert result.failures[1].examples[["user_id", "item_id"]].values.tolist() == [[EVIL, EVIL]]
    assert result.failures[2].examples.iloc[0].to_dict() == {"user_id": EVIL, "rows": 1, "expected": 4, "ranks": [1]}
    assert EVIL in result.summary() and QUOTED in result.summary()


# --- cross-check against plain loops -------------------------------------------


def _random_case(seed: int):
    """30 users, correct lists, then random defects of every kind."""
    rng = np.random.default_rng(seed)
    k, n_items = 5, 12
    items = [f"i{i}" for i in range(n_items)]
    users = [f"u{u}" for u in range(30)]
    had = {u: set(rng.choice(items, size=rng.integers(0, 11), replace=False)) for u in users}
    rows = []
    for u in users:
        left = [i for i in items if i not in had[u]]
        chosen = rng.choice(left, size=min(k, len(left)), replace=False)
        scores = np.sort(rng.random(len(chosen)))[::-1]
        rows += [(u, item, r, s) for r, (item, s) in enumerate(zip(chosen, scores), start=1)]
    recs = pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])
    n = len(recs)
    recs = recs.drop(index=rng.choice(n, size=4, replace=False)).reset_index(drop=True)
    n = len(recs)
    for column, values in (("item_id", items), ("rank", [1, 2, 3, 7]), ("score", [np.nan, np.inf, -np.inf, 5.0])):
        at = rng.choice(n, size=4, replace=False)
        recs[column] = recs[column].astype(object)
        recs.loc[at, column] = rng.choice(np.array(values, dtype=object), size=4)
    return recs.astype({"rank": int, "score": float}), k, users, had, n_items


def _brute_force(recs, k, users, had, n_items) -> dict[str, list[str]]:
    rows = list(recs.itertuples(index=False))
    pairs = [(r.user_id, r.item_id) for r in rows]
    out = {
        "item_id appears twice": [f"row {i}" for i, p in enumerate(pairs) if pairs.count(p) > 1],
        "item_id is an item": [f"row {i}" for i, (u, it) in enumerate(pairs) if it in had[u]],
        "score is NaN": [f"row {i}" for i, r in enumerate(rows) if math.isnan(r.score)],
        "score is infinite": [f"row {i}" for i, r in enumerate(rows) if math.isinf(r.score)],
        "score is higher": [],
        "each user_id": [],
        "rank must run": [],
    }
    for u in users:
        mine = sorted((r.rank, i) for i, r in enumerate(rows) if r.user_id == u)
        for (_, before), (_, i) in zip(mine, mine[1:]):
            if rows[i].score > rows[before].score:
                out["score is higher"].append(f"row {i}")
        if len(mine) != min(k, max(0, n_items - len(had[u]))):
            out["each user_id"].append(f"user {u}")
        if [r for r, _ in mine] != list(range(1, len(mine) + 1)):
            out["rank must run"].append(f"user {u}")
    out["score is higher"].sort(key=lambda label: int(label.split()[1]))
    return {key: labels for key, labels in out.items() if labels}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_failing_rows_and_users_match_a_plain_loop(seed):
    case = _random_case(seed)
    recs, k, users, had, n_items = case
    result = check_recommendations(recs, k, users, pairs(had), n_items)
    want = _brute_force(*case)
    got = {next(p for p in want if f.description.startswith(p)): f.rows for f in result.failures}
    assert got == want


def test_fifty_thousand_users_check_in_seconds():
    users = [f"u{u}" for u in range(50_000)]
    k = 20
    recs = pd.DataFrame(
        {
            "user_id": np.repeat(users, k),
            "item_id": [f"i{i}" for i in range(k)] * len(users),
            "rank": np.tile(np.arange(1, k + 1), len(users)),
            "score": np.tile(np.linspace(1.0, 0.0, k), len(users)),
        }
    )
    had = {u: {"i99"} for u in users}
    start = time.perf_counter()
    result = check_recommendations(recs, k, users, pairs(had), 1_000)
    print(f"\n{len(recs):,} recommendation rows checked in {time.perf_counter() - start:.1f} s")
    assert result.success
