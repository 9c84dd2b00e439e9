import math
import random

import numpy as np
import pytest
import pytrec_eval

from recmill.evaluation.metrics import (
    METRICS,
    average_precision_at_k,
    catalogue_coverage,
    evaluate,
    hit_rate_at_k,
    mean_over_users,
    ndcg_at_k,
    per_user,
    per_user_scores,
    precision_at_k,
    recall_at_k,
    reciprocal_rank_at_k,
)

L2 = math.log2
RANKED = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "e", "z"}  # hits at ranks 2 and 5; z is never recommended

PER_LIST = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": reciprocal_rank_at_k,
}

# k -> expected value of each metric for RANKED / RELEVANT
EXPECTED = {
    5: {
        "precision": 2 / 5,
        "recall": 2 / 3,
        "ndcg": (1 / L2(3) + 1 / L2(6)) / (1 + 1 / L2(3) + 1 / L2(4)),
        "map": (1 / 2 + 2 / 5) / 3,
        "hit_rate": 1,
        "mrr": 1 / 2,
    },
    # k smaller than the list: only the hit at rank 2 counts
    3: {
        "precision": 1 / 3,
        "recall": 1 / 3,
        "ndcg": (1 / L2(3)) / (1 + 1 / L2(3) + 1 / L2(4)),
        "map": (1 / 2) / 3,
        "hit_rate": 1,
        "mrr": 1 / 2,
    },
    # k < |relevant|: the ideal list and the AP denominator have only k hits
    2: {
        "precision": 1 / 2,
        "recall": 1 / 3,
        "ndcg": (1 / L2(3)) / (1 + 1 / L2(3)),
        "map": (1 / 2) / 2,
        "hit_rate": 1,
        "mrr": 1 / 2,
    },
    # no hit in the top 1
    1: {"precision": 0, "recall": 0, "ndcg": 0, "map": 0, "hit_rate": 0, "mrr": 0},
    # k longer than the list: precision still divides by k
    10: {
        "precision": 2 / 10,
        "recall": 2 / 3,
        "ndcg": (1 / L2(3) + 1 / L2(6)) / (1 + 1 / L2(3) + 1 / L2(4)),
        "map": (1 / 2 + 2 / 5) / 3,
        "hit_rate": 1,
        "mrr": 1 / 2,
    },
}


@pytest.mark.parametrize("k", sorted(EXPECTED))
@pytest.mark.parametrize("name", sorted(PER_LIST))
def test_per_list_hand_computed(name, k):
    assert PER_LIST[name](RELEVANT, RANKED, k) == pytest.approx(EXPECTED[k][name], abs=1e-12)


@pytest.mark.parametrize("name", sorted(PER_LIST))
def test_no_hits_scores_zero(name):
    assert PER_LIST[name]({"x", "y"}, RANKED, 5) == 0


@pytest.mark.parametrize("name", ["ndcg", "map", "hit_rate", "mrr"])
def test_perfect_list_scores_one(name):
    assert PER_LIST[name]({"b", "e"}, ["e", "b", "a"], 3) == pytest.approx(1, abs=1e-12)


def test_relevant_may_be_any_collection():
    assert recall_at_k(["b", "e", "z", "b"], RANKED, 5) == pytest.approx(2 / 3)


def test_repeated_item_counts_once_and_keeps_its_slot():
    ranked = ["b", "b", "e"]
    relevant = {"b", "e"}
    # top 2 is b, b: one hit, e at rank 3 is not pulled in
    assert precision_at_k(relevant, ranked, 2) == pytest.approx(1 / 2)
    assert recall_at_k(relevant, ranked, 2) == pytest.approx(1 / 2)
    assert ndcg_at_k(relevant, ranked, 2) == pytest.approx(1 / (1 + 1 / L2(3)))
    assert average_precision_at_k(relevant, ranked, 3) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert precision_at_k(relevant, ranked, 3) == pytest.approx(2 / 3)


@pytest.mark.parametrize("fn", PER_LIST.values())
def test_per_list_rejects_empty_relevant_and_bad_k(fn):
    with pytest.raises(ValueError, match="relevant"):
        fn(set(), RANKED, 5)
    with pytest.raises(ValueError, match="k must be"):
        fn(RELEVANT, RANKED, 0)


