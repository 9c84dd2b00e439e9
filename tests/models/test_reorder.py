import json

import numpy as np
import pandas as pd
import pytest

from recmill.config import GradientBoostingConfig, InteractionsConfig, ReorderConfig, SplitConfig
from recmill.data.interactions import InteractionData
from recmill.data.sources import load_source
from recmill.data.split import temporal_split
from recmill.errors import ModelSkipped
from recmill.evaluation.basket import buy_again_metrics
from recmill.models import reorder
from recmill.models.reorder import ReorderRecommender, baskets, before_labels, has_repeats, last_baskets
from tests.models.contract import RecommenderContract, make_data

CONFIG = ReorderConfig(booster=GradientBoostingConfig(n_estimators=30, num_leaves=4, min_child_samples=2, early_stopping_rounds=5))
DAY = pd.Timedelta(days=1)


def with_repeats(data: InteractionData) -> InteractionData:
    """The contract data plus two later baskets per user: some items bought again, some new."""
    rng = np.random.default_rng(1)
    rows = []
    for user, group in data.events[data.events["event_type"] == "purchase"].groupby("user_id"):
        items = list(group["item_id"])
        for day, n in ((40, 3), (50, 2)):
            again = rng.choice(items, size=n, replace=False)
            stamp = pd.Timestamp("2026-01-01") + day * DAY + pd.Timedelta(minutes=int(user[1:]))
            rows += [(user, item, "purchase", stamp) for item in again]
    extra = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"]).assign(value=1.0)
    events = pd.concat([data.events, extra], ignore_index=True)
    return InteractionData.build(events, data.items, data.users, InteractionsConfig())


class TestReorderContract(RecommenderContract):
    model_class = ReorderRecommender
    config = CONFIG

    @pytest.fixture(scope="class")
    def data(self):
        return with_repeats(make_data())

    def test_a_refresh_scores_its_users_with_the_fitted_item_side(self, data, tmp_path):
        # the item features come from all the data, not from the refreshed users' events; with
        # the data's last event among theirs, times count from the same end: nothing changes
        model = self.make().fit(data)
        model = ReorderRecommender.load(model.save(tmp_path / "m"))
        users = ["u3", "u8", data.events.loc[data.events["timestamp"].idxmax(), "user_id"]]
        rows = model.user_rows(users)
        before, item_values = model.probability_[rows].toarray(), model.item_values_.copy()
        model.refresh_users(self.history_data(model, data, data.events[data.events["user_id"].isin(users)]))
        np.testing.assert_array_equal(model.item_values_, item_values)
        np.testing.assert_allclose(model.probability_[model.user_rows(users)].toarray(), before)


