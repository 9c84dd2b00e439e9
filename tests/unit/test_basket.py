import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from recmill.data.interactions import basket_ids
from recmill.evaluation.basket import (
    buy_again_metrics,
    expected_f1,
    expected_f1_basket,
    expected_f1_baskets,
    f1,
    mean_f1,
    next_order_truth,
    repeat_last_basket,
    top_frequent_items,
)

# --- f1 and mean_f1 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "predicted, actual, expected",
    [
        ({"a", "b"}, {"b", "c", "d"}, Fraction(2, 5)),
        ({"a"}, {"a"}, 1),
        ({"a"}, {"b"}, 0),
        # empty prediction and empty truth both mean {"None"}
        (set(), set(), 1),
        ({"None"}, set(), 1),
        (set(), {"None"}, 1),
        ({"a", "None"}, set(), Fraction(2, 3)),
        ({"a"}, set(), 0),
        (set(), {"a"}, 0),
        ({"a", "None"}, {"a", "b"}, Fraction(1, 2)),
    ],
)
def test_f1(predicted, actual, expected):
    assert f1(predicted, actual) == pytest.approx(float(expected), abs=1e-15)


def test_mean_f1_averages_over_actual_users_and_missing_users_predict_none():
    predicted = {"u1": {"a"}, "u3": {"x"}}  # u3 has no truth and is ignored
    actual = {"u1": {"a", "b"}, "u2": {"None"}}  # u2 missing from predicted: {"None"} vs {"None"}
    assert mean_f1(predicted, actual) == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(ValueError):
        mean_f1(predicted, {})


# --- expected F1 by hand ------------------------------------------------------------

# p(a) = 0.9, p(b) = 0.2, none_probability = 0.1 * 0.8 = 0.08. Truth and its chance:
#   {a, b} 0.18, {a} 0.72, {b} 0.02, {None} 0.08
# E[F1 {a}]       = 0.18 * 2/3 + 0.72 * 1                                  = 21/25
# E[F1 {a, b}]    = 0.18 * 1 + 0.72 * 2/3 + 0.02 * 2/3                     = 101/150
# E[F1 {None}]    = 0.08 * 1                                               = 2/25
# E[F1 {a, None}] = 0.18 * 2/4 + 0.72 * 2/3 + 0.08 * 2/3                   = 187/300
# E[F1 {b}]       = 0.18 * 2/3 + 0.02 * 1                                  = 7/50
# E[F1 {a, b, None}] = 0.18 * 4/5 + 0.72 * 2/4 + 0.02 * 2/4 + 0.08 * 2/4  = 277/500
TWO = (["a", "b"], [0.9, 0.2])
TWO_EXPECTED = [
    (["a"], Fraction(21, 25)),
    (["a", "b"], Fraction(101, 150)),
    (["None"], Fraction(2, 25)),
    ([], Fraction(2, 25)),  # an empty basket is {"None"}
    (["a", "None"], Fraction(187, 300)),
    (["b"], Fraction(7, 50)),
    (["b", "a", "None"], Fraction(277, 500)),
]


@pytest.mark.parametrize("basket, expected", TWO_EXPECTED)
def test_expected_f1_by_hand(basket, expected):
    assert expected_f1(basket, *TWO) == pytest.approx(float(expected), abs=1e-15)


def test_expected_f1_with_a_separate_none_probability():
    # the "None" term of {a, None} becomes 0.5 * 2/3: 0.18 * 2/4 + 0.72 * 2/3 + 1/3 = 271/300
    assert expected_f1(["a", "None"], *TWO, none_probability=0.5) == pytest.approx(271 / 300, abs=1e-15)
    assert expected_f1(["a"], *TWO, none_probability=0.5) == pytest.approx(21 / 25, abs=1e-15)


def test_expected_f1_rejects_unknown_items():
    with pytest.raises(ValueError):
        expected_f1(["c"], *TWO)
    with pytest.raises(ValueError):
        expected_f1(["a"], ["a", "a"], [0.5, 0.5])
    with pytest.raises(ValueError):
        expected_f1(["a"], ["a", "None"], [0.5, 0.5])


