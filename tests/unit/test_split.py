import pandas as pd
import pytest

from recmill.config import SplitConfig
from recmill.data.split import items_by_user, pairs_not_in, relevant_items, temporal_split, user_item_pairs


def events_for(counts: dict[str, int]) -> pd.DataFrame:
    rows = [
        (user, f"i{j}", pd.Timestamp("2026-01-01") + pd.Timedelta(hours=j), "purchase")
        for user, n in counts.items()
        for j in range(n)
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type"])


def items_of(frame, user):
    return sorted(frame[frame.user_id == user]["item_id"], key=lambda s: int(s[1:]))


def test_per_user_fraction_takes_each_users_last_events():
    # 10 events: test = last 2 (20%), valid = floor(8 * 0.25) = 2 before them
    parts = temporal_split(events_for({"a": 10, "b": 3}), SplitConfig(test_fraction=0.2, valid_fraction=0.25))
    assert items_of(parts["test"], "a") == ["i8", "i9"]
    assert items_of(parts["valid"], "a") == ["i6", "i7"]
    assert items_of(parts["train"], "a") == [f"i{j}" for j in range(6)]
    # 3 events: at least one test event, one valid, one left for train
    assert items_of(parts["test"], "b") == ["i2"]
    assert items_of(parts["valid"], "b") == ["i1"]
    assert items_of(parts["train"], "b") == ["i0"]


def test_a_repeated_index_splits_the_same():
    events = events_for({"a": 10, "b": 3}).iloc[::-1]  # out of time order
    repeated = events.copy()
    repeated.index = list(range(6)) + list(range(7))
    got = temporal_split(repeated, SplitConfig(test_fraction=0.2, valid_fraction=0.25))
    want = temporal_split(events, SplitConfig(test_fraction=0.2, valid_fraction=0.25))
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name])


def test_per_user_last_n_and_short_histories_stay_in_train():
    parts = temporal_split(events_for({"a": 6, "c": 2}), SplitConfig(test_n=2, valid_n=1, test_fraction=None))
    assert items_of(parts["test"], "a") == ["i4", "i5"]
    assert items_of(parts["valid"], "a") == ["i3"]
    assert items_of(parts["train"], "c") == ["i0", "i1"]  # fewer than min_user_events=3
    assert sum(len(p) for p in parts.values()) == 8


def test_ties_in_time_are_broken_by_item_id():
    events = pd.DataFrame(
        {"user_id": ["a"] * 4, "item_id": ["z", "y", "x", "w"], "timestamp": pd.Timestamp("2026-01-01"), "event_type": "rating"}
    )
    parts = temporal_split(events, SplitConfig(test_n=1, valid_fraction=None, test_fraction=None))
    assert parts["test"]["item_id"].tolist() == ["z"]
    assert parts["valid"].empty


def test_global_time_cut():
    events = events_for({"a": 5})
    cfg = SplitConfig(method="global_time", valid_start="2026-01-01 02:00", test_start="2026-01-01 04:00")
    parts = temporal_split(events, cfg)
    assert items_of(parts["train"], "a") == ["i0", "i1"]
    assert items_of(parts["valid"], "a") == ["i2", "i3"]
    assert items_of(parts["test"], "a") == ["i4"]


def test_global_time_needs_both_cuts():
    with pytest.raises(ValueError, match="global_time needs"):
        SplitConfig(method="global_time", test_start="2026-01-01")


def test_relevant_items_drop_seen_and_irrelevant_types():
    held_out = pd.DataFrame(
        {"user_id": ["a", "a", "a", "b"], "item_id": ["x", "y", "v", "x"], "event_type": ["purchase", "purchase", "view", "purchase"]}
    )
    train = pd.DataFrame({"user_id": ["a", "b", "a"], "item_id": ["x", "x", "y"], "event_type": ["purchase", "purchase", "view"]})
    had = items_by_user(train, ["purchase"])
    assert had == {"a": {"x"}, "b": {"x"}}
    assert relevant_items(held_out, ["purchase"]) == {"a": {"x", "y"}, "b": {"x"}}
    # y was only viewed before: still relevant; b had x already: b drops out
    assert relevant_items(held_out, ["purchase"], had) == {"a": {"y"}}


def test_user_item_pairs_and_the_pairs_a_user_did_not_have():
    events = pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "b", "c"],
        "item_id": ["x", "x", "y", "x", "z", "y"],
        "event_type": ["purchase", "purchase", "view", "purchase", "purchase", "rating"],
    })
    pairs = user_item_pairs(events, ["purchase"])
    assert sorted(zip(pairs.user_id, pairs.item_id)) == [("a", "x"), ("b", "x"), ("b", "z")]
    had = pd.DataFrame({"user_id": ["b", "c"], "item_id": ["x", "x"]}).astype("string[pyarrow]")
    new = pairs_not_in(pairs, had)
    assert list(zip(new.user_id, new.item_id)) == [("a", "x"), ("b", "z")]
