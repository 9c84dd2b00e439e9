"""Events -> the user x item matrices: ids coded in sorted order, weights per event type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recmill.config import InteractionsConfig
from recmill.data.interactions import InteractionData, event_weights, factorized, index_of, over_items
from recmill.data.tables import ID_DTYPE


def test_factorized_codes_follow_sorted_ids_for_arrow_and_object_strings():
    for values in (pd.Series(["b", "a", "é", "b", None], dtype=ID_DTYPE), pd.Series(["b", "a", "é", "b", None], dtype=object)):
        codes, uniques = factorized(values)
        assert uniques.tolist() == ["a", "b", "é"] and uniques.dtype == object
        assert codes.tolist() == [1, 0, 2, 1, -1]
    codes, uniques = factorized(pd.Series([10, 2, 10]))  # non-text ids become their text
    assert uniques.tolist() == ["10", "2"] and codes.tolist() == [0, 1, 0]


def test_index_of_finds_each_value_once_and_misses_are_minus_one():
    vocabulary = np.array(["x", "y", "z"], dtype=object)
    values = pd.Series(["z", "q", "x", None, "z"], dtype=ID_DTYPE)
    assert index_of(vocabulary, values).tolist() == [2, -1, 0, -1, 2]


def test_event_weights_by_type_rating_by_value_unknown_or_missing_zero():
    events = pd.DataFrame({"event_type": pd.Series(["view", "rating", "purchase", "click", None], dtype=ID_DTYPE),
                           "value": [1.0, 4.5, 1.0, 1.0, 1.0]})
    assert event_weights(events, {"view": 1.0, "cart": 3.0, "purchase": 5.0}).tolist() == [1.0, 4.5, 5.0, 0.0, 0.0]


def test_build_sums_weights_per_pair_and_marks_what_users_have():
    events = pd.DataFrame({
        "user_id": pd.Series(["u2", "u1", "u1", "u2", "u1"], dtype=ID_DTYPE),
        "item_id": pd.Series(["i2", "i1", "i1", "i3", "i2"], dtype=ID_DTYPE),
        "event_type": pd.Series(["view", "view", "purchase", "cart", "view"], dtype=ID_DTYPE),
        "value": 1.0,
    })
    items = pd.DataFrame({"item_id": pd.Series(["i4", "i1"], dtype=ID_DTYPE)})
    data = InteractionData.build(events, items, pd.DataFrame({"user_id": []}), InteractionsConfig())
    assert data.user_ids.tolist() == ["u1", "u2"] and data.item_ids.tolist() == ["i1", "i2", "i3", "i4"]
    assert data.matrix.toarray().tolist() == [[6.0, 1.0, 0.0, 0.0], [0.0, 1.0, 3.0, 0.0]]
    assert data.positive.toarray().tolist() == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_catalogue_adds_a_bare_row_for_each_item_known_from_events_only():
    events = pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i9", "i1"], "event_type": "purchase", "value": 1.0})
    items = pd.DataFrame({"item_id": ["i1", "i2"], "name": ["Milk", "Eggs"]})
    data = InteractionData.build(events, items, pd.DataFrame({"user_id": []}), InteractionsConfig())
    catalogue = data.catalogue()
    assert catalogue["item_id"].tolist() == ["i1", "i2", "i9"] and catalogue["name"].isna().tolist() == [False, False, True]
    assert InteractionData.build(events[:1], catalogue, data.users, InteractionsConfig()).item_ids.tolist() == data.item_ids.tolist()


def test_pair_events_give_each_pairs_strongest_event_and_latest_time():
    events = pd.DataFrame({
        "user_id": pd.Series(["u2", "u1", "u1", "u2", "u1", "u1"], dtype=ID_DTYPE),
        "item_id": pd.Series(["i2", "i1", "i1", "i3", "i2", "i1"], dtype=ID_DTYPE),
        "event_type": pd.Series(["view", "purchase", "view", "cart", "view", "cart"], dtype=ID_DTYPE),
        "value": 1.0,
        "timestamp": pd.to_datetime(["2024-01-05", "2024-01-01", "2024-01-03", "2024-01-04", "2024-01-02", "2024-01-02"]),
    })
    data = InteractionData.build(events, pd.DataFrame({"item_id": ["i4"]}), pd.DataFrame(), InteractionsConfig())
    # every user x item (i1..i4): u1's i1 has its purchase as the strongest event and its view
    # as the latest; pairs without an event get code 0 and no time
    codes, latest = data.pair_events(sp.csr_matrix(np.ones((2, 4))))
    assert codes.tolist() == [3, 1, 0, 0, 0, 1, 2, 0]
    assert latest.tolist() == pd.to_datetime(
        ["2024-01-03", "2024-01-02", None, None, None, "2024-01-05", "2024-01-04", None]
    ).to_numpy().tolist()


def same_data(a: InteractionData, b: InteractionData) -> None:
    assert a.user_ids.tolist() == b.user_ids.tolist() and a.item_ids.tolist() == b.item_ids.tolist()
    for name in ("matrix", "positive"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype == y.dtype
        assert x.indptr.tolist() == y.indptr.tolist() and x.indices.tolist() == y.indices.tolist() and x.data.tolist() == y.data.tolist()
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.event_keys[0].tolist() == b.event_keys[0].tolist() and a.event_keys[1].tolist() == b.event_keys[1].tolist()


def test_data_over_other_items_is_what_building_it_from_those_items_events_gives():
    events = pd.DataFrame({
        "user_id": pd.Series(["u2", "u1", "u1", "u3", "u1", "u2", "u4"], dtype=ID_DTYPE),
        "item_id": pd.Series(["i2", "i1", "i1", "i9", "i2", "i3", "i3"], dtype=ID_DTYPE),
        "event_type": pd.Series(["view", "view", "purchase", "purchase", "cart", "rating", "view"], dtype=ID_DTYPE),
        "value": [1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 1.0],
    })
    items = pd.DataFrame({"item_id": pd.Series(["i4", "i1"], dtype=ID_DTYPE), "name": ["Eggs", "Milk"]})
    data = InteractionData.build(events, items, pd.DataFrame({"user_id": ["u1"]}), InteractionsConfig())
    # i9 (u3's only item) and i3 go, i0 and i5 have no event: u3 and u4 are left with none
    item_ids = np.array(["i0", "i1", "i2", "i4", "i5"], dtype=object)
    over = data.over_items(item_ids)
    same_data(over, over_items(events, items, data.users, item_ids, InteractionsConfig()))
    assert over.user_ids.tolist() == ["u1", "u2"] and over.matrix.toarray().tolist() == [[0, 6, 3, 0, 0], [0, 0, 1, 0, 0]]
    assert over.event_cells()[1].tolist() == [2, 1, 1, 2]
    whole = data.over_items(data.item_ids)  # its own items: the same events and matrices
    same_data(whole, over_items(events, items, data.users, data.item_ids, InteractionsConfig()))
    assert (whole.matrix != data.matrix).nnz == 0 and len(whole.events) == len(events)