def events(rows):
    """(user, item, event_type, day, order_id) rows."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "day", "order_id"])
    frame["timestamp"] = pd.Timestamp("2026-03-01") + pd.to_timedelta(frame.pop("day"), unit="D")
    frame["value"] = 1.0
    return frame


# u1: o1 day 1 (a, b), o2 day 5 (a, c), o3 day 9 (a, b) viewed d on day 8 and day 10;
# u2: one order only; u3: no order ids, purchases on days 2, 2 and 4
EVENTS = events([
    ("u1", "a", "purchase", 1, "o1"), ("u1", "b", "purchase", 1, "o1"),
    ("u1", "a", "purchase", 5, "o2"), ("u1", "c", "purchase", 5, "o2"),
    ("u1", "d", "view", 8, None),
    ("u1", "a", "cart", 9, "o3"), ("u1", "a", "purchase", 9, "o3"), ("u1", "b", "purchase", 9, "o3"),
    ("u1", "d", "view", 10, None),
    ("u2", "a", "purchase", 3, "o4"),
    ("u3", "x", "purchase", 2, None), ("u3", "y", "purchase", 2, None), ("u3", "x", "purchase", 4, None),
])


def test_the_label_basket_is_each_users_last_and_only_earlier_events_describe_it():
    b = baskets(EVENTS, ["purchase"])
    assert has_repeats(b)
    assert not has_repeats(b[b["user_id"] == "u2"])
    labels = last_baskets(b)
    assert labels[["user_id", "basket"]].values.tolist() == [["u1", "o3"], ["u3", "day 2026-03-05"]]
    kept = EVENTS[before_labels(EVENTS, labels)]
    # u1 keeps o1, o2 and the day-8 view; u2 keeps everything; u3 keeps day 2
    assert kept[["user_id", "item_id", "event_type"]].values.tolist() == [
        ["u1", "a", "purchase"], ["u1", "b", "purchase"], ["u1", "a", "purchase"], ["u1", "c", "purchase"],
        ["u1", "d", "view"], ["u2", "a", "purchase"], ["u3", "x", "purchase"], ["u3", "y", "purchase"],
    ]


def test_skipped_where_nobody_buys_anything_twice():
    ratings = events([(f"u{u}", f"m{(u + i) % 9}", "rating", i, None) for u in range(20) for i in range(5)])
    data = InteractionData.build(ratings, pd.DataFrame({"item_id": []}), pd.DataFrame({"user_id": []}), InteractionsConfig())
    with pytest.raises(ModelSkipped, match="reorder skipped: no user has the same item in two orders"):
        ReorderRecommender(CONFIG).fit(data)


@pytest.fixture(scope="module")
def shop():
    tables = load_source("synthetic", None, preset="small")
    parts = temporal_split(tables.events, SplitConfig())
    history = pd.concat([parts["train"], parts["valid"]], ignore_index=True)
    data = InteractionData.build(history, tables.items, tables.users, InteractionsConfig())
    return ReorderRecommender(ReorderConfig(max_per_user=5)).fit(data), data, parts["test"]


def test_buy_again_lists_the_users_bought_items_most_probable_first(shop):
    model, data, _ = shop
    table = model.tables()["buy_again"]
    assert list(table.columns) == ["user_id", "item_id", "probability", "rank"]
    assert table.groupby("user_id").size().max() == 5
    assert table.groupby("user_id")["rank"].agg(list).map(lambda r: r == list(range(1, len(r) + 1))).all()
    assert table.groupby("user_id")["probability"].agg(lambda p: p.is_monotonic_decreasing).all()
    assert table["probability"].between(0, 1, inclusive="neither").all()
    bought = data.events[data.events["event_type"] == "purchase"]
    had = set(zip(bought["user_id"].astype(str), bought["item_id"].astype(str)))
    assert set(zip(table["user_id"], table["item_id"])) <= had
    # the same pairs, every one of them, lead the unfiltered lists
    probabilities = model.reorder_probabilities()
    assert set(zip(probabilities["user_id"], probabilities["item_id"])) == had
    user = table.loc[table["rank"] == 3, "user_id"].iloc[0]
    recs = model.recommend([user], k=3, exclude_seen=False)
    assert list(recs["item_id"]) == list(table[table["user_id"] == user]["item_id"][:3])


def test_it_foretells_the_next_order_better_than_the_baselines(shop):
    model, data, held_out = shop
    bought = data.events[data.events["event_type"] == "purchase"]
    scores = buy_again_metrics(model.reorder_probabilities(), bought, held_out[held_out["event_type"] == "purchase"])
    assert scores["auc"] > 0.8
    assert scores["basket_f1"] > max(scores["basket_f1_repeat_last_basket"], scores["basket_f1_top_frequent"])


def test_reasons_count_the_orders_with_the_item():
    data = InteractionData.build(EVENTS, pd.DataFrame({"item_id": []}), pd.DataFrame({"user_id": []}), InteractionsConfig())
    model = ReorderRecommender(CONFIG).fit(data)
    recs = model.recommend(["u1", "u3"], k=3, exclude_seen=False, reasons=True)
    assert set(zip(recs["user_id"], recs["item_id"], recs["reason"])) == {
        ("u1", "a", "you bought it in 3 of your 3 orders, the last one included"),
        ("u1", "b", "you bought it in 2 of your 3 orders, the last one included"),
        ("u1", "c", "you bought it in 1 of your 3 orders, last 1 order ago"),
        ("u3", "x", "you bought it in 2 of your 2 orders, the last one included"),
        ("u3", "y", "you bought it in 1 of your 2 orders, last 1 order ago"),
        ("u3", "a", "popular with other customers"),
    }


def test_save_keeps_the_booster_and_the_feature_statistics(shop, tmp_path):
    model, _, _ = shop
    model.save(tmp_path / "m")
    stats = json.loads((tmp_path / "m" / "feature_stats.json").read_text())
    assert set(stats) == {"user_features", "item_features", "user_item_features"}
    assert stats["user_item_features"]["times_bought"]["min"] >= 1
    loaded = ReorderRecommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.tables()["buy_again"], model.tables()["buy_again"])
    assert loaded.booster_.model_to_string() == model.booster_.model_to_string()


def test_the_booster_learns_from_a_user_sample_and_scores_everyone(shop):
    full, data, _ = shop
    sampled = ReorderRecommender(ReorderConfig(max_per_user=5, max_train_users=300)).fit(data)
    assert sampled.trained_on_[2] == 300 < full.trained_on_[2]
    assert sampled.trained_on_[0] < full.trained_on_[0]
    served = sampled.tables()["buy_again"]
    assert set(served["user_id"]) == set(full.tables()["buy_again"]["user_id"])


def test_features_read_a_slice_at_a_time_give_the_same_model(shop, monkeypatch):
    whole, data, _ = shop
    assert whole.probability_.nnz > 1000
    monkeypatch.setattr(reorder, "BATCH_PAIRS", 997)  # many slices, and users split across them
    sliced = ReorderRecommender(ReorderConfig(max_per_user=5)).fit(data)
    assert sliced.booster_.model_to_string() == whole.booster_.model_to_string()
    for name in ("probability_", "orders_with_", "orders_since_"):
        assert (getattr(sliced, name) != getattr(whole, name)).nnz == 0
    np.testing.assert_array_equal(sliced.user_orders_, whole.user_orders_)
