import numpy as np
import pandas as pd
import pytest

from recmill.config import InteractionsConfig, SegmentsConfig
from recmill.data.interactions import InteractionData
from recmill.models.segments import SegmentsRecommender, category_summary, choose_k, rfm_features, segment_labels
from tests.models.contract import RecommenderContract

START = pd.Timestamp("2026-01-01")


class TestSegmentsContract(RecommenderContract):
    model_class = SegmentsRecommender
    config = SegmentsConfig(k_max=4)


def build(events: list[tuple], items: pd.DataFrame) -> InteractionData:
    """Events as (user, item, day, event_type, order_id or None, value)."""
    frame = pd.DataFrame(events, columns=["user_id", "item_id", "day", "event_type", "order_id", "value"])
    frame["timestamp"] = START + pd.to_timedelta(frame.pop("day"), unit="D")
    return InteractionData.build(frame, items, pd.DataFrame({"user_id": []}), InteractionsConfig())


def three_groups() -> InteractionData:
    """6 heavy weekly shoppers with 8-item baskets, 6 users whose 4 small orders were a year
    ago, 6 one-off buyers of gifts (2 items, one order)."""
    events = []
    for u in range(6):
        for week in range(20):
            events += [(f"heavy{u}", f"h{(week + j) % 10}", 230 + 7 * week, "purchase", f"heavy{u}-{week}", 1.0) for j in range(8)]
            events += [(f"lapsed{u}", f"l{(week + j) % 5}", 10 * week + u, "purchase", f"lapsed{u}-{week}", 1.0) for j in range(3) if week < 4]
    for u, second in enumerate(["o1", "o1", "o1", "o2", "o2", "o3"]):
        events += [(f"oneoff{u}", item, 170 + 5 * u, "purchase", f"oneoff{u}", 1.0) for item in ("o0", second)]
    ids = [f"h{i}" for i in range(10)] + [f"l{i}" for i in range(5)] + [f"o{i}" for i in range(4)]
    items = pd.DataFrame(
        {
            "item_id": ids,
            "name": ids,
            "category": ["gifts" if i.startswith("o") else "pantry" for i in ids],
            "price": [{"h": 3.0, "l": 2.0, "o": 5.0}[i[0]] for i in ids],
        }
    )
    return build(events, items)


def two_users() -> InteractionData:
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["fruit", "fruit", "dairy"], "price": [2.5, 4.0, 10.0]})
    events = [
        ("A", "a", 0, "purchase", "1", 1.0),
        ("A", "b", 0, "purchase", "1", 1.0),
        ("A", "a", 10, "purchase", "2", 1.0),
        ("A", "c", 10, "purchase", "2", 1.0),
        ("B", "b", 14, "purchase", "3", 1.0),
        ("B", "c", 14, "purchase", "3", 1.0),
        ("B", "a", 20, "cart", "4", 1.0),  # the latest event; a cart is not a purchase
        ("C", "a", 5, "view", None, 1.0),
    ]
    return build(events, items)


def test_rfm_by_hand():
    features, categories = rfm_features(two_users(), top_categories=2)
    assert categories == ["fruit", "dairy"]
    assert features.index.tolist() == ["A", "B", "C"]
    assert features.columns.tolist() == ["recency_days", "frequency", "monetary", "basket_size", "fruit", "dairy"]
    # A: last order day 10, two orders of two items, 2.5 + 4 + 2.5 + 10, 3 of 4 items fruit
    # B: one order on day 14 (4 + 10); C never bought: the largest recency, zeros
    assert features.to_numpy().tolist() == [
        [10.0, 2.0, 19.0, 2.0, 0.75, 0.25],
        [6.0, 1.0, 14.0, 2.0, 0.5, 0.5],
        [10.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
    assert rfm_features(two_users(), top_categories=1)[1] == ["fruit"]


def test_ratings_fall_back_to_values_and_active_days():
    # no prices, no orders: monetary is the summed ratings, frequency the active days
    events = [("u1", "m1", 0, "rating", None, 4.0), ("u1", "m2", 0, "rating", None, 5.0), ("u1", "m3", 3, "rating", None, 2.0), ("u2", "m1", 3, "rating", None, 1.0)]
    features, categories = rfm_features(build(events, pd.DataFrame({"item_id": ["m1", "m2", "m3"]})), top_categories=8)
    assert categories == []
    assert features.to_numpy().tolist() == [[0.0, 2.0, 11.0, 1.5], [0.0, 1.0, 1.0, 1.0]]


def test_fixed_k_recovers_the_groups_and_labels_them():
    data = three_groups()
    model = SegmentsRecommender(SegmentsConfig(k=3), seed=0).fit(data)
    users = model.tables()["user_segments"]
    groups = users["user_id"].str.rstrip("0123456789")
    assert (users.groupby(groups)["segment"].nunique() == 1).all()
    assert users.groupby(groups)["label"].first().to_dict() == {
        "heavy": "frequent big baskets",
        "lapsed": "lapsed",
        "oneoff": "one-off buyers / gifts lovers",
    }


def test_label_rules():
    # recency, frequency, monetary, basket size, gifts share of one user per segment; averages 74.2, 6.67, 125, 4.83, 0.04
    rows = {
        "no purchases yet": [200, 0, 0, 0, 0],
        "lapsed": [200, 3, 60, 5, 0],
        "frequent big baskets": [10, 20, 400, 8, 0],
        "frequent small baskets": [10, 20, 200, 2, 0],
        "frequent shoppers": [10, 20, 300, 5, 0],
        "high spenders": [60, 3, 250, 5, 0],
        "new customers": [10, 1, 20, 5, 0],
        "one-off buyers": [90, 1, 20, 5, 0],
        "occasional big baskets": [90, 3, 80, 8, 0],
        "recent occasional shoppers": [30, 3, 60, 5, 0],
        "occasional low spenders": [90, 3, 30, 5, 0],
        "occasional shoppers / gifts lovers": [90, 3, 80, 5, 0.5],
    }
    features = pd.DataFrame(list(rows.values()), columns=["recency_days", "frequency", "monetary", "basket_size", "gifts"], dtype=float)
    assert segment_labels(features, np.arange(len(rows)), ["gifts"]) == list(rows)
    # two alike segments: the second gets a number; one segment is everyone
    assert segment_labels(features.iloc[[2, 2, 1]], np.array([0, 1, 2]), []) == ["frequent big baskets", "frequent big baskets 2", "lapsed"]
    assert segment_labels(features, np.zeros(len(rows), dtype=int), ["gifts"]) == ["all customers"]


def test_silhouette_picks_the_number_of_groups():
    assert SegmentsRecommender(SegmentsConfig(), seed=0).fit(three_groups()).tables()["segment_profiles"]["size"].tolist() == [6, 6, 6]
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(centre, 0.1, size=(25, 2)) for centre in ([0, 0], [5, 0], [0, 5], [5, 5])])
    assert choose_k(blobs, SegmentsConfig(k_min=2, k_max=7), seed=0) == 4
    assert choose_k(blobs, SegmentsConfig(k=3), seed=0) == 3


