import logging

import numpy as np
import pandas as pd
import pytest

from recmill.config import ALSConfig, GradientBoostingConfig, InteractionsConfig, PopularityConfig, SplitConfig, TwoStageConfig
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.data.split import items_by_user, label_positives, label_split, relevant_items, temporal_split
from recmill.evaluation.holdout import score_model
from recmill.models.als import ALSRecommender
from recmill.models.popularity import PopularityRecommender
from recmill.models.two_stage import TwoStageRecommender, group_sizes, keep_best
from recmill.settings import load_settings
from tests.models.contract import RecommenderContract, make_data

BOOSTING = GradientBoostingConfig(n_estimators=20, num_leaves=4, min_child_samples=2, early_stopping_rounds=5)
CONFIG = TwoStageConfig(generators=["popularity", "als"], candidates_per_generator=10, keep=8, stage1=BOOSTING, ranker=BOOSTING)
GENERATORS = {"als": ALSConfig(factors=4, iterations=5, regularization=0.1), "popularity": PopularityConfig()}


def two_stage(config=CONFIG, seed=7):
    return TwoStageRecommender(config, seed=seed, generator_configs=GENERATORS)


class TestTwoStageContract(RecommenderContract):
    model_class = TwoStageRecommender
    config = CONFIG
    refresh_reproduces_fit = False

    def make(self, seed: int = 7):
        return two_stage(self.config, seed)


