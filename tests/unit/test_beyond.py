import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist

from recmill.evaluation.beyond import (
    activity_slices,
    beyond_accuracy,
    compare_to_baseline,
    diversity,
    equal_opportunity_gap,
    exposure_gap,
    item_vectors,
    long_tail_items,
    novelty,
    personalisation,
    popularity_decile_recall,
    serendipity,
)

R2 = 1 / math.sqrt(2)

# a: (x, p), b: (x, q), c: (y, p); d has no attribute, e only a blank one
ITEMS = pd.DataFrame(
    {
        "item_id": ["a", "b", "c", "d", "e"],
        "category": ["x", "x", "y", None, " "],
        "brand": ["p", "q", "p", None, np.nan],
        "price": [1.0, 2.0, 3.0, 4.0, 5.0],  # not an attribute column
    }
)


# --- item_vectors -----------------------------------------------------------------


def test_item_vectors_one_hot_normalised():
    ids, matrix = item_vectors(ITEMS)
    assert list(ids) == ["a", "b", "c", "d", "e"]
    # features: category=x, category=y, brand=p, brand=q
    expected = [
        [R2, 0, R2, 0],
        [R2, 0, 0, R2],
        [0, R2, R2, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ]
    np.testing.assert_allclose(matrix.toarray(), expected, atol=1e-15)


def test_item_vectors_same_value_in_two_columns_are_two_features():
    items = pd.DataFrame({"item_id": ["a", "b"], "category": ["Dairy", "Milk"], "department": ["Dairy", "Dairy"]})
    _, matrix = item_vectors(items)
    # a: category=Dairy, department=Dairy; b: category=Milk, department=Dairy -> cos 1/2
    assert matrix.shape == (2, 3)
    assert (matrix @ matrix.T).toarray()[0, 1] == pytest.approx(0.5)


def test_item_vectors_without_attribute_columns_are_zero():
    ids, matrix = item_vectors(ITEMS[["item_id", "price"]])
    assert list(ids) == ["a", "b", "c", "d", "e"]
    assert matrix.shape == (5, 0)


# --- diversity --------------------------------------------------------------------

# cos(a, b) = 1/2, cos(a, c) = 1/2, cos(b, c) = 0
RANKED_DIV = {
    "u1": ["a", "b", "c"],  # distances 1/2, 1/2, 1 -> 2/3
    "u2": ["a", "d", "zz", "b"],  # d has no vector, zz unknown: only (a, b) -> 1/2
    "u3": ["c"],  # one item: left out
    "u4": [],
}


def test_diversity_hand_computed():
    ids, matrix = item_vectors(ITEMS)
    assert diversity(RANKED_DIV, 4, ids, matrix) == pytest.approx((2 / 3 + 1 / 2) / 2)
    # k = 2: u1 (a, b) -> 1/2; u2 (a, d) has one usable item -> left out
    assert diversity(RANKED_DIV, 2, ids, matrix) == pytest.approx(1 / 2)


def test_diversity_repeated_item_counts_once():
    ids, matrix = item_vectors(ITEMS)
    # top 3 is (a, a, b): the distinct items a, b -> 1/2, not the mean over three pairs
    assert diversity({"u": ["a", "a", "b", "c"]}, 3, ids, matrix) == pytest.approx(1 / 2)


def test_diversity_undefined_is_nan():
    ids, matrix = item_vectors(ITEMS)
    assert math.isnan(diversity({}, 5, ids, matrix))
    assert math.isnan(diversity({"u": ["a", "d", "zz"]}, 5, ids, matrix))
    no_attributes = item_vectors(ITEMS[["item_id"]])
    assert math.isnan(diversity({"u": ["a", "b"]}, 5, *no_attributes))


def test_diversity_agrees_with_scipy_pdist():
    rng = np.random.default_rng(0)
    n = 60
    items = pd.DataFrame(
        {
            "item_id": [f"i{j}" for j in range(n)],
            "category": rng.choice(["x", "y", "z", None], n),
            "aisle": rng.choice(["p", "q", "r", "s", "t"], n),
            "brand": rng.choice(["b1", "b2", None], n),
        }
    )
    ids, matrix = item_vectors(items)
    dense = matrix.toarray()
    ranked = {f"u{j}": list(rng.choice(ids, rng.integers(0, 12), replace=False)) for j in range(40)}
    k = 8
    per_user = []
    for items_of_user in ranked.values():
        rows = [int(i[1:]) for i in items_of_user[:k]]
        if len(rows) >= 2:
            per_user.append(pdist(dense[rows], metric="cosine").mean())
    assert diversity(ranked, k, ids, matrix) == pytest.approx(np.mean(per_user), abs=1e-12)


# --- novelty ----------------------------------------------------------------------

# 4 users: p(a) = 1 -> 0 bits, p(b) = 1/2 -> 1 bit, p(c) = 1/4 -> 2 bits,
# d nobody has -> p = 1/4 -> 2 bits
POP_NOV = {"a": 4, "b": 2, "c": 1}


def test_novelty_hand_computed():
    ranked = {"u1": ["a", "b"], "u2": ["c", "d", "a"], "u3": []}
    # k = 2: u1 (0 + 1) / 2 = 0.5, u2 (2 + 2) / 2 = 2, u3 empty: left out -> 1.25
    assert novelty(ranked, 2, POP_NOV, n_users=4) == pytest.approx(1.25)
    # k = 3: u2 (2 + 2 + 0) / 3 -> (0.5 + 4/3) / 2
    assert novelty(ranked, 3, pd.Series(POP_NOV), n_users=4) == pytest.approx((0.5 + 4 / 3) / 2)


def test_novelty_edge_cases():
    assert math.isnan(novelty({"u": []}, 5, POP_NOV, 4))
    assert novelty({"u": ["a"]}, 5, POP_NOV, 4) == 0
    with pytest.raises(ValueError, match="exceeds n_users"):
        novelty({"u": ["a"]}, 5, POP_NOV, 3)


# --- serendipity ------------------------------------------------------------------


def test_serendipity_hand_computed():
    truth = {"u1": {"a", "c", "e"}, "u2": {"b"}, "u3": set(), "u4": {"z"}}
    ranked = {"u1": ["a", "b", "c", "d"], "u2": ["b", "a"]}
    baseline = {"u1": ["a", "b", "x", "y"], "u2": ["c", "d"]}
    # k = 3: u1 hits a, c; a is in the baseline's top 3 -> 1/3; u2 hit b, not expected -> 1/3;
    # u3 has no relevant item: left out; u4 has no list -> 0
    assert serendipity(ranked, truth, 3, baseline) == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    # with no baseline list every hit is unexpected: u1 a, c -> 2/3
    assert serendipity(ranked, {"u1": truth["u1"]}, 3, {}) == pytest.approx(2 / 3)
    assert math.isnan(serendipity(ranked, {}, 3, baseline))


# --- personalisation --------------------------------------------------------------


def brute_personalisation(ranked, k):
    tops = [set(items[:k]) for items in ranked.values() if items]
    overlaps = [len(x & y) / k for x, y in itertools.combinations(tops, 2)]
    return 1 - np.mean(overlaps)


def test_personalisation_hand_computed():
    ranked = {"u1": ["a", "b", "c"], "u2": ["a", "b", "d"], "u3": ["e", "f", "g"], "u4": []}
    # overlaps u1-u2 2/3, u1-u3 0, u2-u3 0 (u4 is empty: left out) -> 1 - (2/3) / 3
    assert personalisation(ranked, 3, sample=100, seed=0) == pytest.approx(7 / 9)
    assert personalisation({"u": ["a", "b"], "v": ["a", "b"]}, 2, 100, 0) == pytest.approx(0)
    assert personalisation({"u": ["a"], "v": ["b"]}, 2, 100, 0) == pytest.approx(1)


def test_personalisation_agrees_with_brute_force():
    rng = np.random.default_rng(1)
    catalogue = [f"i{j}" for j in range(30)]
    ranked = {f"u{j}": list(rng.choice(catalogue, rng.integers(1, 10), replace=False)) for j in range(50)}
    for k in (1, 5, 10):
        assert personalisation(ranked, k, sample=1000, seed=0) == pytest.approx(brute_personalisation(ranked, k), abs=1e-12)


def test_personalisation_sample_is_seeded():
    ranked = {"u1": ["a", "b", "c"], "u2": ["a", "b", "d"], "u3": ["e", "f", "g"]}
    values = {round(personalisation(ranked, 3, sample=2, seed=s), 12) for s in range(20)}
    # any two of the three users: 1 - 2/3 for (u1, u2), 1 for the others
    assert values == {round(1 / 3, 12), 1.0}
    assert personalisation(ranked, 3, 2, seed=7) == personalisation(dict(reversed(ranked.items())), 3, 2, seed=7)


def test_personalisation_edge_cases():
    assert math.isnan(personalisation({}, 3, 10, 0))
    assert math.isnan(personalisation({"u": ["a", "b"], "v": []}, 3, 10, 0))
    with pytest.raises(ValueError, match="sample"):
        personalisation({"u": ["a"], "v": ["b"]}, 3, 1, 0)


# --- long tail --------------------------------------------------------------------


def test_long_tail_items_hand_computed():
    pop = {"a": 50, "b": 30, "c": 10, "d": 5, "e": 5, "f": 0}
    # a + b = 80 of 100 reach 0.8: the head is {a, b}
    assert long_tail_items(pop, 0.8) == {"c", "d", "e", "f"}
    # 0.81 needs c too: 90
    assert long_tail_items(pd.Series(pop), 0.81) == {"d", "e", "f"}


def test_long_tail_share_reached_exactly_despite_rounding():
    # 0.28 * 25 is 7.000000000000001 in floating point; a + b = 7 must still reach it
    # (b .. h tie at 3, so b comes first by id)
    pop = {"a": 4} | {item: 3 for item in "bcdefgh"}
    assert long_tail_items(pop, 0.28) == set("cdefgh")


def test_long_tail_rejects_bad_input():
    with pytest.raises(ValueError, match="no interactions"):
        long_tail_items({"a": 0}, 0.8)
    with pytest.raises(ValueError, match="share"):
        long_tail_items({"a": 1}, 1.0)


# --- fairness ---------------------------------------------------------------------

GROUPS = {"u1": "g1", "u2": "g1", "u3": "g2", "u4": "g2", "u5": "g3", "u7": None}


def test_exposure_gap_hand_computed():
    ranked = {
        "u1": ["a", "c"],  # tail share 1/2
        "u2": ["c", "d"],  # 1 -> g1: 3/4
        "u3": ["a", "b"],  # 0
        "u4": ["a", "c", "d"],  # top 2 (a, c): 1/2 -> g2: 1/4
        "u5": ["c"],  # 1 -> g3, a single user: reported, not in the gap
        "u6": ["c"],  # no group
        "u7": ["c"],  # no group
    }
    gap, per_group = exposure_gap(ranked, 2, GROUPS, tail={"c", "d"}, min_users=2)
    assert gap == pytest.approx(3 / 4 - 1 / 4)
    assert per_group == {
        "g1": {"value": pytest.approx(3 / 4), "users": 2},
        "g2": {"value": pytest.approx(1 / 4), "users": 2},
        "g3": {"value": 1.0, "users": 1},
    }
    # with the default min_users (20) no group counts: no gap
    assert math.isnan(exposure_gap(ranked, 2, GROUPS, {"c", "d"})[0])


def test_equal_opportunity_gap_hand_computed():
    truth = {"u1": {"a", "b"}, "u2": {"c"}, "u3": {"a"}, "u4": {"x", "y"}, "u5": {"a"}, "u6": set()}
    ranked = {"u1": ["a", "z"], "u2": ["c"], "u3": ["b", "a"], "u5": ["a"]}
    # k = 1: u1 1/2, u2 1 -> g1 3/4; u3 0, u4 (no list) 0 -> g2 0; g3 u5 1 (too small)
    gap, per_group = equal_opportunity_gap(ranked, truth, 1, GROUPS, min_users=2)
    assert gap == pytest.approx(3 / 4)
    assert per_group["g1"] == {"value": pytest.approx(3 / 4), "users": 2}
    assert per_group["g2"] == {"value": 0.0, "users": 2}
    assert per_group["g3"] == {"value": 1.0, "users": 1}
    # min_users 1: g3 counts too -> 1 - 0
    assert equal_opportunity_gap(ranked, truth, 1, GROUPS, min_users=1)[0] == pytest.approx(1.0)


# --- slices -----------------------------------------------------------------------


def test_activity_slices_boundaries():
    counts = {"a": 0, "b": 9, "c": 10, "d": 49, "e": 50, "f": 500}
    slices = activity_slices(counts, ["new", "a", "b", "c", "d", "e", "f"], light=10, heavy=50)
    assert slices == {
        "new": "new",
        "a": "new",
        "b": "light",
        "c": "medium",
        "d": "medium",
        "e": "heavy",
        "f": "heavy",
    }
    with pytest.raises(ValueError, match="light"):
        activity_slices(counts, ["a"], light=60, heavy=50)


def test_popularity_decile_recall_hand_computed():
    # i00 .. i19 with popularity 20 .. 1: two items per decile (i05 is decile 3);
    # zz (popularity 0) and new (absent) are decile 10
    pop = {f"i{r:02d}": 20 - r for r in range(20)} | {"zz": 0}
    truth = {"u1": {"i00", "i05", "i19", "new"}, "u2": {"i01", "zz"}}
    ranked = {"u1": ["i00", "i19", "x"], "u2": ["zz", "i05"]}
    # decile 1: u1-i00 hit, u2-i01 miss -> 1/2; decile 3: u1-i05 miss (i05 is u2's) -> 0;
    # decile 10: u1-i19 hit, u1-new miss, u2-zz hit -> 2/3
    assert popularity_decile_recall(ranked, truth, 2, pop) == {1: 0.5, 3: 0.0, 10: pytest.approx(2 / 3)}


def test_popularity_deciles_break_ties_by_id():
    # ten items of equal popularity: one per decile in id order
    pop = {f"i{r}": 1 for r in range(10)}
    truth = {"u": {"i0", "i9"}}
    assert popularity_decile_recall({"u": ["i9"]}, truth, 1, pop) == {1: 0.0, 10: 1.0}
    assert popularity_decile_recall({}, {}, 1, pop) == {}


# --- baseline comparison ----------------------------------------------------------


def test_compare_to_baseline():
    metrics = {"ndcg@10": 0.3, "recall@10": 0.2, "coverage@10": 0.5, "novelty@10": math.nan, "gap": -1.0, "x": 1.0}
    baseline = {"ndcg@10": 0.2, "recall@10": 0.0, "coverage@10": 0.8, "novelty@10": 3.0, "gap": -2.0, "y": 2.0}
    assert compare_to_baseline(metrics, baseline) == {
        "ndcg@10": pytest.approx(50.0),  # (0.3 - 0.2) / 0.2
        "recall@10": None,  # zero baseline
        "coverage@10": pytest.approx(-37.5),  # (0.5 - 0.8) / 0.8
        "novelty@10": None,  # NaN value
        "gap": pytest.approx(50.0),  # (-1 - -2) / |-2|
    }


# --- beyond_accuracy --------------------------------------------------------------


def test_beyond_accuracy_calls_each_metric():
    ids, matrix = item_vectors(ITEMS)
    ranked = {"u1": ["a", "b", "c"], "u2": ["a", "b", "d"]}
    truth = {"u1": {"c"}, "u2": {"a"}}
    baseline = {"u1": ["a", "b", "c"], "u2": ["b", "c", "d"]}
    pop = {"a": 2, "b": 1, "c": 1, "d": 1}
    out = beyond_accuracy(
        ranked, truth, 3, ids=ids, matrix=matrix, popularity=pop, n_users=2, baseline_ranked=baseline, sample=10, seed=0
    )
    assert out == {
        # u1 (a, b, c) 2/3; u2 (a, b) 1/2
        "diversity@3": pytest.approx((2 / 3 + 1 / 2) / 2),
        # u1 (0 + 1 + 1) / 3, u2 the same
        "novelty@3": pytest.approx(2 / 3),
        # u1: c is in the baseline -> 0; u2: a is not -> 1/3
        "serendipity@3": pytest.approx(1 / 6),
        # one pair sharing a, b -> 1 - 2/3
        "personalisation@3": pytest.approx(1 / 3),
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda: diversity({}, 0, *item_vectors(ITEMS)),
        lambda: novelty({}, 0, {}, 1),
        lambda: serendipity({}, {}, 0, {}),
        lambda: personalisation({}, 0, 10, 0),
        lambda: exposure_gap({}, 0, {}, set()),
        lambda: popularity_decile_recall({}, {}, 0, {}),
    ],
)
def test_bad_k_is_rejected(call):
    with pytest.raises(ValueError, match="k must be"):
        call()