@pytest.mark.parametrize(
    "items, probabilities, none_probability, expected",
    [
        (*TWO, None, ["a"]),  # 21/25 beats every other basket above
        (*TWO, 0.5, ["a", "None"]),  # 271/300 > 21/25
        (["a"], [0.5], None, ["a", "None"]),  # 2/3 against 1/2 for {a} or {None}
        (["a", "b"], [0.1, 0.1], None, ["None"]),  # 0.81
        (["a", "b", "c"], [0.3, 0.95, 0.9], None, ["b", "c"]),  # most probable first
    ],
)
def test_expected_f1_basket_by_hand(items, probabilities, none_probability, expected):
    assert expected_f1_basket(items, probabilities, none_probability) == expected


# --- against brute force --------------------------------------------------------------


def brute_force(p: np.ndarray, none_probability: float | None) -> dict[frozenset, float]:
    """Expected F1 of every basket (item indices, plus -1 for "None") over all 2^n truths."""
    n = len(p)
    sets = np.array(list(itertools.product([False, True], repeat=n)), dtype=bool).reshape(-1, n)
    chance = np.prod(np.where(sets, p, 1 - p), axis=1)
    nothing = ~sets.any(axis=1)
    if none_probability is not None:
        chance[nothing] = none_probability
    truth_size = np.maximum(sets.sum(axis=1), 1)
    shared = sets.astype(int) @ sets.T.astype(int)  # [basket, truth]
    out = {}
    for with_none in (False, True):
        hits = shared + (with_none & nothing)[None, :]
        size = sets.sum(axis=1) + with_none
        values = (2 * hits / (size[:, None] + truth_size[None, :])) @ chance
        for row, value in zip(sets, values):
            if row.any() or with_none:
                out[frozenset(np.flatnonzero(row)) | ({-1} if with_none else set())] = value
    return out


def random_case(rng):
    n = int(rng.integers(1, 9))
    p = rng.random(n) ** rng.choice([0.3, 1.0, 3.0])  # mostly high, uniform, or mostly low
    none_probability = None if rng.random() < 0.5 else float(rng.random())
    return [f"i{j}" for j in range(n)], p, none_probability


def as_indices(basket, items):
    return frozenset(items.index(i) if i != "None" else -1 for i in basket)


def test_expected_f1_basket_is_the_brute_force_maximum():
    rng = np.random.default_rng(7)
    for _ in range(200):
        items, p, none_probability = random_case(rng)
        values = brute_force(p, none_probability)
        chosen = expected_f1_basket(items, p, none_probability)
        assert values[as_indices(chosen, items)] == pytest.approx(max(values.values()), abs=1e-12)


def test_expected_f1_matches_brute_force_on_every_basket():
    rng = np.random.default_rng(8)
    for _ in range(20):
        items, p, none_probability = random_case(rng)
        for key, value in brute_force(p, none_probability).items():
            basket = [items[j] if j >= 0 else "None" for j in key]
            assert expected_f1(basket, items, p, none_probability) == pytest.approx(value, abs=1e-12)


def test_expected_f1_matches_averaging_f1_over_all_truths():
    items, p = ["a", "b", "c"], [0.7, 0.4, 0.1]
    for basket in (["a"], ["a", "c", "None"], ["None"]):
        total = 0.0
        for outcome in itertools.product([False, True], repeat=3):
            chance = np.prod([q if hit else 1 - q for q, hit in zip(p, outcome)])
            total += chance * f1(basket, {i for i, hit in zip(items, outcome) if hit})
        assert expected_f1(basket, items, p) == pytest.approx(total, abs=1e-15)


def test_max_items_limits_the_basket_but_every_item_counts():
    rng = np.random.default_rng(9)
    for _ in range(50):
        items, p, none_probability = random_case(rng)
        cap = int(rng.integers(1, len(items) + 1))
        order = np.argsort(-p, kind="stable")
        prefixes = [
            [items[j] for j in order[:k]] + (["None"] if with_none else [])
            for k in range(cap + 1)
            for with_none in (False, True)
            if k or with_none
        ]
        best = max(expected_f1(b, items, p, none_probability) for b in prefixes)
        chosen = expected_f1_basket(items, p, none_probability, max_items=cap)
        assert len(set(chosen) - {"None"}) <= cap
        assert expected_f1(chosen, items, p, none_probability) == pytest.approx(best, abs=1e-12)


