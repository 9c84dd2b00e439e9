import copy

import numpy as np
import pandas as pd
import pytest

from recmill.config import InteractionsConfig, MFConfig
from recmill.data.interactions import InteractionData
from recmill.errors import RecmillError
from recmill.models import mf
from recmill.models.mf import MFRecommender, confidence, fold_in, rating_matrix
from tests.models.contract import RecommenderContract, make_data

SMALL = MFConfig(factors=8, epochs=30, learning_rate=0.05, regularization=0.05, batch_size=64)


class TestMFContract(RecommenderContract):
    model_class = MFRecommender
    config = SMALL
    refresh_reproduces_fit = False


def events_frame(rows) -> pd.DataFrame:
    """(user, item, event_type, value) tuples -> canonical events, one hour apart."""
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "value"])
    events["timestamp"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(len(events)), unit="h")
    return events


def ratings_data() -> InteractionData:
    """Everyone who rates 'good' gives it 5 and 'bad' 1; 'fan' gives 5 to all they rate, 'grump' 1."""
    rows = [(u, "good", "rating", 5.0) for u in ("u1", "u2", "u3", "u4")]
    rows += [(u, "bad", "rating", 1.0) for u in ("u1", "u2", "u3", "u4")]
    rows += [(u, m, "rating", r) for u, m, r in [("u1", "m1", 3), ("u2", "m1", 4), ("u3", "m2", 2), ("u4", "m2", 3)]]
    rows += [("fan", m, "rating", 5.0) for m in ("m1", "m2", "m3")]
    rows += [("grump", m, "rating", 1.0) for m in ("m1", "m2", "m3")]
    events = events_frame(rows)
    items = pd.DataFrame({"item_id": ["good", "bad", "m1", "m2", "m3"]})
    return InteractionData.build(events, items, pd.DataFrame({"user_id": []}), InteractionsConfig())


@pytest.fixture(scope="module")
def rated():
    return MFRecommender(MFConfig(factors=2, epochs=200, learning_rate=0.05, regularization=0.01, batch_size=4), seed=1).fit(ratings_data())


@pytest.fixture(scope="module")
def groups():
    return make_data()


def test_explicit_biases(rated):
    assert bool(rated.explicit_)
    user_bias = dict(zip(rated.user_ids_, rated.user_bias_))
    item_bias = dict(zip(rated.item_ids_, rated.item_bias_))
    assert user_bias["fan"] > 1 > -1 > user_bias["grump"]
    assert item_bias["good"] > 1 > -1 > item_bias["bad"]
    fan, grump, new = rated.predict(["fan", "fan", "grump", "grump", "new", "new"], ["good", "bad"] * 3).reshape(3, 2)
    assert fan[0] > fan[1] + 1 and grump[0] > grump[1] and new[0] > new[1] + 3


def test_predict_unknown_users_and_items(rated):
    mean = np.mean([5] * 4 + [1] * 4 + [3, 4, 2, 3] + [5] * 3 + [1] * 3)
    assert float(rated.global_mean_) == pytest.approx(mean)
    item_bias = dict(zip(rated.item_ids_, rated.item_bias_))
    user_bias = dict(zip(rated.user_ids_, rated.user_bias_))
    pred = rated.predict(["nobody", "nobody", "u1"], ["nothing", "m1", "nothing"])
    np.testing.assert_allclose(pred, [mean, mean + item_bias["m1"], mean + user_bias["u1"]], rtol=1e-6)


def test_explicit_predictions_stay_in_the_rating_range(rated):
    users, items = np.meshgrid(rated.user_ids_, rated.item_ids_)
    pred = rated.predict(users.ravel(), items.ravel())
    assert pred.min() >= 1 and pred.max() <= 5
    assert rated._score(np.arange(len(rated.user_ids_))).max() > 5  # ranking scores are not clipped


def test_latest_rating_counts():
    events = events_frame([("a", "x", "rating", 2.0), ("a", "x", "rating", 4.0), ("a", "y", "purchase", 1.0), ("b", "x", "rating", 3.0)])
    events.loc[0, "timestamp"] += pd.Timedelta(days=1)  # the 2 is the later rating
    assert rating_matrix(events, ["a", "b"], ["x", "y"]).toarray().tolist() == [[2, 0], [3, 0]]


