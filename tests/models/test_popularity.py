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
