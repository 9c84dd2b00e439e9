import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recmill.config import InteractionsConfig, NCFConfig
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.data.split import label_positives, label_split
from recmill.errors import RecmillError
from recmill.models import ncf, ncf_network, ncf_training
from recmill.models.ncf import NCFRecommender
from recmill.models.ncf_features import build_features
from recmill.models.ncf_network import NCFNet
from recmill.models.ncf_training import epoch_samples, sample_negatives
from tests.models.contract import RecommenderContract, make_data

SMALL = NCFConfig(
    embedding_dim=8, user_dense=8, item_dense=8, category_embedding_dim=4, brand_embedding_dim=4, hidden=[16, 8, 4],
    epochs=3, batch_size=64, learning_rate=0.01,
)


class TestNCFContract(RecommenderContract):
    model_class = NCFRecommender
    config = SMALL


@pytest.fixture(scope="module")
def groups():
    return make_data()


@pytest.fixture(scope="module")
def fitted(groups):
    return NCFRecommender(SMALL, seed=3).fit(groups)


def weights(model: NCFRecommender) -> dict[str, torch.Tensor]:
    return model.net_.state_dict()


def assert_same_weights(a: NCFRecommender, b: NCFRecommender) -> None:
    wa, wb = weights(a), weights(b)
    assert list(wa) == list(wb)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_network_shape_follows_the_config(groups):
    cfg = NCFConfig(embedding_dim=6, user_dense=5, item_dense=7, category_embedding_dim=3, hidden=[12, 9, 4], dropout=0.3)
    features, _ = build_features(groups, seed=1)
    net = NCFNet(cfg, features)
    assert net.user_embedding.weight.shape == (40, 6) and net.item_embedding.weight.shape == (30, 6)
    assert net.category_embedding.weight.shape == (3, 3) and net.brand_embedding is None  # Bakery, Dairy and none
    assert (net.user_dense.in_features, net.user_dense.out_features) == (features.user.shape[1] + 3, 5)
    assert (net.item_dense.in_features, net.item_dense.out_features) == (features.item.shape[1] + 3, 7)
    linears = [(m.in_features, m.out_features) for m in net.fusion if isinstance(m, torch.nn.Linear)]
    assert linears == [(6 + 5 + 6 + 7, 12), (12, 9), (9, 4), (4, 1)]
    assert [type(m).__name__ for m in net.fusion] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear"]
    assert all(m.p == 0.3 for m in net.fusion if isinstance(m, torch.nn.Dropout))


def test_scores_are_sigmoids_and_scoring_all_items_matches_pairs(fitted, monkeypatch):
    rows = np.arange(len(fitted.user_ids_))
    scores = fitted._score(rows)
    assert scores.shape == (40, 30) and ((scores > 0) & (scores < 1)).all()
    users, items = np.repeat(rows, 30), np.tile(np.arange(30), 40)
    with torch.no_grad():
        pairs = torch.sigmoid(fitted.net_(torch.as_tensor(users), torch.as_tensor(items)).double()).numpy()
    np.testing.assert_allclose(scores.ravel(), pairs, rtol=1e-5)
    for chunk in (45, 7):  # one user and a half per chunk: chunks of one user; a part of a user's items each
        monkeypatch.setattr(ncf_network, "CHUNK_PAIRS", chunk)
        np.testing.assert_allclose(fitted._score(rows), scores, rtol=1e-6)


def test_negatives_are_uniform_over_the_items_the_user_does_not_have():
    # user 0 has items 0, 2 and 5 of 6; user 1 has none; user 2 has all but item 4
    positive = sp.csr_matrix(([1.0] * 8, ([0, 0, 0, 2, 2, 2, 2, 2], [0, 2, 5, 0, 1, 2, 3, 5])), shape=(3, 6))
    rows = np.repeat([0, 1, 2], 3000)
    drawn = sample_negatives(positive, rows, np.random.default_rng(0))
    assert set(drawn[rows == 0]) == {1, 3, 4} and set(drawn[rows == 1]) == set(range(6)) and set(drawn[rows == 2]) == {4}
    counts = np.bincount(drawn[rows == 0], minlength=6)[[1, 3, 4]]
    assert counts.min() > 900 and counts.max() < 1100