def test_raising_a_chosen_items_probability_keeps_it_in_the_basket():
    rng = np.random.default_rng(10)
    for _ in range(100):
        n = int(rng.integers(1, 11))
        items, p = [f"i{j}" for j in range(n)], rng.random(n) ** rng.choice([0.3, 1.0, 3.0])
        none_probability = None if rng.random() < 0.5 else float(rng.random())
        for j, item in enumerate(items):
            if item in expected_f1_basket(items, p, none_probability):
                raised = p.copy()
                raised[j] += (1 - p[j]) * rng.random()
                assert item in expected_f1_basket(items, raised, none_probability)


# --- many users at once ---------------------------------------------------------------


def test_expected_f1_baskets_agrees_with_one_user_at_a_time():
    rng = np.random.default_rng(11)
    rows, none_probability = [], {}
    for u in range(40):
        n = int(rng.integers(1, 12))
        p = np.round(rng.random(n) ** 2, 1)  # rounding makes ties, which keep the given order
        rows += [(f"u{u}", f"x{j}", q) for j, q in zip(rng.permutation(30), p)]
        if u % 3 == 0:
            none_probability[f"u{u}"] = float(rng.random())
    predictions = pd.DataFrame(rows, columns=["user_id", "item_id", "probability"]).sample(frac=1, random_state=0)
    expected = {
        user: expected_f1_basket(list(g["item_id"]), g["probability"], none_probability.get(user), max_items=5)
        for user, g in predictions.groupby("user_id", sort=False)
    }
    assert expected_f1_baskets(predictions, none_probability, max_items=5) == expected


def test_expected_f1_baskets_rejects_bad_input():
    good = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "probability": [0.9, 0.2]})
    assert expected_f1_baskets(good) == {"u": ["a"]}
    with pytest.raises(ValueError):
        expected_f1_baskets(good.assign(item_id=["a", "a"]))
    with pytest.raises(ValueError):
        expected_f1_baskets(good.assign(item_id=["a", "None"]))
    with pytest.raises(ValueError):
        expected_f1_baskets(good.assign(probability=[1.5, 0.2]))


# --- baselines and truth ----------------------------------------------------------------


def events(rows):
    return pd.DataFrame(
        [(u, i, pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=m), o) for u, o, m, i in rows],
        columns=["user_id", "item_id", "timestamp", "order_id"],
    )


# u1: o1 (a, b, c), o2 (a, b, b again), o3 (b, d); u2: o4 (x, y), o5 (y). Rows out of time order.
HISTORY = events(
    [
        ("u1", "o3", 300, "d"),
        ("u1", "o3", 301, "b"),
        ("u1", "o1", 100, "a"),
        ("u1", "o1", 101, "b"),
        ("u1", "o1", 102, "c"),
        ("u1", "o2", 200, "a"),
        ("u1", "o2", 201, "b"),
        ("u1", "o2", 202, "b"),
        ("u2", "o5", 400, "y"),
        ("u2", "o4", 150, "y"),
        ("u2", "o4", 151, "x"),
    ]
)
NEXT = events(
    [
        ("u1", "o7", 700, "b"),  # a later order than o6: not the next one
        ("u1", "o6", 600, "a"),
        ("u1", "o6", 601, "e"),  # e is new to u1
        ("u2", "o8", 600, "z"),  # nothing bought before: {"None"}
        ("u3", "o9", 600, "a"),  # no history: left out
    ]
)


def test_repeat_last_basket():
    assert repeat_last_basket(HISTORY) == {"u1": {"b", "d"}, "u2": {"y"}}


@pytest.mark.parametrize(
    "n, expected",
    [
        (1, {"u1": {"b"}, "u2": {"y"}}),
        (2, {"u1": {"a", "b"}, "u2": {"x", "y"}}),
        # c and d were bought in one order each; d more recently
        (3, {"u1": {"a", "b", "d"}, "u2": {"x", "y"}}),
        # mean basket sizes: u1 (3 + 2 + 2) / 3 -> 2, u2 (2 + 1) / 2 = 1.5 -> 2
        (None, {"u1": {"a", "b"}, "u2": {"x", "y"}}),
    ],
)
def test_top_frequent_items(n, expected):
    assert top_frequent_items(HISTORY, n) == expected