def test_predict_needs_pairs(rated):
    with pytest.raises(RecmillError, match="as many items as users"):
        rated.predict(["u1", "u2"], ["good"])


def test_feedback_modes(groups):
    assert not MFRecommender(SMALL).fit(groups).explicit_  # purchases only: implicit
    with pytest.raises(RecmillError, match="needs rating events"):
        MFRecommender(SMALL.model_copy(update={"feedback": "explicit"})).fit(groups)
    assert not MFRecommender(SMALL.model_copy(update={"feedback": "implicit"})).fit(ratings_data()).explicit_


def test_sampled_negatives_are_unobserved(groups):
    model = MFRecommender(SMALL).fit(groups)
    rows, cols, targets, weights = model._samples(np.random.default_rng(0))
    positive = model.signal_.toarray() > 0
    assert positive[rows[targets == 1], cols[targets == 1]].all()
    assert not positive[rows[targets == 0], cols[targets == 0]].any()
    assert (targets == 0).sum() > 0.7 * model.config.negatives * model.signal_.nnz
    np.testing.assert_allclose(weights[targets == 1], confidence(model.signal_.tocoo().data), rtol=1e-6)


def test_learns_taste_groups(groups):
    # even users buy from the first half of the catalogue, odd users from the second
    recs = MFRecommender(SMALL, seed=3).fit(groups).recommend(list(groups.user_ids), k=5)
    user_group = recs["user_id"].str[1:].astype(int) % 2
    item_group = (recs["item_id"].str[1:].astype(int) >= 15).astype(int)
    assert (user_group == item_group).mean() >= 0.9


def group_b_share(model, user: str) -> float:
    top = model.recommend([user], k=5)["item_id"].str[1:].astype(int)
    return float((top >= 15).mean())


def test_fold_in_moves_a_user_toward_new_taste(groups):
    # u2 bought six items of the first half of the catalogue; then buys six of the second
    model = MFRecommender(SMALL, seed=3).fit(groups)
    row = list(model.user_ids_).index("u2")
    before = group_b_share(model, "u2")
    items_before, item_bias_before, users_before = model.item_factors_.copy(), model.item_bias_.copy(), model.user_factors_.copy()
    new = [f"i{i}" for i in range(15, 21)]
    assert fold_in(model, events_frame([("u2", i, "purchase", 1.0) for i in new])) is model
    assert before == 0.0 and group_b_share(model, "u2") >= 0.4
    assert not set(new) & set(model.recommend(["u2"], k=30)["item_id"])  # now had: excluded
    np.testing.assert_array_equal(model.item_factors_, items_before)
    np.testing.assert_array_equal(model.item_bias_, item_bias_before)
    others = np.arange(len(model.user_ids_)) != row
    np.testing.assert_array_equal(model.user_factors_[others], users_before[others])


def test_fold_in_creates_unknown_users(groups, tmp_path):
    model = MFRecommender(SMALL, seed=3).fit(groups)
    n = len(model.user_ids_)
    bought = ["i16", "i18", "i20", "i22"]
    extra = [("newbie", "i29", "view", 1.0), ("ghost", "no-such-item", "purchase", 1.0)]
    fold_in(model, events_frame([("newbie", i, "purchase", 1.0) for i in bought] + extra))
    assert list(model.user_ids_[n:]) == ["newbie"]  # ghost only touched an unknown item
    assert model.user_factors_.shape[0] == model.user_bias_.shape[0] == model.seen_.shape[0] == n + 1
    assert sorted(model.item_ids_[model.seen_[n].indices]) == bought  # the view is not had
    assert list(model.event_code_[n].data) == [3] * 4
    recs = model.recommend(["newbie"], k=5, reasons=True)
    assert (recs["item_id"].str[1:].astype(int) >= 15).all() and not set(bought) & set(recs["item_id"])
    assert recs["reason"].str.startswith("because you bought ").all()
    model.save(tmp_path / "m")
    loaded = MFRecommender.load(tmp_path / "m")
    for users in (["newbie", "u1"], ["u1"]):
        pd.testing.assert_frame_equal(loaded.recommend(users, k=5, reasons=True), model.recommend(users, k=5, reasons=True))