def test_epoch_samples_never_label_a_had_item_negative():
    # user 2 has every item: positives, no negatives
    positive = sp.csr_matrix(([1.0] * 6, ([0, 0, 1, 2, 2, 2], [0, 1, 2, 0, 1, 2])), shape=(3, 3))
    rng = np.random.default_rng(1)
    users, items, labels = epoch_samples(positive, 4, False, rng)
    had = positive.toarray() > 0
    assert len(users) == 6 + 4 * 3
    assert had[users[labels == 1], items[labels == 1]].all() and (labels == 1).sum() == 6
    assert not had[users[labels == 0], items[labels == 0]].any()
    users, items, negatives = epoch_samples(positive, 4, True, rng)
    assert len(users) == 4 * 3 and had[users, items].all() and not had[users, negatives].any()


def test_epoch_samples_within_a_pair_budget_draw_distinct_pairs_afresh():
    positive = sp.random(50, 40, density=0.3, format="csr", random_state=3)
    positive.data[:] = 1.0
    had = positive.toarray() > 0
    rng = np.random.default_rng(2)
    epochs = [epoch_samples(positive, 2, False, rng, max_pairs=100) for _ in range(2)]
    for users, items, labels in epochs:
        pairs = set(zip(users[labels == 1].tolist(), items[labels == 1].tolist()))
        assert len(pairs) == (labels == 1).sum() == 100 and all(had[u, i] for u, i in pairs)
        assert (labels == 0).sum() == 200 and not had[users[labels == 0], items[labels == 0]].any()
    first, second = ({(u, i) for u, i, y in zip(*e) if y == 1} for e in epochs)
    assert first != second  # drawn afresh each epoch
    users, _, labels = epoch_samples(positive, 2, False, rng, max_pairs=positive.nnz)  # a budget above the data: all pairs
    assert (labels == 1).sum() == positive.nnz