def events(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "hour"])
    frame["timestamp"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(frame.pop("hour"), unit="h")
    frame["value"] = 1.0
    return frame


def test_labels_are_the_last_part_of_each_users_training_events():
    ev = events([
        # a: 5 events, the last one (20%) labels; b bought b1 before, so buying it again is no label
        ("a", "x1", "purchase", 1), ("a", "x2", "purchase", 2), ("a", "x3", "view", 3), ("a", "x4", "purchase", 4), ("a", "x5", "purchase", 5),
        ("b", "b1", "purchase", 1), ("b", "b2", "purchase", 2), ("b", "b3", "purchase", 3), ("b", "b4", "view", 4), ("b", "b1", "purchase", 5),
        # c: the label slice is a view only; d has one event, which stays history
        ("c", "c1", "purchase", 1), ("c", "c2", "purchase", 2), ("c", "c3", "purchase", 3), ("c", "c4", "purchase", 4), ("c", "c5", "view", 5),
        ("d", "d1", "purchase", 9),
    ])
    earlier, labels = label_split(ev, 0.2)
    assert sorted(zip(labels.user_id, labels.item_id)) == [("a", "x5"), ("b", "b1"), ("c", "c5")]
    assert len(earlier) == len(ev) - 3 and "d1" in set(earlier.item_id)
    positives = label_positives(earlier, labels, ["purchase", "rating"])
    assert list(zip(positives.user_id, positives.item_id)) == [("a", "x5")]


def test_label_split_never_reaches_past_the_training_data():
    # fit sees only the data it is given: its labels are a subset of those events, all
    # later than the history they are predicted from
    data = make_data()
    earlier, labels = label_split(data.events, 0.2)
    assert len(earlier) + len(labels) == len(data.events)
    last_seen = earlier.groupby("user_id")["timestamp"].max()
    assert (labels["timestamp"].to_numpy() >= last_seen.reindex(labels["user_id"]).to_numpy()).all()


def test_keep_best_keeps_each_users_top_scores_ties_by_column():
    rows = np.array([0, 0, 0, 1, 1, 1])
    cols = np.array([5, 3, 9, 1, 2, 4])
    scores = np.array([0.1, 0.9, 0.9, 0.5, 0.2, 0.7])
    assert keep_best(rows, cols, scores, 2).tolist() == [False, True, True, True, False, True]
    assert keep_best(rows, cols, scores, 1).tolist() == [False, True, False, False, False, True]


def test_group_sizes():
    assert group_sizes(np.array([3, 3, 5, 7, 7, 7])).tolist() == [2, 1, 3]


def test_stage1_recall_and_saved_files(tmp_path):
    model = two_stage().fit(make_data())
    assert 0 < model.stage1_recall_ <= 1
    model.save(tmp_path / "m")
    assert {"stage1.txt", "ranker.txt", "generators.json"} <= {p.name for p in (tmp_path / "m").iterdir()}
    assert sorted(p.name for p in (tmp_path / "m" / "generators").iterdir()) == ["als", "popularity"]
    assert (tmp_path / "m" / "ranker.txt").read_text().startswith("tree")
    loaded = TwoStageRecommender.load(tmp_path / "m")
    assert loaded.generator_configs["als"] == GENERATORS["als"]
    assert loaded.stage1_recall_ == model.stage1_recall_


def test_without_label_positives_falls_back_to_reciprocal_ranks(caplog):
    # every user's last events are views: nothing to learn from, the generators' ranks decide
    data = make_data()
    ev = data.events.copy()
    late = ev.groupby("user_id")["timestamp"].rank(ascending=False) <= 2
    ev.loc[late, "event_type"] = "view"
    data = InteractionData.build(ev, data.items, data.users, InteractionsConfig())
    with caplog.at_level(logging.WARNING, logger="recmill"):
        model = two_stage().fit(data)
    assert "reciprocal ranks" in caplog.text
    assert model.stage1_ is None and model.ranker_ is None
    recs = model.recommend(["u3"], k=3)
    als = model.generators_["als"].recommend(["u3"], k=10)
    pop = model.generators_["popularity"].recommend(["u3"], k=10)
    fused = (1 / als.set_index("item_id")["rank"]).add(1 / pop.set_index("item_id")["rank"], fill_value=0)
    assert recs["score"].tolist() == pytest.approx(sorted(fused, reverse=True)[:3])


def test_reasons_name_generators_or_history():
    data = make_data()
    recs = two_stage().fit(data).recommend(list(data.user_ids[:5]), k=5, reasons=True)
    assert recs["reason"].str.match(r"^(because you bought|popular in|popular with|matches your taste|in demand lately)").all()
    assert not recs["reason"].str.contains("als|popularity|ranked").any()  # no model names


def test_beats_its_generators_on_the_synthetic_shop():
    # the pipeline's protocol: fit on train + valid, score purchases the user did not have
    settings = load_settings(None)
    tables = load_source("synthetic", None, preset="small", seed=settings.seed)
    parts = temporal_split(tables.events, SplitConfig())
    train = pd.concat([parts["train"], parts["valid"]], ignore_index=True)
    truth = relevant_items(parts["test"], ["purchase"], items_by_user(train, ["purchase"]))
    data = InteractionData.build(train, tables.items, tables.users, InteractionsConfig())
    generators = {"als": settings.models.als, "popularity": settings.models.popularity}
    boosting = GradientBoostingConfig(n_estimators=100, learning_rate=0.1, early_stopping_rounds=10)
    config = TwoStageConfig(generators=["popularity", "als"], candidates_per_generator=50, keep=20, stage1=boosting, ranker=boosting)

    def ndcg(model):
        return score_model(model, truth, ["ndcg"], [10])[0]["value"]

    best_single = max(ndcg(ALSRecommender(generators["als"], seed=1).fit(data)), ndcg(PopularityRecommender(seed=1).fit(data)))
    combined = ndcg(TwoStageRecommender(config, seed=1, generator_configs=generators).fit(data))
    assert combined > best_single


def test_training_metrics_report_stage1_recall():
    data = make_data()
    model = two_stage().fit(data)
    (key, value), = model.training_metrics().items()
    assert key == f"stage1_recall@{model.config.keep}"
    assert 0.0 <= value <= 1.0 and value == float(model.stage1_recall_)


def test_buy_again_history_is_a_generator_where_had_items_may_be_recommended():
    from recmill.config import ReorderConfig
    from tests.models.test_reorder import with_repeats

    data = with_repeats(make_data())
    boosting = GradientBoostingConfig(n_estimators=20, num_leaves=4, min_child_samples=2, early_stopping_rounds=5)
    config = TwoStageConfig(generators=["popularity", "reorder"], candidates_per_generator=10, keep=8, stage1=boosting, ranker=boosting)
    model = TwoStageRecommender(config, seed=7, generator_configs={"popularity": PopularityConfig(), "reorder": ReorderConfig(booster=boosting)})
    model.fit(data)
    recs = model.recommend(list(data.user_ids[:10]), k=5, exclude_seen=False, reasons=True)
    had = set(zip(data.events["user_id"], data.events["item_id"]))
    again = recs[[pair in had for pair in zip(recs["user_id"], recs["item_id"])]]
    assert len(again) > 0 and again["reason"].str.startswith("you bought it in").any()


def test_the_stages_learn_from_a_user_sample_and_serve_everyone(monkeypatch):
    from recmill.models import two_stage as module

    data = make_data()
    learned_from = []
    original = module.candidate_features

    def spy(generators, names, context, rows, n, exclude_seen):
        learned_from.append(rows.copy())
        return original(generators, names, context, rows, n, exclude_seen)

    monkeypatch.setattr(module, "candidate_features", spy)
    model = two_stage(CONFIG.model_copy(update={"max_train_users": 5})).fit(data)
    assert len(learned_from[0]) == 5 and len(set(learned_from[0])) == 5
    assert list(learned_from[0]) == sorted(learned_from[0])
    assert 0 < model.stage1_recall_ <= 1
    recs = model.recommend(data.user_ids, k=3)
    assert recs.groupby("user_id").size().to_dict() == {u: 3 for u in data.user_ids}
    everyone = two_stage(CONFIG.model_copy(update={"max_train_users": None}))
    learned_from.clear()
    everyone.fit(data)
    assert len(learned_from[0]) == data.n_users


def test_stage1_learns_from_every_positive_and_a_share_of_the_negatives(monkeypatch):
    import lightgbm

    seen_labels = []
    original = lightgbm.LGBMClassifier.fit

    def spy(self, X, y, **kwargs):
        seen_labels.append(np.asarray(y, dtype=bool))
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(lightgbm.LGBMClassifier, "fit", spy)
    data = make_data()
    counts = {}
    for share in (1.0, 0.25):
        seen_labels.clear()
        two_stage(CONFIG.model_copy(update={"stage1_negatives": share})).fit(data)
        stage1 = seen_labels[0]  # then the two out-of-fold halves
        counts[share] = (int(stage1.sum()), int((~stage1).sum()))
        halves = seen_labels[1:3]
        assert sum(int(h.sum()) for h in halves) == counts[share][0]  # each positive in one half's training
    assert counts[0.25][0] == counts[1.0][0]
    assert 0.15 < counts[0.25][1] / counts[1.0][1] < 0.35


def test_the_candidates_top_k_is_the_top_k_of_the_matrix_they_fill():
    from recmill.models.base import top_k
    from recmill.models.two_stage import candidates_top_k

    rng = np.random.default_rng(3)
    rows = np.array([7, 2, 9, 4])  # a batch in serving order; row 4 has no candidate, row 9 three
    frame_rows = np.repeat([7, 2, 9], [12, 20, 3])
    cols = np.concatenate([rng.choice(30, size=n, replace=False) for n in (12, 20, 3)])
    scores = rng.normal(size=len(cols))
    dense = np.full((len(rows), 30), -np.inf)
    dense[pd.Index(rows).get_indexer(frame_rows), cols] = scores
    top, top_scores = candidates_top_k(rows, frame_rows, cols, scores, 5)
    expected, expected_scores = top_k(dense, 5)
    finite = np.isfinite(expected_scores)
    assert np.array_equal(np.isfinite(top_scores), finite) and finite.sum(axis=1).tolist() == [5, 5, 3, 0]
    assert np.array_equal(top[finite], expected[finite]) and np.array_equal(top_scores[finite], expected_scores[finite])


def test_the_same_lists_whatever_the_thread_count(monkeypatch):
    # a model trained alone uses every core, one in a pool of workers its share: the
    # boosted trees and ALS's factors must not depend on it
    data = make_data()
    lists = []
    for threads in ("1", "2"):
        monkeypatch.setenv("RECMILL_THREADS", threads)
        lists.append(two_stage().fit(data).recommend(list(data.user_ids), k=5))
    pd.testing.assert_frame_equal(lists[0], lists[1])