def test_explicit_fold_in_fits_the_ratings_exactly_without_penalty():
    # two factors and a bias: three unknowns, three ratings, no ridge penalty -> an exact fit
    model = MFRecommender(MFConfig(factors=2, epochs=50, learning_rate=0.05, fold_in_regularization=0.0), seed=1).fit(ratings_data())
    fold_in(model, events_frame([("new", "good", "rating", 4.0), ("new", "m1", "rating", 2.0), ("new", "bad", "rating", 3.0)]))
    np.testing.assert_allclose(model.predict(["new"] * 3, ["good", "m1", "bad"]), [4, 2, 3], atol=1e-4)


def test_explicit_fold_in_replaces_a_rating():
    model = MFRecommender(MFConfig(factors=2, epochs=50, learning_rate=0.05), seed=1).fit(ratings_data())
    fold_in(model, events_frame([("u1", "m1", "rating", 1.0), ("u1", "m3", "rating", 2.0)]))
    row = list(model.user_ids_).index("u1")
    ratings = dict(zip(model.item_ids_[model.signal_[row].indices], model.signal_[row].data))
    assert ratings == {"good": 5.0, "bad": 1.0, "m1": 1.0, "m3": 2.0}


def test_implicit_fold_in_minimises_the_expected_training_loss(groups):
    # confidence-weighted 1s on the user's items and 0s weighted negatives * n / items
    # elsewhere, plus the ridge penalty: the closed form equals a dense weighted solve
    model = MFRecommender(SMALL, seed=3).fit(groups)
    fold_in(model, events_frame([("u1", "i3", "purchase", 1.0), ("u1", "i3", "cart", 1.0)]))
    row = list(model.user_ids_).index("u1")
    signal = model.signal_[row].toarray()[0]
    own = signal > 0
    weights = np.where(own, confidence(signal), model.config.negatives * own.sum() / len(signal))
    X = np.hstack([model.item_factors_, np.ones((len(signal), 1))]).astype(np.float64)
    target = own - float(model.global_mean_) - model.item_bias_
    A = X.T @ (weights[:, None] * X) + model.config.fold_in_regularization * np.eye(X.shape[1])
    theta = np.linalg.solve(A, X.T @ (weights * target))
    np.testing.assert_allclose(model.user_factors_[row], theta[:-1], rtol=1e-4, atol=1e-6)
    assert model.user_bias_[row] == pytest.approx(theta[-1], rel=1e-4, abs=1e-6)
    assert signal[list(model.item_ids_).index("i3")] == 5 + 3  # purchase and cart weights add up


def test_fold_in_batching_does_not_change_the_solution(groups, monkeypatch):
    # users with 1..12 new items: sorted into batches by length, solved, put back in order;
    # each must get what a fold-in of that user alone gives
    monkeypatch.setattr(mf, "SOLVE_CHUNK", 4)
    events = events_frame([(f"u{u}", f"i{(u + j) % 30}", "purchase", 1.0) for u in range(12) for j in range(u + 1)])
    fitted = MFRecommender(SMALL, seed=3).fit(groups)
    together = fold_in(copy.deepcopy(fitted), events)
    for user, own in events.groupby("user_id"):
        alone = fold_in(copy.deepcopy(fitted), own)
        row = list(alone.user_ids_).index(user)
        np.testing.assert_allclose(together.user_factors_[row], alone.user_factors_[row], rtol=1e-5, atol=1e-6)
        assert together.user_bias_[row] == pytest.approx(alone.user_bias_[row], rel=1e-5, abs=1e-6)
        assert not np.allclose(alone.user_factors_[row], fitted.user_factors_[row])