@pytest.mark.parametrize("loss", ["mse", "bce", "bpr"])
def test_each_loss_trains(groups, loss):
    model = NCFRecommender(SMALL.model_copy(update={"loss": loss, "epochs": 4, "patience": 4}), seed=3).fit(groups)
    losses = [e["loss"] for e in model.history_["epochs"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    if loss == "bpr":  # -log sigmoid(0) at the start, when positives and negatives score alike
        assert losses[0] == pytest.approx(np.log(2), abs=0.1)


def test_same_seed_same_weights(groups, fitted):
    assert_same_weights(NCFRecommender(SMALL, seed=3).fit(groups), fitted)
    other = NCFRecommender(SMALL, seed=4).fit(groups)
    assert not torch.equal(weights(other)["user_embedding.weight"], weights(fitted)["user_embedding.weight"])


def test_training_leaves_the_global_random_state_and_threads_alone(groups):
    torch.manual_seed(0)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    NCFRecommender(SMALL, seed=3).fit(groups)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


def test_subnormals_are_zero_while_training_or_scoring_and_not_after():
    subnormal = torch.tensor([1e-39])  # below float32's smallest normal, 1.2e-38
    with ncf_training.subnormals_flushed():
        assert (subnormal * 1.0).item() == 0.0
    assert (subnormal * 1.0).item() == pytest.approx(1e-39, rel=1e-3)


def test_early_stopping_keeps_the_best_epoch(groups):
    cfg = SMALL.model_copy(update={"epochs": 50, "patience": 2, "learning_rate": 0.03, "min_improvement": 0.0})
    model = NCFRecommender(cfg, seed=3).fit(groups)
    history = model.history_["epochs"]
    ndcg = [e["valid_ndcg@10"] for e in history]
    best = model.history_["best_epoch"]
    assert len(history) == best + 2 < 50  # stopped after two epochs without a better NDCG
    assert ndcg.index(max(ndcg)) == best - 1
    assert model.training_metrics() == {"epochs": float(best + 2), "best_epoch": float(best), "valid_ndcg@10": max(ndcg)}
    # the model's weights are the best epoch's: its validation NDCG is the best one
    earlier_events, valid_events = label_split(groups.events, cfg.valid_fraction)
    earlier = InteractionData.build(earlier_events, groups.items, groups.users, InteractionsConfig())
    held = label_positives(earlier_events, valid_events, groups.positive_event_types)
    truth = {}
    for user, item in zip(held["user_id"], held["item_id"]):
        truth.setdefault(int(model.user_rows([user])[0]), set()).add(list(model.item_ids_).index(item))
    with ncf_training.reproducible(3, torch.device("cpu")):
        assert ncf_training.validation_ndcg(model.net_, earlier.positive, truth, torch.device("cpu")) == ndcg[best - 1]


def test_training_stops_without_a_clear_gain_and_keeps_the_best_epoch(groups):
    # no epoch beats the first by 1000%: training stops patience epochs later, and the
    # model is the best epoch of those it ran
    cfg = SMALL.model_copy(update={"epochs": 50, "patience": 3, "learning_rate": 0.03, "min_improvement": 10.0, "lr_patience": 0})
    model = NCFRecommender(cfg, seed=3).fit(groups)
    history = model.history_["epochs"]
    ndcgs = [e["valid_ndcg@10"] for e in history]
    assert len(history) == 4
    assert int(np.argmax(ndcgs)) > 0, ndcgs  # a later epoch is the best: the test tells the rules apart
    assert model.history_["best_epoch"] == 1 + int(np.argmax(ndcgs)), ndcgs
    assert model.history_["best_valid_ndcg@10"] == max(ndcgs)
    assert [e["lr"] for e in history] == [0.03, 0.03, 0.015, 0.0075]  # the scheduler sees the same plateau


def test_learning_rate_halves_on_a_plateau_down_to_its_floor(groups):
    cfg = SMALL.model_copy(update={"epochs": 12, "patience": 12, "lr_patience": 0, "lr_factor": 0.5, "learning_rate": 0.04, "min_lr": 0.01})
    lrs = [e["lr"] for e in NCFRecommender(cfg, seed=3).fit(groups).history_["epochs"]]
    assert lrs[0] == 0.04 and set(lrs) <= {0.04, 0.02, 0.01} and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.04


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("sparse_above_rows", [100_000, 0])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_model(groups, tmp_path, monkeypatch, sparse_above_rows):
    cfg = SMALL.model_copy(update={"epochs": 5, "patience": 5, "sparse_above_rows": sparse_above_rows})
    uninterrupted = NCFRecommender(cfg, seed=3).fit(groups)
    save = ncf.save_checkpoint

    def save_then_stop(path, checkpoint):
        save(path, checkpoint)
        if checkpoint["run"]["epoch"] == 2:
            raise Interrupted

    monkeypatch.setattr(ncf, "save_checkpoint", save_then_stop)
    resumable = cfg.model_copy(update={"checkpoint_dir": tmp_path / "ckpt"})
    with pytest.raises(Interrupted):
        NCFRecommender(resumable, seed=3).fit(groups)
    monkeypatch.setattr(ncf, "save_checkpoint", save)
    resumed = NCFRecommender(resumable, seed=3).fit(groups)
    assert_same_weights(resumed, uninterrupted)
    def strip(model):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in model.history_["epochs"]]

    assert strip(resumed) == strip(uninterrupted)
    saved = torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=True)
    assert saved["run"]["epoch"] == 5 and set(saved) >= {"net", "optimizers", "schedulers", "torch_rng", "numpy_rng", "best"}
    # another seed is another training: its checkpoint there is not resumed
    assert_same_weights(NCFRecommender(resumable, seed=4).fit(groups), NCFRecommender(cfg, seed=4).fit(groups))


def features_of(events: list[tuple], items: pd.DataFrame, users: pd.DataFrame):
    frame = pd.DataFrame(events, columns=["user_id", "item_id", "event_type", "value"])
    frame["timestamp"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="D")
    return build_features(InteractionData.build(frame, items, users, InteractionsConfig()), seed=1)


def test_missing_attributes_build_no_inputs(groups):
    # the contract data: purchases and a view, items with a category and nothing else, no user table
    features, stats = build_features(groups, seed=1)
    assert list(features.item_names) == ["popularity", "conversion_rate", "trending", "recency"]
    assert [n for n in features.user_names if not n.startswith("segment=")] == ["purchases", "recency", "frequency"]
    assert len(features.brands) == 0 and (features.item_brand == 0).all()
    assert set(stats["item"]) == {"popularity", "conversion_rate", "trending", "recency"}
    # ratings (no price, no brand, all events positive) and users with a numeric age
    features, _ = features_of(
        [("a", "m1", "rating", 4.0), ("a", "m2", "rating", 2.0), ("b", "m1", "rating", 5.0), ("c", "m3", "rating", 3.0)],
        pd.DataFrame({"item_id": ["m1", "m2", "m3"], "category": ["Drama", "Comedy", None]}),
        pd.DataFrame({"user_id": ["a", "b", "c"], "age": [17, 30, 70], "gender": ["F", "M", "F"]}),
    )
    assert list(features.item_names) == ["popularity", "average_rating", "trending", "recency"]
    assert [n for n in features.user_names if not n.startswith("segment=")] == [
        "age_group=25-34", "age_group=65+", "age_group=under 18", "purchases", "recency", "frequency",
    ]
    assert list(features.categories) == ["Comedy", "Drama"] and list(features.item_category) == [2, 1, 0]
    assert list(features.user_category) == [1, 2, 0]  # a: Comedy and Drama tie, the lowest code; c: no category
    np.testing.assert_allclose(features.item[:, 1], [1.0, 0.0, 0.4])  # average ratings 4.5, 2 and 3, min-max scaled
    net = NCFNet(SMALL, features)
    assert net.brand_embedding is None and net.item_dense.in_features == 4 + SMALL.category_embedding_dim