def test_next_order_truth():
    assert next_order_truth(HISTORY, NEXT) == {"u1": {"a"}, "u2": {"None"}}


def test_baselines_scored_against_the_truth():
    truth = next_order_truth(HISTORY, NEXT)
    assert mean_f1(repeat_last_basket(HISTORY), truth) == 0.0
    # u1 {a, b} vs {a}: 2/3; u2 {x, y} vs {None}: 0
    assert mean_f1(top_frequent_items(HISTORY), truth) == pytest.approx(1 / 3)


def test_events_without_an_order_id_make_a_basket_of_their_day():
    start = pd.Timestamp("2026-01-01")
    ratings = HISTORY.assign(order_id=pd.NA, timestamp=start + (HISTORY["timestamp"] - start) / pd.Timedelta(minutes=1) * pd.Timedelta(days=1))
    # u1's last day holds b only (d at day 300, b at day 301)
    assert repeat_last_basket(ratings) == {"u1": {"b"}, "u2": {"y"}}
    assert list(basket_ids(ratings.head(2))) == ["day 2026-10-28", "day 2026-10-29"]


PROBABILITIES = pd.DataFrame(
    [("u1", "a", 0.8), ("u1", "b", 0.9), ("u1", "c", 0.1), ("u1", "d", 0.3), ("u2", "x", 0.2), ("u2", "y", 0.4), ("u9", "a", 0.5)],
    columns=["user_id", "item_id", "probability"],
)


def test_buy_again_metrics_by_hand():
    # o3 goes on in the held-out slice: a cut order is not the next one, o6 is
    held_out = pd.concat([NEXT, events([("u1", "o3", 302, "c")])], ignore_index=True)
    got = buy_again_metrics(PROBABILITIES, HISTORY, held_out)
    # labels: u1 a -> 1; b, c, d, u2 x, y -> 0 (u9 has no next order: left out)
    # AUC: a (0.8) is above 4 of the 5 negatives
    assert got["auc"] == pytest.approx(0.8)
    expected_loss = -np.mean(np.log([0.8, 0.1, 0.9, 0.7, 0.8, 0.6]))
    assert got["log_loss"] == pytest.approx(expected_loss)
    u1 = expected_f1_basket(["a", "b", "c", "d"], [0.8, 0.9, 0.1, 0.3])
    u2 = expected_f1_basket(["x", "y"], [0.2, 0.4])
    assert got["basket_f1"] == pytest.approx((f1(u1, {"a"}) + f1(u2, {"None"})) / 2)
    assert got["basket_f1_repeat_last_basket"] == 0.0
    assert got["basket_f1_top_frequent"] == pytest.approx(1 / 3)
    assert got["basket_users"] == 2


def test_buy_again_auc_and_log_loss_agree_with_independent_formulas():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    users = [f"u{i}" for i in range(60)]
    history = events([(u, f"o{u}", 1, item) for u in users for item in "abcd"])
    held_out = events([(u, f"n{u}", 5, item) for u in users for item in "abcd" if rng.random() < 0.4])
    probabilities = pd.DataFrame(
        [(u, item, rng.uniform(0.01, 0.99)) for u in users for item in "abcd"], columns=["user_id", "item_id", "probability"]
    )
    got = buy_again_metrics(probabilities, history, held_out)
    truth = set(zip(held_out["user_id"], held_out["item_id"]))
    in_scope = probabilities[probabilities["user_id"].isin(held_out["user_id"])]
    y = np.array([pair in truth for pair in zip(in_scope["user_id"], in_scope["item_id"])])
    p = in_scope["probability"].to_numpy()
    u = mannwhitneyu(p[y], p[~y]).statistic  # AUC is the Mann-Whitney U over positives x negatives
    assert got["auc"] == pytest.approx(u / (y.sum() * (~y).sum()))
    assert got["log_loss"] == pytest.approx(-np.mean(np.where(y, np.log(p), np.log(1 - p))))