@pytest.fixture(scope="module")
def explained():
    """ann rated a, b (5) and c (2); the factors are set by hand so every number is known."""
    ratings = [("ann", "a", 5.0), ("ann", "b", 5.0), ("ann", "c", 2.0), ("bob", "t", 4.0), ("bob", "d", 3.0)]
    events = events_frame([(u, i, "rating", r) for u, i, r in ratings])
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d", "t"],
            "name": ["Alpha", "Beta", "Gamma", "Delta", "Target"],
            "category": ["Comedy", "Comedy", "Drama", "Horror", "Comedy"],
            "tags": ["Comedy Romance", "Comedy Drama", "Drama", "Horror", "Comedy Drama"],
            "brand": ["Acme", "", "", "", "Acme"],
        }
    )
    data = InteractionData.build(events, items, pd.DataFrame({"user_id": []}), InteractionsConfig())
    model = MFRecommender(MFConfig(factors=2, epochs=1)).fit(data)
    model.global_mean_ = np.array(3.0)
    model.user_bias_ = np.array([0.5, 0.0], np.float32)  # ann, bob
    model.item_bias_ = np.zeros(5, np.float32)
    model.user_factors_ = np.array([[0.4, 0.0], [0.0, 0.0]], np.float32)
    # a, b, c, d, t: b points like t, a at cosine 0.6, c like t too but rated below baseline
    model.item_factors_ = np.array([[0.6, 0.8], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    return model


def test_explain(explained):
    out = explained.explain("ann", "t")
    assert out["score"] == pytest.approx(3.9)
    assert out["parts"] == pytest.approx({"global_mean": 3.0, "user_bias": 0.5, "item_bias": 0.0, "interaction": 0.4})
    # contribution = cosine x (rating - 3.5): b 1 x 1.5, a 0.6 x 1.5, c 1 x -1.5
    assert [h["item_id"] for h in out["history"]] == ["b", "a", "c"]
    assert [h["name"] for h in out["history"]] == ["Beta", "Alpha", "Gamma"]
    assert [h["contribution"] for h in out["history"]] == pytest.approx([1.5, 0.9, -1.5])
    assert out["attributes"] == [
        {"attribute": "category", "value": "Comedy", "history_items": 2},
        {"attribute": "brand", "value": "Acme", "history_items": 1},
        {"attribute": "tag", "value": "Drama", "history_items": 2},
    ]
    assert out["reason"] == "because you rated Beta and Alpha; also in Comedy, like 2 items in your history"


def test_explain_leaves_the_item_itself_out(explained):
    out = explained.explain("ann", "b")
    assert "b" not in [h["item_id"] for h in out["history"]]
    assert out["attributes"][0] == {"attribute": "category", "value": "Comedy", "history_items": 1}


def test_reasons_match_explain(explained):
    recs = explained.recommend(["ann"], k=2, reasons=True)
    assert list(recs["item_id"]) == ["t", "d"]
    assert list(recs["reason"]) == [explained.explain("ann", "t")["reason"], "because you rated Alpha"]


def test_explain_unknown_user_or_item(explained):
    with pytest.raises(RecmillError, match="user 'zed'"):
        explained.explain("zed", "t")
    with pytest.raises(RecmillError, match="item 'zzz'"):
        explained.explain("ann", "zzz")


def test_a_pair_budget_draws_distinct_pairs_each_epoch(groups):
    model = MFRecommender(MFConfig(epochs=1, pairs_per_epoch=10, negatives=2), seed=3).fit(groups)
    had = model.signal_.toarray() != 0
    rng = np.random.default_rng(0)
    drawn = []
    for _ in range(2):
        rows, cols, targets, _ = model._samples(rng)
        positives = set(zip(rows[targets == 1].tolist(), cols[targets == 1].tolist()))
        assert len(positives) == (targets == 1).sum() == 10 and all(had[r, c] for r, c in positives)
        assert not had[rows[targets == 0], cols[targets == 0]].any()
        drawn.append(positives)
    assert drawn[0] != drawn[1]
    everything = copy.copy(model)
    everything.config = MFConfig(pairs_per_epoch=None, negatives=2)
    rows, _, targets, _ = everything._samples(rng)
    assert (targets == 1).sum() == model.signal_.nnz