# --- aggregates -----------------------------------------------------------------

TRUTH = {
    "u1": RELEVANT,
    "u2": {"a"},
    "u3": set(),  # nothing held out: not scored
    "u4": {"q"},  # no recommendations: scores 0
}
RECS = {
    "u1": RANKED,
    "u2": ["c", "a"],
    "u5": ["a", "f"],  # not in truth: ignored by per-user metrics, counted by coverage
}


def test_per_user_scores_users_with_relevant_items():
    assert per_user("precision", TRUTH, RECS, 2) == pytest.approx({"u1": 1 / 2, "u2": 1 / 2, "u4": 0})
    assert per_user("mrr", TRUTH, RECS, 5) == pytest.approx({"u1": 1 / 2, "u2": 1 / 2, "u4": 0})


def test_per_user_scores_are_per_user_at_every_metric_and_k_from_one_pass():
    names = ["precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage"]
    scores = per_user_scores(TRUTH, RECS, names, [1, 2, 5])
    assert list(scores) == [(m, k) for m in names if m != "coverage" for k in (1, 2, 5)]
    for (name, k), by_user in scores.items():
        assert by_user == per_user(name, TRUTH, RECS, k)
    assert scores["precision", 2] == pytest.approx({"u1": 1 / 2, "u2": 1 / 2, "u4": 0})


def test_mean_over_users():
    assert mean_over_users("recall", TRUTH, RECS, 5) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert mean_over_users("hit_rate", TRUTH, RECS, 1) == pytest.approx(0)


def test_per_user_rejects_coverage_and_empty_truth():
    with pytest.raises(ValueError, match="coverage"):
        per_user("coverage", TRUTH, RECS, 5)
    with pytest.raises(ValueError, match="no user"):
        mean_over_users("ndcg", {"u3": set()}, RECS, 5)


def test_catalogue_coverage():
    recs = {"u1": ["a", "b", "c"], "u2": ["c", "d"], "u3": ["a", "a", "e"]}
    assert catalogue_coverage(recs, 2, 10) == pytest.approx(4 / 10)  # {a, b, c, d}
    assert catalogue_coverage(recs, 1, 10) == pytest.approx(2 / 10)  # {a, c}
    assert catalogue_coverage(recs, 3, 5) == pytest.approx(1)
    assert catalogue_coverage({}, 3, 5) == 0
    with pytest.raises(ValueError):
        catalogue_coverage(recs, 2, 0)


# --- cross-check against pytrec_eval --------------------------------------------


@pytest.fixture(scope="module")
def random_set():
    rng = random.Random(7)
    items = [f"i{n:02d}" for n in range(30)]
    truth, recs = {}, {}
    for u in range(50):
        user = f"u{u:02d}"
        truth[user] = set(rng.sample(items, rng.randint(1, 12)))
        recs[user] = rng.sample(items, 20)
    return truth, recs


def _trec(truth, recs, measures):
    qrel = {u: {i: 1 for i in rel} for u, rel in truth.items()}
    # distinct decreasing scores so trec_eval's tie-breaking cannot reorder a list
    run = {u: {item: float(len(ranked) - r) for r, item in enumerate(ranked)} for u, ranked in recs.items()}
    return pytrec_eval.RelevanceEvaluator(qrel, measures).evaluate(run)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_agrees_with_pytrec_eval(random_set, k):
    truth, recs = random_set
    ref = _trec(truth, recs, {f"P.{k}", f"recall.{k}", f"ndcg_cut.{k}", f"map_cut.{k}"})
    # recip_rank has no cutoff in trec_eval, so give it the run cut to k
    rr = _trec(truth, {u: r[:k] for u, r in recs.items()}, {"recip_rank"})

    expected = {
        "precision": {u: ref[u][f"P_{k}"] for u in truth},
        "recall": {u: ref[u][f"recall_{k}"] for u in truth},
        "ndcg": {u: ref[u][f"ndcg_cut_{k}"] for u in truth},
        # trec_eval divides AP by |relevant|; ours divides by min(|relevant|, k)
        "map": {u: ref[u][f"map_cut_{k}"] * len(truth[u]) / min(len(truth[u]), k) for u in truth},
        "mrr": {u: rr[u]["recip_rank"] for u in truth},
    }
    assert any(len(rel) > k for rel in truth.values())  # the rescaling above is exercised
    for name, want in expected.items():
        got = per_user(name, truth, recs, k)
        assert got.keys() == want.keys()
        for u in want:
            assert got[u] == pytest.approx(want[u], abs=1e-9), (name, u)
            assert PER_LIST[name](truth[u], recs[u], k) == pytest.approx(want[u], abs=1e-9), (name, u)
        mean = sum(want.values()) / len(want)
        assert mean_over_users(name, truth, recs, k) == pytest.approx(mean, abs=1e-9), name


