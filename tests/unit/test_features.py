import json
import math
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from recmill.features import build_features

CUTOFF = datetime(2026, 1, 10)
MIN = 1 / 1440  # a minute in days

# (user, item, "month-day hour:minute" in January 2026, event type, order id)
EVENTS = [
    # u1: three orders with order ids, numbered out of time order; the cart event does
    # not count for cart positions
    ("u1", "c", "01 09:59", "cart", "o30"),
    ("u1", "a", "01 10:00", "purchase", "o30"),
    ("u1", "b", "01 10:01", "purchase", "o30"),
    ("u1", "a", "03 10:00", "purchase", "o10"),
    ("u1", "c", "03 10:02", "purchase", "o10"),
    ("u1", "d", "05 12:00", "view", None),
    ("u1", "c", "07 10:00", "purchase", "o20"),
    ("u1", "a", "07 10:01", "purchase", "o20"),
    ("u1", "b", "07 10:02", "purchase", "o20"),
    ("u1", "c", "12 10:00", "purchase", "o40"),  # after the cutoff
    # u2: no order ids, so each day is an order; c twice on the 4th
    ("u2", "a", "01 08:00", "view", None),
    ("u2", "a", "02 09:00", "purchase", None),
    ("u2", "c", "02 18:00", "purchase", None),
    ("u2", "c", "04 09:00", "purchase", None),
    ("u2", "c", "04 09:10", "purchase", None),
    ("u2", "c", "09 09:00", "purchase", None),
    ("u2", "e", "09 09:30", "purchase", None),
    ("u3", "d", "10 00:00", "purchase", "o90"),  # at the cutoff
    ("u4", "b", "06 00:00", "view", None),
]
ITEMS = pd.DataFrame(
    {
        "item_id": ["a", "b", "c", "d", "e", "f"],
        "name": ["Milk", "Butter", "Apples", "Pears", "Soap", "Figs"],
        "category": ["dairy", "dairy", "produce", "produce", None, "produce"],
        "price": [2.0, 4.0, 1.0, 3.0, None, 5.0],
        "aisle": ["milk", "butter", "fruit", "fruit", None, "fruit"],
        "department": ["dairy eggs", "dairy eggs", "produce", "produce", None, "produce"],
    }
)


def events_frame(rows=EVENTS) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type", "order_id"])
    df["timestamp"] = pd.to_datetime("2026-01-" + df["timestamp"])
    df["value"] = 1.0
    return df


def build(tmp_path, events=None, items=ITEMS, cutoff=CUTOFF, name="out"):
    (events if events is not None else events_frame()).to_parquet(tmp_path / "events.parquet")
    item_path = None
    if items is not None:
        items.to_parquet(tmp_path / "items.parquet")
        item_path = tmp_path / "items.parquet"
    paths = build_features(tmp_path / "events.parquet", item_path, tmp_path / name, cutoff=cutoff, threads=1)
    return {k: pd.read_parquet(v) if v.suffix == ".parquet" else json.loads(v.read_text()) for k, v in paths.items()}


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return build(tmp_path_factory.mktemp("features"))


def row(frame, **key):
    match = frame.loc[(frame[list(key)] == pd.Series(key)).all(axis=1)]
    assert len(match) == 1
    return match.iloc[0].to_dict()


def check(actual: dict, expected: dict):
    assert set(actual) - set(expected) <= {"user_id", "item_id"}
    for col, want in expected.items():
        got = actual[col]
        if want is None:
            assert got is None or (isinstance(got, float) and math.isnan(got)), col
        elif isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-12), col
        else:
            assert got == want, col


