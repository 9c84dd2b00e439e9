"""The synthetic shop: deterministic, sized as documented, and shaped like real shopping."""

from __future__ import annotations

import pandas as pd
import pytest

from recmill.data.sources.synthetic import generate
from recmill.schema import EVENT_COLUMNS


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", seed=42)


def test_same_seed_same_tables(tiny):
    assert generate("tiny", seed=42).fingerprint() == tiny.fingerprint()
    assert generate("tiny", seed=43).fingerprint() != tiny.fingerprint()


def test_tiny_sizes_and_types(tiny):
    events, items, users = tiny.events, tiny.items, tiny.users
    assert len(users) == 60 and len(items) == 80
    assert 2_000 <= len(events) <= 10_000
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert events["timestamp"].dtype == "datetime64[ns]"
    assert events["timestamp"].min() >= pd.Timestamp("2025-07-01") and events["timestamp"].max() < pd.Timestamp("2026-07-01")
    for df, col in ((events, "user_id"), (events, "item_id"), (items, "item_id"), (users, "user_id")):
        assert df[col].dtype == "string" and df[col].notna().all()
    assert set(events["event_type"]) == {"view", "cart", "purchase"}
    assert (events["value"] == 1.0).all()
    assert events.loc[events["event_type"] == "view", "order_id"].isna().all()
    assert events.loc[events["event_type"] != "view", "order_id"].notna().all()
    assert tiny.origins == {}


def test_catalogue(tiny):
    items = tiny.items
    assert list(items.columns) == ["item_id", "name", "description", "category", "tags", "brand", "price", "aisle", "department"]
    assert items["item_id"].is_unique and (items["price"] > 0).all()
    assert (items["category"] == items["aisle"]).all()
    assert items["department"].nunique() >= 5 and items["aisle"].nunique() >= 10
    assert items[["name", "description", "tags", "brand"]].notna().all().all()
    # department-typical prices: fresh produce is cheaper than alcohol, when both are stocked
    by_department = generate("small", seed=42).items.groupby("department")["price"].median()
    assert by_department["produce"] < by_department["meat seafood"] < by_department["alcohol"]


def test_users(tiny):
    users = tiny.users
    assert list(users.columns) == ["user_id", "age_group", "gender", "location", "signup_date"]
    assert users["user_id"].is_unique and users["age_group"].nunique() > 2 and users["location"].nunique() > 2
    first_event = tiny.events.groupby("user_id")["timestamp"].min()
    assert (users.set_index("user_id")["signup_date"] <= first_event.reindex(users["user_id"]).to_numpy()).all()


def test_shopping_structure(tiny):
    events = tiny.events
    assert set(events["item_id"]) <= set(tiny.items["item_id"])
    assert set(events["user_id"]) <= set(tiny.users["user_id"])
    purchases = events[events["event_type"] == "purchase"].sort_values("timestamp", kind="stable")
    # staples: many purchases repeat an earlier (user, item) purchase
    assert purchases.duplicated(["user_id", "item_id"]).mean() > 0.3
    # heavy and light shoppers
    orders_per_user = purchases.groupby("user_id")["order_id"].nunique()
    assert orders_per_user.max() >= 3 * orders_per_user.median() and orders_per_user.nunique() > 5
    # a purchase follows a cart event of the same item in the same order
    carts = events[events["event_type"] == "cart"][["user_id", "item_id", "order_id", "timestamp"]]
    paired = purchases.merge(carts, on=["user_id", "item_id", "order_id"], how="left", suffixes=("", "_cart"))
    assert (paired["timestamp_cart"] <= paired["timestamp"]).mean() > 0.9
    # abandoned carts and views never bought
    bought = set(zip(purchases["user_id"], purchases["item_id"]))
    views = events[events["event_type"] == "view"]
    assert sum(pair not in bought for pair in zip(views["user_id"], views["item_id"])) > 0.1 * len(views)
    cart_orders = set(zip(carts["order_id"], carts["item_id"]))
    assert len(cart_orders - set(zip(purchases["order_id"], purchases["item_id"]))) > 0
    # within an order: carts, then purchases
    last_cart = carts.groupby("order_id")["timestamp"].max()
    first_purchase = purchases.groupby("order_id")["timestamp"].min()
    assert (last_cart < first_purchase[last_cart.index]).all()


def test_small_preset_size():
    tables = generate("small", seed=7)
    assert 2_000 <= len(tables.users) <= 3_000 and 1_000 <= len(tables.items) <= 1_500
    assert 250_000 <= len(tables.events) <= 400_000


def test_unknown_preset():
    with pytest.raises(ValueError, match="tiny, small, instacart"):
        generate("huge")
