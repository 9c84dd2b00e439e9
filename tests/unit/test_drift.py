import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance

from recmill.config import DriftConfig
from recmill.drift import (
    GINI_RISE,
    ROW_COLUMNS,
    data_drift,
    gini,
    item_exposure,
    mean_jaccard,
    prediction_drift,
    shift_category,
)

CFG = DriftConfig()
CATEGORIES = ["dairy", "bakery", "produce", "drinks", "snacks", "frozen"]


# --- a small shop ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shop():
    """30 items in 6 categories; 1,500 purchases in orders of 3 over ten weeks."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame({
        "item_id": [f"i{n}" for n in range(30)],
        "category": [CATEGORIES[n // 5] for n in range(30)],
        "price": [1.0 + n // 5 + 0.1 * (n % 5) for n in range(30)],
    })
    n = 1_500
    order = np.arange(n) // 3
    order_start = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 70 * 86_400, n // 3), unit="s")
    events = pd.DataFrame({
        "user_id": [f"u{u}" for u in (order % 50)],
        "item_id": rng.choice(items["item_id"], n),
        "timestamp": order_start[order] + pd.to_timedelta(np.arange(n) % 3 * 60, unit="s"),
        "event_type": "purchase",
        "value": 1.0,
        "order_id": [f"o{o}" for o in order],
    })
    return events, items


def event_frame(events: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """The event-level columns a drift check compares, with the user id it must skip."""
    df = events.merge(items, on="item_id")
    return pd.DataFrame({
        "user_id": df["user_id"],
        "category": df["category"],
        "price": df["price"],
        "hour_of_day": df["timestamp"].dt.hour,
    })


def by_column(result) -> dict[str, dict]:
    return {r["column"]: r for r in result.rows.to_dict("records")}


# --- data drift -----------------------------------------------------------------


def test_same_data_has_not_drifted_and_writes_evidently_files(shop, tmp_path):
    frame = event_frame(*shop)
    result = data_drift(frame, frame.copy(), CFG, "events", tmp_path, seed=1)

    assert list(result.rows.columns) == list(ROW_COLUMNS)
    rows = by_column(result)
    assert list(rows) == ["category", "price", "hour_of_day", "*"]  # user_id is an ID: skipped
    # 1,500 rows: evidently's distance tests, with its own thresholds
    assert rows["category"]["statistic"] == "Jensen-Shannon distance"
    assert rows["price"]["statistic"] == "Wasserstein distance (normed)"
    for column in ("category", "price", "hour_of_day"):
        assert rows[column]["value"] == pytest.approx(0, abs=1e-12)
        assert rows[column]["threshold"] == 0.1
        assert not rows[column]["drifted"]
    assert rows["*"] == {
        "check": "events", "column": "*", "statistic": "share of drifted columns",
        "value": 0.0, "threshold": CFG.drifted_share, "drifted": False,
    }
    assert (result.check, result.drifted_share, result.drifted, result.severe) == ("events", 0.0, False, False)
    assert result.summary == "events: 0 of 3 columns drifted"

    assert (tmp_path / "events.html").stat().st_size > 0
    report = json.loads((tmp_path / "events.json").read_text())
    drift_scores = {m["config"]["column"]: m["value"] for m in report["metrics"] if "column" in m["config"]}
    assert drift_scores == {c: rows[c]["value"] for c in ("category", "price", "hour_of_day")}


def test_multiplied_category_drifts_and_the_summary_names_it(shop, tmp_path):
    events, items = shop
    reference = event_frame(events, items)
    current = event_frame(shift_category(events, items, "dairy", factor=5, seed=3), items)
    result = data_drift(reference, current, CFG, "events", tmp_path, seed=1)

    rows = by_column(result)
    assert rows["category"]["drifted"]
    assert "category: Jensen-Shannon distance" in result.summary
    # cross-check: the distance of the category shares (evidently uses the natural log)
    shares = [df["category"].value_counts(normalize=True).reindex(CATEGORIES, fill_value=0) for df in (reference, current)]
    assert rows["category"]["value"] == pytest.approx(jensenshannon(*shares), abs=1e-9)
    assert rows["category"]["value"] > 0.1


def test_shifted_numeric_column_drifts(shop, tmp_path):
    reference = event_frame(*shop)
    current = reference.assign(price=reference["price"] * 1.5)
    result = data_drift(reference, current, CFG, "events", tmp_path, seed=1)

    rows = by_column(result)
    expected = wasserstein_distance(reference["price"], current["price"]) / np.std(reference["price"])
    assert rows["price"]["value"] == pytest.approx(expected, rel=1e-9)
    assert rows["price"]["drifted"] and not rows["category"]["drifted"] and not rows["hour_of_day"]["drifted"]
    assert result.summary == f"events: 1 of 3 columns drifted (price: Wasserstein distance (normed) {expected:.3g} >= 0.1)"
    assert result.drifted_share == pytest.approx(1 / 3)
    assert not result.drifted


def test_p_value_tests_take_the_configured_threshold(tmp_path):
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 200)})
    current = pd.DataFrame({"x": rng.normal(0.25, 1, 200)})
    p = ks_2samp(reference["x"], current["x"]).pvalue
    assert 0.001 < p < 0.4  # the fixture sits between the two thresholds below

    for threshold, drifted in [(p / 2, False), (min(2 * p, 0.9), True)]:
        result = data_drift(reference, current, DriftConfig(column_threshold=threshold), "x", tmp_path, seed=1)
        row = by_column(result)["x"]
        # 200 rows: evidently's K-S test, its p-value against column_threshold
        assert (row["statistic"], row["threshold"], row["drifted"]) == ("K-S p_value", threshold, drifted)
        assert row["value"] == pytest.approx(p, rel=1e-9)


def test_rows_are_sampled_per_side_with_the_seed(shop, tmp_path):
    frame = event_frame(*shop)
    shifted = frame.assign(price=frame["price"] + 0.3)
    cfg = DriftConfig(sample=100)
    first = data_drift(frame, shifted, cfg, "events", tmp_path, seed=7)
    again = data_drift(frame, shifted, cfg, "events", tmp_path, seed=7)
    other = data_drift(frame, shifted, cfg, "events", tmp_path, seed=8)

    # 100 rows a side: evidently's small-sample test, not the distance it takes on 1,500
    assert by_column(first)["price"]["statistic"] == "K-S p_value"
    pd.testing.assert_frame_equal(first.rows, again.rows)
    assert by_column(first)["price"]["value"] != by_column(other)["price"]["value"]
    sample = frame.sample(n=100, random_state=7)
    expected = ks_2samp(sample["price"], shifted.sample(n=100, random_state=7)["price"]).pvalue
    assert by_column(first)["price"]["value"] == pytest.approx(expected, rel=1e-9)


def test_share_of_drifted_columns_sets_drifted_and_severe(shop, tmp_path):
    reference = event_frame(*shop)
    current = reference.assign(price=reference["price"] * 2, hour_of_day=reference["hour_of_day"] // 3)
    current["category"] = current["category"].where(current["category"] != "dairy", "bakery")
    reference["same"] = current["same"] = np.arange(len(reference)) % 7

    result = data_drift(reference, current, CFG, "events", tmp_path, seed=1)
    assert [r["column"] for r in result.rows.to_dict("records") if r["drifted"]] == ["category", "price", "hour_of_day", "*"]
    assert result.drifted_share == 0.75
    assert result.drifted and result.severe  # 0.75 >= severe_share 0.75
    assert result.summary.startswith("events: 3 of 4 columns drifted (category: Jensen-Shannon distance ")
    # evidently's own count agrees
    report = json.loads((tmp_path / "events.json").read_text())
    assert [m["value"]["share"] for m in report["metrics"] if "count" in str(m["value"])] == [0.75]

    milder = data_drift(reference, current, DriftConfig(severe_share=0.8), "events", tmp_path, seed=1)
    assert milder.drifted and not milder.severe


def test_empty_columns(tmp_path):
    reference = pd.DataFrame({"x": np.arange(20.0), "never": np.nan, "gone": np.arange(20.0)})
    current = reference.assign(gone=np.nan)
    result = data_drift(reference, current, CFG, "features", tmp_path, seed=1)
    rows = by_column(result)
    assert list(rows) == ["x", "gone", "*"]  # "never" has no values on either side
    assert rows["gone"]["statistic"] == "values on one side only" and rows["gone"]["drifted"]
    assert math.isnan(rows["gone"]["value"]) and math.isnan(rows["gone"]["threshold"])
    assert result.summary == "features: 1 of 2 columns drifted (gone: values in the reference data only)"


def test_a_column_evidently_cannot_test_is_reported_not_tested(tmp_path):
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 300), "pairs": [[1, 2]] * 300})
    current = pd.DataFrame({"x": rng.normal(3, 1, 300), "pairs": [[2, 3]] * 300})
    result = data_drift(reference, current, CFG, "features", tmp_path, seed=1)
    rows = by_column(result)
    assert rows["pairs"]["statistic"].startswith("not tested: ValueError") and not rows["pairs"]["drifted"]
    assert math.isnan(rows["pairs"]["value"]) and rows["x"]["drifted"]
    assert result.summary.startswith("features: 1 of 1 columns drifted (x: K-S p_value")  # only tested columns count
    assert "pairs" not in (tmp_path / "features.json").read_text()


def test_no_comparable_column_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="share no column"):
        data_drift(pd.DataFrame({"user_id": ["a"], "x": [1.0]}), pd.DataFrame({"user_id": ["a"], "y": [1.0]}), CFG, "d", tmp_path, 1)


# --- list statistics ------------------------------------------------------------


def gini_by_pairs(x) -> float:
    """The definition: mean absolute difference over all ordered pairs, over twice the mean."""
    x = np.asarray(x, dtype=float)
    return sum(abs(a - b) for a, b in itertools.product(x, x)) / (2 * len(x) ** 2 * x.mean())


@pytest.mark.parametrize("counts, expected", [
    ([1, 1, 1, 1], 0.0),
    ([0, 0, 0, 4], 0.75),
    ([4, 0, 0, 0], 0.75),
    ([1, 3], 0.25),  # |1 - 3| * 2 / (2 * 4 * 2)
    ([5], 0.0),
])
def test_gini_by_hand(counts, expected):
    assert gini(counts) == pytest.approx(expected, abs=1e-12)
    assert gini_by_pairs(counts) == pytest.approx(expected, abs=1e-12)


def test_gini_agrees_with_the_pairwise_definition():
    rng = np.random.default_rng(2)
    for _ in range(20):
        counts = rng.integers(0, 30, rng.integers(2, 40))
        counts[0] += 1
        assert gini(counts) == pytest.approx(gini_by_pairs(counts), abs=1e-12)


@pytest.mark.parametrize("counts", [[], [0, 0], [2, -1]])
def test_gini_rejects_bad_counts(counts):
    with pytest.raises(ValueError, match="non-negative"):
        gini(counts)


def test_item_exposure_counts_unshown_items_as_zero():
    recs = pd.DataFrame({"item_id": ["a", "b", "a"]})
    assert sorted(item_exposure(recs, 4)) == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="catalogue"):
        item_exposure(recs, 1)


def lists(pairs: dict[str, list[str]], scores=None) -> pd.DataFrame:
    rows = [(u, i, r) for u, items in pairs.items() for r, i in enumerate(items, start=1)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])
    df["score"] = scores if scores is not None else 1.0 + np.arange(len(df))
    return df


def test_mean_jaccard_by_hand():
    previous = lists({"u1": ["a", "b"], "u2": ["c"], "u3": ["d"]})
    current = lists({"u1": ["b", "c"], "u2": ["c"], "u4": ["e"]})
    # u1: {b} / {a, b, c}; u2: {c} / {c}; u3 and u4 are not in both
    assert mean_jaccard(previous, current) == pytest.approx((1 / 3 + 1) / 2)
    assert math.isnan(mean_jaccard(previous, lists({"u9": ["a"]})))


def test_mean_jaccard_agrees_with_a_loop_over_sets():
    rng = np.random.default_rng(4)
    items = [f"i{n}" for n in range(12)]
    previous = lists({f"u{u}": list(rng.choice(items, 5, replace=False)) for u in range(30)})
    current = lists({f"u{u}": list(rng.choice(items, rng.integers(1, 8), replace=False)) for u in range(10, 40)})
    p, c = previous.groupby("user_id")["item_id"].apply(set), current.groupby("user_id")["item_id"].apply(set)
    common = p.index.intersection(c.index)
    expected = np.mean([len(p[u] & c[u]) / len(p[u] | c[u]) for u in common])
    assert len(common) == 20
    assert mean_jaccard(previous, current) == pytest.approx(expected, abs=1e-12)


# --- prediction drift -----------------------------------------------------------

PREVIOUS = {"u1": ["a", "b"], "u2": ["c", "d"], "u3": ["e", "f"], "u4": ["g", "h"]}


def test_identical_lists_have_not_drifted(tmp_path):
    recs = lists(PREVIOUS)
    result = prediction_drift(recs, recs.copy(), 8, CFG, tmp_path, seed=1)

    assert result.rows.to_dict("records") == [
        # 8 scores: evidently's K-S test, p = 1 for identical samples
        {"check": "prediction", "column": "score", "statistic": "K-S p_value", "value": 1.0, "threshold": 0.05, "drifted": False},
        {"check": "prediction", "column": "item_id", "statistic": "Gini of item exposure", "value": 0.0, "threshold": GINI_RISE, "drifted": False},
        {"check": "prediction", "column": "item_id", "statistic": "catalogue coverage", "value": 1.0, "threshold": 0.5, "drifted": False},
        {"check": "prediction", "column": "user_id", "statistic": "mean Jaccard overlap", "value": 1.0, "threshold": 0.5, "drifted": False},
    ]
    assert (result.check, result.drifted_share, result.drifted, result.severe) == ("prediction", 0.0, False, False)
    assert result.summary == "prediction: 0 of 4 checks drifted"
    assert (tmp_path / "prediction.html").exists()
    assert json.loads((tmp_path / "prediction.json").read_text())["metrics"]


def test_disjoint_lists_are_severe(tmp_path):
    current = lists({u: [i.upper() for i in items] for u, items in PREVIOUS.items()})
    result = prediction_drift(lists(PREVIOUS), current, 16, CFG, tmp_path, seed=1)

    rows = {r["statistic"]: r for r in result.rows.to_dict("records")}
    # 8 of 16 items shown once each, before and now
    assert rows["Gini of item exposure"]["value"] == pytest.approx(0.5)
    assert rows["catalogue coverage"]["value"] == pytest.approx(0.5)
    assert not rows["Gini of item exposure"]["drifted"] and not rows["catalogue coverage"]["drifted"]
    assert rows["mean Jaccard overlap"]["value"] == 0 and rows["mean Jaccard overlap"]["drifted"]
    assert result.drifted and result.severe
    assert result.summary == "prediction: 1 of 4 checks drifted (mean Jaccard overlap of users' lists 0 < 0.5)"


def test_concentrated_lists_drift_and_are_severe_with_moved_scores(tmp_path):
    previous = lists(PREVIOUS)
    same = {u: ["a", "b"] for u in PREVIOUS}  # everyone gets a and b: exposures 4, 4, 0 x 6
    cfg = DriftConfig(max_overlap_drop=0.0)  # the overlap check alone never fails here

    result = prediction_drift(previous, lists(same), 8, cfg, tmp_path, seed=1)
    rows = {r["statistic"]: r for r in result.rows.to_dict("records")}
    assert rows["Gini of item exposure"]["value"] == pytest.approx(gini_by_pairs([4, 4, 0, 0, 0, 0, 0, 0]))
    assert rows["Gini of item exposure"]["value"] == pytest.approx(0.75)
    assert rows["Gini of item exposure"]["drifted"]
    assert rows["catalogue coverage"]["value"] == pytest.approx(2 / 8) and rows["catalogue coverage"]["drifted"]
    assert rows["mean Jaccard overlap"]["value"] == pytest.approx(1 / 4)  # only u1 keeps a, b
    assert not rows["mean Jaccard overlap"]["drifted"]
    assert result.drifted_share == 0.5 and result.drifted and not result.severe

    moved = prediction_drift(previous, lists(same, scores=100.0 + np.arange(8)), 8, cfg, tmp_path, seed=1)
    score = moved.rows.iloc[0]
    assert score["value"] == pytest.approx(ks_2samp(previous["score"], 100.0 + np.arange(8)).pvalue)
    assert score["drifted"] and moved.severe  # scores and concentration both moved


def test_lists_of_other_users_cannot_be_compared_and_are_severe(tmp_path):
    current = lists({u.upper(): items for u, items in PREVIOUS.items()})
    result = prediction_drift(lists(PREVIOUS), current, 8, CFG, tmp_path, seed=1)
    overlap = result.rows.iloc[3]
    assert math.isnan(overlap["value"]) and overlap["drifted"]
    assert result.severe and result.summary == "prediction: 1 of 4 checks drifted (no user has lists in both)"


def test_previous_lists_may_name_items_no_longer_in_the_catalogue(tmp_path):
    current = lists({u: ["a", "b"] for u in PREVIOUS})
    result = prediction_drift(lists(PREVIOUS), current, 4, CFG, tmp_path, seed=1)
    rows = {r["statistic"]: r for r in result.rows.to_dict("records")}
    assert rows["catalogue coverage"]["threshold"] == pytest.approx(0.5 * 8 / 8)
    assert rows["catalogue coverage"]["value"] == pytest.approx(2 / 4)


# --- shifted data ---------------------------------------------------------------


def test_shift_category_copies_its_purchases_in_whole_weeks(shop):
    events, items = shop
    events = pd.concat([events, events.head(3).assign(event_type="view", order_id=None)], ignore_index=True)
    shifted = shift_category(events, items, "dairy", factor=3, seed=3)

    dairy = events["item_id"].isin(items.loc[items["category"] == "dairy", "item_id"]) & (events["event_type"] == "purchase")
    copies = shifted.iloc[len(events):]
    pd.testing.assert_frame_equal(shifted.iloc[: len(events)], events)
    assert len(copies) == 2 * dairy.sum()
    assert set(copies["order_id"]) == {f"{o}-copy{c}" for o in events.loc[dairy, "order_id"] for c in (1, 2)}
    original = events.loc[dairy].set_index("order_id")["timestamp"]
    for copy_id, group in copies.groupby("order_id"):
        # one move per copied order, by whole weeks, so hours and weekdays stay as they were
        moves = set(np.sort(group["timestamp"]) - np.sort(original.loc[[copy_id.rsplit("-", 1)[0]]]))
        assert len(moves) == 1 and moves.pop() % np.timedelta64(7, "D") == np.timedelta64(0)
    assert copies["timestamp"].between(events["timestamp"].min(), events["timestamp"].max()).all()
    assert not shifted.duplicated().any()
    pd.testing.assert_frame_equal(shifted, shift_category(events, items, "dairy", factor=3, seed=3))
    pd.testing.assert_frame_equal(shift_category(events, items, "dairy", factor=1, seed=3), events)
    with pytest.raises(ValueError, match="no purchase"):
        shift_category(events, items, "toys", factor=3, seed=3)


def test_numbers_with_few_values_are_compared_as_categories(tmp_path):
    # a constant price and a 0/1 flag: evidently picks a test for categories, which a column
    # declared numeric would refuse
    reference = pd.DataFrame({"price": np.full(300, 2.5), "flag": np.r_[np.zeros(150), np.ones(150)], "x": np.arange(300.0)})
    current = reference.assign(flag=np.r_[np.zeros(100), np.ones(200)])
    rows = by_column(data_drift(reference, current, CFG, "items", tmp_path, seed=1))
    assert rows["flag"]["statistic"] == "Z-test p_value" and rows["flag"]["drifted"]
    assert not rows["price"]["drifted"] and not rows["x"]["drifted"]