def test_user_features(features):
    users = features["user_features"]
    assert sorted(users.user_id) == ["u1", "u2", "u4"]  # u3's only event is at the cutoff
    # u1, in time order: o30 {a, b} 01-01 10:00, o10 {a, c} 01-03 10:00, o20 {c, a, b} 01-07 10:00
    check(row(users, user_id="u1"), {
        "n_orders": 3,
        "n_positive": 7,
        "mean_basket_size": 7 / 3,  # (2 + 2 + 3) / 3
        "mean_days_between_orders": 3.0,  # 6 days from o30 to o20 / 2 gaps
        "days_since_last_order": 2 + 14 / 24,  # 01-07 10:00 -> 01-10 00:00
        "n_items": 3,
        "reorder_share": 4 / 7,  # a in o10, a, c and b in o20
        "top_category": "dairy",
        "top_category_share": 5 / 7,  # a x3 + b x2 of 7
        "mean_price": 16 / 7,  # (2.0 * 3 + 4.0 * 2 + 1.0 * 2) / 7
    })
    # u2: days 01-02 {a, c}, 01-04 {c, c}, 01-09 {c, e}; e has no category nor price
    check(row(users, user_id="u2"), {
        "n_orders": 3,
        "n_positive": 6,
        "mean_basket_size": 5 / 3,  # (2 + 1 + 2) / 3 distinct items
        "mean_days_between_orders": 3.5,  # 01-02 09:00 -> 01-09 09:00 = 7 days / 2
        "days_since_last_order": 15 / 24,  # 01-09 09:00 -> 01-10 00:00
        "n_items": 3,
        "reorder_share": 0.5,  # c twice on 01-04 and once on 01-09, of 6
        "top_category": "produce",
        "top_category_share": 0.8,  # c x4 of the 5 with a category
        "mean_price": 1.2,  # (2.0 + 1.0 * 4) / 5 priced events
    })
    check(row(users, user_id="u4"), {  # a view only
        "n_orders": 0, "n_positive": 0, "mean_basket_size": None, "mean_days_between_orders": None,
        "days_since_last_order": None, "n_items": 0, "reorder_share": None, "top_category": None,
        "top_category_share": None, "mean_price": None,
    })


def test_item_features(features):
    items = features["item_features"]
    assert sorted(items.item_id) == ["a", "b", "c", "d", "e", "f"]
    # cart positions among purchases: o30 a=1 b=2, o10 a=1 c=2, o20 c=1 a=2 b=3
    check(row(items, item_id="a"), {
        "n_users": 2, "n_positive": 4,
        "reorder_rate": 0.5,  # u1's a in o10 and o20, of 4
        "repeat_user_share": 0.5,  # u1 of u1, u2
        "mean_cart_position": 4 / 3,  # (1 + 1 + 2) / 3
        "price": 2.0, "price_level": 0.0,  # cheapest of dairy (2.0, 4.0)
        "category": "dairy", "aisle": "milk", "department": "dairy eggs",
        "age_days": 8 + 16 / 24,  # u2's view 01-01 08:00 -> 01-10
        "view_conversion": 4.0,  # 4 purchases / 1 view
    })
    check(row(items, item_id="b"), {
        "n_users": 1, "n_positive": 2, "reorder_rate": 0.5, "repeat_user_share": 1.0,
        "mean_cart_position": 2.5,  # (2 + 3) / 2
        "price": 4.0, "price_level": 1.0, "category": "dairy", "aisle": "butter", "department": "dairy eggs",
        "age_days": 8 + 839 * MIN,  # 01-01 10:01 -> 01-10: 8 days 13:59
        "view_conversion": 2.0,  # u4's view
    })
    check(row(items, item_id="c"), {
        "n_users": 2, "n_positive": 6,
        "reorder_rate": 4 / 6,  # u1's in o20, u2's on 01-04 (2) and 01-09
        "repeat_user_share": 1.0,
        "mean_cart_position": 1.5,  # u1: 2 in o10, 1 in o20; u2 has no order ids
        "price": 1.0, "price_level": 0.0,  # produce prices 1, 3, 5
        "category": "produce", "aisle": "fruit", "department": "produce",
        "age_days": 8 + 841 * MIN,  # the cart event 01-01 09:59
        "view_conversion": None,  # never viewed
    })
    check(row(items, item_id="d"), {  # viewed; its purchase at the cutoff does not count
        "n_users": 0, "n_positive": 0, "reorder_rate": None, "repeat_user_share": None, "mean_cart_position": None,
        "price": 3.0, "price_level": 0.5, "category": "produce", "aisle": "fruit", "department": "produce",
        "age_days": 4.5, "view_conversion": 0.0,
    })
    check(row(items, item_id="e"), {
        "n_users": 1, "n_positive": 1, "reorder_rate": 0.0, "repeat_user_share": 0.0, "mean_cart_position": None,
        "price": None, "price_level": None, "category": None, "aisle": None, "department": None,
        "age_days": 14.5 / 24, "view_conversion": None,
    })
    check(row(items, item_id="f"), {  # in the catalogue, never seen
        "n_users": 0, "n_positive": 0, "reorder_rate": None, "repeat_user_share": None, "mean_cart_position": None,
        "price": 5.0, "price_level": 1.0, "category": "produce", "aisle": "fruit", "department": "produce",
        "age_days": None, "view_conversion": None,
    })