def test_shop_attributes_become_inputs():
    tables = load_source("synthetic", None, preset="tiny")
    data = InteractionData.build(tables.events, tables.items, tables.users, InteractionsConfig())
    features, stats = build_features(data, seed=1)
    assert list(features.item_names) == ["price_percentile", "popularity", "conversion_rate", "trending", "recency"]
    names = list(features.user_names)
    assert names[-4:] == ["purchases", "average_price", "recency", "frequency"]
    assert {n.split("=")[0] for n in names[:-4]} == {"age_group", "location", "segment"}
    assert sum(n.startswith("location=") for n in names) == tables.users["location"].nunique()
    assert len(features.brands) == tables.items["brand"].nunique() and (features.item_brand > 0).all()
    assert features.user.min() >= 0 and features.user.max() <= 1 and features.item.min() >= 0 and features.item.max() <= 1
    assert stats["user"]["purchases"]["transform"] == "log1p" and stats["item"]["recency"]["transform"] == "recency"
    net = NCFNet(SMALL, features)
    assert net.item_dense.in_features == 5 + SMALL.category_embedding_dim + SMALL.brand_embedding_dim


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.json", "state.npz", "features.npz", "model.pt", "feature_stats.json", "training_history.json", "hashes.json",
    }
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert "user_embedding.weight" in state and "user" not in state  # the feature tables live in features.npz
    loaded = NCFRecommender.load(tmp_path / "m")
    rows = np.arange(len(fitted.user_ids_))
    np.testing.assert_array_equal(loaded._score(rows), fitted._score(rows))
    assert loaded.training_metrics() == fitted.training_metrics()
    history = json.loads((tmp_path / "m" / "training_history.json").read_text())
    assert history["device"] == "cpu" and history["best_epoch"] == fitted.history_["best_epoch"] and history["seconds"] > 0
    assert set(history["epochs"][0]) == {"epoch", "loss", "valid_ndcg@10", "lr", "seconds"}
    stats = json.loads((tmp_path / "m" / "feature_stats.json").read_text())
    assert list(stats["item"]) == list(fitted.features_.item_names)  # every item feature is numeric
    assert list(stats["user"]) == [n for n in fitted.features_.user_names if "=" not in n]  # one-hots need no scaling
    assert set(stats["item"]["popularity"]) == {"transform", "min", "max", "fill"}


def test_reasons_name_the_closest_history_items(fitted, groups):
    recs = fitted.recommend(["u2"], k=3, reasons=True)
    row = int(fitted.user_rows(["u2"])[0])
    history = fitted.seen_[row].indices
    vectors = fitted.net_.item_embedding.weight.detach().numpy().astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for item, reason in zip(recs["item_id"], recs["reason"]):
        cosine = vectors[history] @ vectors[list(fitted.item_ids_).index(item)]
        closest = [fitted.item_names_[c] for c in history[np.argsort(-cosine, kind="stable")] if cosine[list(history).index(c)] > 0]
        assert reason == "because you bought " + " and ".join(closest[:2])


def test_reasons_follow_item_embeddings_changed_in_place(groups):
    model = NCFRecommender(SMALL, seed=3).fit(groups)
    row = int(model.user_rows(["u2"])[0])
    items = np.arange(len(model.item_ids_))
    before = model._reasons(row, items)
    with torch.no_grad():
        model.net_.item_embedding.weight.copy_(model.net_.item_embedding.weight.flip(0).clone())  # items swap vectors
    fresh = NCFRecommender(SMALL, seed=3).fit(groups)
    with torch.no_grad():
        fresh.net_.item_embedding.weight.copy_(fresh.net_.item_embedding.weight.flip(0).clone())
    assert model._reasons(row, items) == fresh._reasons(row, items) != before