def test_few_users_make_one_segment():
    assert choose_k(np.array([[0.0], [1.0]]), SegmentsConfig(), seed=0) == 1
    assert choose_k(np.array([[0.0], [1.0]]), SegmentsConfig(k=5), seed=0) == 2  # at most one per distinct user
    data = two_users()
    data = InteractionData.build(data.events[data.events["user_id"] != "C"], data.items, data.users, InteractionsConfig())
    profiles = SegmentsRecommender(SegmentsConfig(), seed=0).fit(data).tables()["segment_profiles"]
    assert profiles["label"].tolist() == ["all customers"]
    assert profiles[["size", "recency_days", "frequency", "monetary", "basket_size"]].to_numpy().tolist() == [[2, 8.0, 1.5, 16.5, 2.0]]


def test_category_summary():
    shares = pd.Series({"bakery": 0.05, "produce": 0.31, "frozen": 0.0, "dairy eggs": 0.18, "snacks": 0.09})
    assert category_summary(shares) == "produce 31%, dairy eggs 18%, snacks 9%"
    assert category_summary(pd.Series({"frozen": 0.0})) == ""


def test_tables():
    model = SegmentsRecommender(SegmentsConfig(k=3), seed=0).fit(three_groups())
    tables = model.tables()
    users, profiles = tables["user_segments"], tables["segment_profiles"]
    assert users.columns.tolist() == ["user_id", "segment", "label", "recency_days", "frequency", "monetary"]
    assert profiles.columns.tolist() == ["segment", "label", "size", "recency_days", "frequency", "monetary", "basket_size", "top_categories"]
    assert profiles["size"].sum() == len(users) == 18
    assert profiles["segment"].tolist() == [0, 1, 2]
    heavy = profiles[profiles["label"] == "frequent big baskets"].iloc[0]
    assert [heavy["frequency"], heavy["monetary"], heavy["basket_size"], heavy["top_categories"]] == [20.0, 480.0, 8.0, "pantry 100%"]
    assert users.set_index("user_id").loc["lapsed0", ["frequency", "monetary"]].tolist() == [4.0, 24.0]


def test_recommends_what_the_segment_has():
    # one-off buyers all have o0; o1 three of them, o2 two, o3 one
    model = SegmentsRecommender(SegmentsConfig(k=3, items_per_segment=3), seed=0).fit(three_groups())
    recs = model.recommend(["oneoff5"], k=3, reasons=True)
    assert recs["item_id"].tolist()[:2] == ["o1", "o2"]
    np.testing.assert_allclose(recs["score"][:2], [3 + 3 / 7, 2 + 2 / 7])  # + users who have it / (most + 1)
    assert recs["reason"].tolist()[:2] == ["popular with shoppers like you (one-off buyers / gifts lovers)"] * 2
    # o3 is beyond the segment's 3 items: overall popularity decides the rest
    assert recs["reason"][2] == "popular in pantry"


def test_segment_of_and_assign():
    data = three_groups()
    model = SegmentsRecommender(SegmentsConfig(k=3), seed=0).fit(data)
    segments = model.segment_of(["heavy0", "heavy5", "nobody", "oneoff1"])
    assert segments[0] == segments[1] != segments[3]
    assert segments[2] == -1
    features, _ = rfm_features(data, SegmentsConfig().top_categories)
    np.testing.assert_array_equal(model.assign(features), model.segment_of(data.user_ids))


def test_loaded_model_gives_identical_tables(tmp_path):
    model = SegmentsRecommender(SegmentsConfig(), seed=0).fit(three_groups())
    loaded = SegmentsRecommender.load(model.save(tmp_path / "m"))
    for name, table in model.tables().items():
        pd.testing.assert_frame_equal(table, loaded.tables()[name])
    np.testing.assert_array_equal(loaded.segment_of(["heavy1", "x"]), model.segment_of(["heavy1", "x"]))


@pytest.mark.parametrize("seed", [0, 5])
def test_segments_are_numbered_by_size(seed):
    data = three_groups()
    drop = data.events["user_id"].isin(["lapsed0", "lapsed1", "oneoff0"])
    data = InteractionData.build(data.events[~drop], data.items, data.users, InteractionsConfig())
    profiles = SegmentsRecommender(SegmentsConfig(k=3), seed=seed).fit(data).tables()["segment_profiles"]
    assert profiles["size"].tolist() == [6, 5, 4]