def test_user_item_features(features):
    pairs = features["user_item_features"]
    assert sorted(zip(pairs.user_id, pairs.item_id)) == [("u1", "a"), ("u1", "b"), ("u1", "c"),
                                                         ("u2", "a"), ("u2", "c"), ("u2", "e")]
    check(row(pairs, user_id="u1", item_id="a"), {
        "times_bought": 3, "order_share": 1.0, "orders_since_last": 0,
        "days_since_last": 2 + 839 * MIN,  # 01-07 10:01
        "mean_cart_position": 4 / 3, "longest_streak": 3, "in_last_order": True,
    })
    check(row(pairs, user_id="u1", item_id="b"), {
        "times_bought": 2, "order_share": 2 / 3, "orders_since_last": 0,
        "days_since_last": 2 + 838 * MIN,  # 01-07 10:02
        "mean_cart_position": 2.5, "longest_streak": 1,  # o30 and o20, not consecutive
        "in_last_order": True,
    })
    check(row(pairs, user_id="u1", item_id="c"), {
        "times_bought": 2,  # o40 is after the cutoff
        "order_share": 2 / 3, "orders_since_last": 0, "days_since_last": 2 + 14 / 24,
        "mean_cart_position": 1.5, "longest_streak": 2, "in_last_order": True,
    })
    check(row(pairs, user_id="u2", item_id="a"), {
        "times_bought": 1, "order_share": 1 / 3, "orders_since_last": 2,
        "days_since_last": 7 + 15 / 24,  # 01-02 09:00
        "mean_cart_position": None, "longest_streak": 1, "in_last_order": False,
    })
    check(row(pairs, user_id="u2", item_id="c"), {
        "times_bought": 4, "order_share": 1.0, "orders_since_last": 0, "days_since_last": 15 / 24,
        "mean_cart_position": None, "longest_streak": 3, "in_last_order": True,
    })
    check(row(pairs, user_id="u2", item_id="e"), {
        "times_bought": 1, "order_share": 1 / 3, "orders_since_last": 0, "days_since_last": 14.5 / 24,
        "mean_cart_position": None, "longest_streak": 1, "in_last_order": True,
    })


def test_events_at_or_after_the_cutoff_change_nothing(features, tmp_path):
    events = events_frame()
    before = build(tmp_path, events[events.timestamp < CUTOFF])
    for name in ("user_features", "item_features", "user_item_features"):
        pd.testing.assert_frame_equal(before[name], features[name])
    assert before["feature_stats"] == features["feature_stats"]


def test_without_a_cutoff_every_event_counts_up_to_the_latest(tmp_path):
    out = build(tmp_path, cutoff=None)
    u1 = row(out["user_features"], user_id="u1")
    assert (u1["n_orders"], u1["days_since_last_order"]) == (4, 0.0)  # o40 at 01-12 10:00 is the latest event
    assert row(out["user_features"], user_id="u3")["n_orders"] == 1


def test_without_items_the_item_attributes_are_missing(tmp_path):
    out = build(tmp_path, items=None)
    assert sorted(out["item_features"].item_id) == ["a", "b", "c", "d", "e"]
    assert out["item_features"][["price", "price_level", "category", "aisle", "department"]].isna().all().all()
    assert out["user_features"][["top_category", "top_category_share", "mean_price"]].isna().all().all()
    assert row(out["user_features"], user_id="u1")["n_orders"] == 3