# --- registry and evaluate() ----------------------------------------------------


def test_registry_names_and_kinds():
    assert set(METRICS) == {"precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage"}
    assert {n for n, m in METRICS.items() if not m.per_user} == {"coverage"}
    assert all(m.name == n for n, m in METRICS.items())
    assert METRICS["map"].fn is average_precision_at_k


def test_evaluate_returns_requested_rows_in_order(random_set):
    truth, recs = random_set
    rows = evaluate(truth, recs, ["ndcg", "coverage", "precision"], [10, 1], catalogue_size=40)
    assert [(r["metric"], r["k"]) for r in rows] == [
        ("ndcg", 10), ("ndcg", 1), ("coverage", 10), ("coverage", 1), ("precision", 10), ("precision", 1),
    ]
    assert all(set(r) == {"metric", "k", "value"} and isinstance(r["value"], float) for r in rows)
    for r in rows:
        if r["metric"] == "coverage":
            assert r["value"] == catalogue_coverage(recs, r["k"], 40)
        else:
            assert r["value"] == pytest.approx(mean_over_users(r["metric"], truth, recs, r["k"]), abs=1e-12)


def test_evaluate_hand_computed():
    rows = evaluate(TRUTH, RECS, ["map", "coverage"], [2], catalogue_size=8)
    assert rows == [
        {"metric": "map", "k": 2, "value": pytest.approx(((1 / 2) / 2 + (1 / 2) / 1 + 0) / 3)},
        {"metric": "coverage", "k": 2, "value": pytest.approx(4 / 8)},  # a, b, c, f
    ]


def test_evaluate_unknown_metric_names_it():
    with pytest.raises(ValueError, match=r"'auc'.*known.*ndcg"):
        evaluate(TRUTH, RECS, ["ndcg", "auc"], [5], catalogue_size=10)


def test_evaluate_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        evaluate(TRUTH, RECS, ["ndcg"], [5, 0], catalogue_size=10)


# --- rating prediction ----------------------------------------------------------

from recmill.evaluation.metrics import mae, rmse  # noqa: E402


def test_rmse_and_mae_by_hand():
    actual, predicted = [4, 2, 5], [3.5, 2, 3]  # errors 0.5, 0, 2
    assert rmse(actual, predicted) == pytest.approx(math.sqrt((0.25 + 0 + 4) / 3))
    assert mae(actual, predicted) == pytest.approx(2.5 / 3)


def test_rating_metrics_agree_with_scikit_learn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    rng = np.random.default_rng(3)
    actual, predicted = rng.integers(1, 6, 200), rng.uniform(1, 5, 200)
    assert rmse(actual, predicted) == pytest.approx(math.sqrt(mean_squared_error(actual, predicted)), abs=1e-12)
    assert mae(actual, predicted) == pytest.approx(mean_absolute_error(actual, predicted), abs=1e-12)


def test_rating_metrics_reject_mismatched_input():
    with pytest.raises(ValueError, match="equally long"):
        rmse([1, 2], [1])


def test_sample_users_keeps_all_up_to_the_limit_then_a_seeded_subset():
    from recmill.evaluation.holdout import sample_users

    users = [f"u{i}" for i in range(100)]
    assert sample_users(users, None, 1) == sorted(users) == sample_users(users + users, 100, 1)
    sample = sample_users(users, 30, 7)
    assert len(sample) == 30 and set(sample) <= set(users) and sample == sorted(sample)
    assert sample == sample_users(reversed(users), 30, 7)  # the order given does not matter
    assert sample != sample_users(users, 30, 8)
