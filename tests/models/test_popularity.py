import pandas as pd

from recmill.config import InteractionsConfig, PopularityConfig
from recmill.data.interactions import InteractionData
from recmill.models.popularity import PopularityRecommender
from tests.models.contract import RecommenderContract


class TestPopularityContract(RecommenderContract):
    model_class = PopularityRecommender


def test_ranks_by_distinct_users_then_item_id():
    # a: 3 users (u1 twice), b: 2 users, c: 2 users, d: 1 user
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u3", "u1", "u2", "u2", "u3", "u4"],
            "item_id": ["a", "a", "a", "a", "b", "b", "c", "c", "d"],
            "event_type": "purchase",
            "value": 1.0,
            "timestamp": pd.Timestamp("2026-01-01"),
        }
    )
    data = InteractionData.build(events, pd.DataFrame({"item_id": []}), pd.DataFrame({"user_id": []}), InteractionsConfig())
    model = PopularityRecommender(PopularityConfig()).fit(data)
    recs = model.recommend(["new", "u4"], k=3)
    assert recs[recs.user_id == "new"][["item_id", "score"]].values.tolist() == [["a", 3.0], ["b", 2.0], ["c", 2.0]]
    assert recs[recs.user_id == "u4"]["item_id"].tolist() == ["a", "b", "c"]  # d is seen
    assert recs[recs.user_id == "u1"].empty


def test_window_counts_recent_events_only():
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u1"],
            "item_id": ["old", "old", "old", "new"],
            "event_type": "purchase",
            "value": 1.0,
            "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03", "2026-01-01"]),
        }
    )
    data = InteractionData.build(events, pd.DataFrame({"item_id": []}), pd.DataFrame({"user_id": []}), InteractionsConfig())
    model = PopularityRecommender(PopularityConfig(window_days=30)).fit(data)
    assert model.recommend(["x"], k=1)["item_id"].tolist() == ["new"]


def test_each_users_list_is_the_global_order_without_their_items():
    # order by users: a 4, b 3, c 2, d 1, e 1; u1 has a and c, u2 has every item but e
    pairs = [("u1", "a"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u2", "d"),
             ("u3", "a"), ("u3", "b"), ("u4", "a"), ("u4", "b"), ("u5", "e")]
    events = pd.DataFrame(pairs, columns=["user_id", "item_id"]).assign(event_type="purchase", value=1.0, timestamp=pd.Timestamp("2026-01-01"))
    data = InteractionData.build(events, pd.DataFrame({"item_id": []}), pd.DataFrame({"user_id": []}), InteractionsConfig())
    model = PopularityRecommender(PopularityConfig()).fit(data)
    recs = model.recommend(["u1", "u2", "u5"], k=3)
    lists = recs.groupby("user_id")["item_id"].agg(list).to_dict()
    assert lists == {"u1": ["b", "d", "e"], "u2": ["e"], "u5": ["a", "b", "c"]}
    assert recs[recs.user_id == "u1"]["score"].tolist() == [3.0, 1.0, 1.0]
    assert model.recommend(["u2"], k=2, exclude_seen=False)["item_id"].tolist() == ["a", "b"]