def test_feature_stats(features):
    stats = features["feature_stats"]
    assert set(stats) == {"user_features", "item_features", "user_item_features"}
    assert set(stats["user_features"]) == {
        "n_orders", "n_positive", "mean_basket_size", "mean_days_between_orders", "days_since_last_order",
        "n_items", "reorder_share", "top_category_share", "mean_price"}
    assert set(stats["item_features"]) == {
        "n_users", "n_positive", "reorder_rate", "repeat_user_share", "mean_cart_position", "price",
        "price_level", "age_days", "view_conversion"}
    assert set(stats["user_item_features"]) == {
        "times_bought", "order_share", "orders_since_last", "days_since_last", "mean_cart_position",
        "longest_streak", "in_last_order"}
    # n_orders of u1, u2, u4: 3, 3, 0
    assert stats["user_features"]["n_orders"] == {
        "count": 3, "nulls": 0, "mean": 2.0, "std": pytest.approx(math.sqrt(3)),  # deviations 1, 1, -2 -> 6 / 2
        "min": 0.0, "p01": pytest.approx(0.06), "p50": 3.0, "p99": 3.0, "max": 3.0}  # p01: 0 + 0.01 * 2 * 3
    # mean_basket_size: 7/3, 5/3 and NULL for u4
    basket = stats["user_features"]["mean_basket_size"]
    assert (basket["count"], basket["nulls"], basket["mean"]) == (2, 1, pytest.approx(2.0))
    assert stats["user_item_features"]["in_last_order"]["mean"] == pytest.approx(5 / 6)


def test_needs_positive_event_types(tmp_path):
    with pytest.raises(ValueError, match="positive_event_types"):
        build_features(tmp_path / "events.parquet", None, tmp_path, positive_event_types=())


def test_the_features_do_not_depend_on_duckdb_threads(tmp_path):
    # enough rows for DuckDB to split the work, and prices whose sums round by order
    rng = np.random.default_rng(3)
    n = 400_000
    events = pd.DataFrame({
        "user_id": rng.integers(0, 2_000, n).astype(str),
        "item_id": rng.integers(0, 500, n).astype(str),
        "timestamp": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), unit="s"),
        "event_type": "purchase",
        "order_id": None,
        "value": 1.0,
    })
    events.to_parquet(tmp_path / "events.parquet")
    items = pd.DataFrame({"item_id": np.arange(500).astype(str), "category": "c", "price": rng.random(500) * 1e3 + 1e-7})
    items.to_parquet(tmp_path / "items.parquet")
    outputs = [
        build_features(tmp_path / "events.parquet", tmp_path / "items.parquet", tmp_path / f"threads{t}", threads=t)
        for t in (1, 2)
    ]
    for name in ("user_features", "item_features", "user_item_features", "feature_stats"):
        assert outputs[0][name].read_bytes() == outputs[1][name].read_bytes(), name


def test_integer_codes_in_the_ids_order_give_the_same_tables(features, tmp_path):
    # each id as its position among the sorted ids: the same rows in the same order, the same statistics
    events, items = events_frame(), ITEMS.copy()
    users, item_ids = np.sort(events["user_id"].unique()), np.sort(items["item_id"].unique())
    events["user_id"] = np.searchsorted(users, events["user_id"]).astype(np.int32)
    events["item_id"] = np.searchsorted(item_ids, events["item_id"]).astype(np.int32)
    items["item_id"] = np.searchsorted(item_ids, items["item_id"]).astype(np.int32)
    (tmp_path / "coded").mkdir()
    coded = build(tmp_path / "coded", events=events, items=items)
    assert coded["feature_stats"] == features["feature_stats"]
    for name in ("user_features", "item_features", "user_item_features"):
        table = coded[name]
        assert table["item_id" if name == "item_features" else "user_id"].dtype == np.int32
        for column, ids in (("user_id", users), ("item_id", item_ids)):
            if column in table:
                table[column] = ids[table[column]]
        pd.testing.assert_frame_equal(table, features[name], check_dtype=False)


def test_only_the_tables_asked_for_and_no_statistics_when_none_are_wanted(features, tmp_path):
    events_frame().to_parquet(tmp_path / "events.parquet")
    ITEMS.to_parquet(tmp_path / "items.parquet")
    paths = build_features(tmp_path / "events.parquet", tmp_path / "items.parquet", tmp_path / "some",
                           cutoff=CUTOFF, tables=("user_features", "item_features"), stats=False, threads=1)
    assert set(paths) == {"user_features", "item_features"}
    assert sorted(p.name for p in (tmp_path / "some").iterdir()) == ["item_features.parquet", "user_features.parquet"]
    for name in paths:  # the same tables as a whole build's
        pd.testing.assert_frame_equal(pd.read_parquet(paths[name]), features[name])