def test_a_user_without_had_items_gets_category_reasons(groups):
    events = pd.concat([groups.events, pd.DataFrame({"user_id": ["browser"], "item_id": ["i3"], "event_type": ["view"],
                                                     "timestamp": [pd.Timestamp("2026-03-01")], "value": [1.0]})])
    data = InteractionData.build(events, groups.items, groups.users, InteractionsConfig())
    recs = NCFRecommender(SMALL, seed=3).fit(data).recommend(["browser"], k=3, reasons=True)
    assert recs["reason"].str.match(r"popular in (Dairy|Bakery)$").all() and len(recs) == 3


def test_device(groups, monkeypatch):
    assert str(NCFRecommender(SMALL.model_copy(update={"device": "cpu"}), seed=3).fit(groups).device_) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert str(NCFRecommender(SMALL, seed=3).fit(groups).device_) == "cpu"  # auto
    with pytest.raises(RecmillError, match="device is 'cuda' but CUDA is not available"):
        NCFRecommender(SMALL.model_copy(update={"device": "cuda"}), seed=3).fit(groups)


@pytest.mark.parametrize("sparse", [False, True])
def test_a_step_moves_only_the_batchs_rows_of_a_sparse_table(groups, sparse):
    cfg = SMALL.model_copy(update={"sparse_above_rows": 0 if sparse else 100_000})
    features, _ = build_features(groups, seed=3)
    torch.manual_seed(3)
    net = NCFNet(cfg, features)
    steppers = ncf_training.optimizers(net, cfg)
    assert [type(o).__name__ for o in steppers] == (["Adam", "SparseAdam"] if sparse else ["Adam"])
    before = net.user_embedding.weight.detach().clone(), net.item_embedding.weight.detach().clone()
    users, items = torch.tensor([0, 1]), torch.tensor([0, 2])
    ncf_training.train_epoch(net, steppers, [users, items, torch.tensor([1.0, 0.0])], "mse", batch_size=2)
    for table, old, touched in zip((net.user_embedding.weight, net.item_embedding.weight), before, (users, items)):
        moved = (table.detach() != old).any(1)
        assert moved[touched].all()
        assert moved.sum().item() == (len(touched) if sparse else len(table))  # dense Adam's weight decay moves every row


def test_validation_ranks_among_a_sample_of_a_large_catalogue(fitted):
    truth = {0: {3, 7}, 2: {5}}
    assert ncf_training.validation_columns(truth, n_items=50, valid_items=50, seed=1) is None
    cols = ncf_training.validation_columns(truth, n_items=50, valid_items=10, seed=1)
    assert {3, 5, 7} <= set(cols) and 10 <= len(cols) <= 13 and list(cols) == sorted(set(cols))
    assert np.array_equal(cols, ncf_training.validation_columns(truth, n_items=50, valid_items=10, seed=1))

    net, positive = fitted.net_, fitted.seen_
    rows = np.arange(min(5, positive.shape[0]))
    everything = np.arange(positive.shape[1])
    np.testing.assert_array_equal(ncf_training.ranked(net, positive, rows, 3, torch.device("cpu"), everything),
                                  ncf_training.ranked(net, positive, rows, 3, torch.device("cpu")))
    some = everything[::2]
    top = ncf_training.ranked(net, positive, rows, 3, torch.device("cpu"), some)
    with torch.no_grad():
        scores = net.score_all(torch.as_tensor(rows)).numpy().astype(np.float64)
    for i, row in enumerate(rows):
        allowed = [c for c in some if positive[row, c] == 0]
        best = sorted(allowed, key=lambda c: (-scores[i, c], c))[:3]
        assert set(top[i]) == set(best)


def test_a_large_catalogue_is_scored_on_its_most_popular_items(fitted, groups, tmp_path):
    limited = NCFRecommender.load(fitted.save(tmp_path / "ncf"))
    limited.config = limited.config.model_copy(update={"score_max_items": 5})
    users = list(groups.user_ids[:20])
    recs = limited.recommend(users, k=3)
    popular = set(limited.item_ids_[limited.popular_[:5]])
    assert set(recs["item_id"]) <= popular
    full = fitted.recommend(users, k=len(fitted.item_ids_))
    for user, got in recs.groupby("user_id"):
        allowed = full[(full.user_id == user) & full.item_id.isin(popular)]  # the full ranking, cut to the popular items
        assert got["item_id"].tolist() == allowed["item_id"].tolist()[:3]
        np.testing.assert_allclose(got["score"].to_numpy(), allowed["score"].to_numpy()[:3], rtol=1e-6)  # float32 sums
