"""'because you X and Y': the two differently named history items closest to each item."""

import numpy as np
import pandas as pd
import pytest

from recmill.config import InteractionsConfig
from recmill.data.interactions import InteractionData
from recmill.models.popularity import PopularityRecommender


@pytest.fixture(scope="module")
def model():
    # u1 bought a, b and c, rated d; b and c are two products of one name; e is in Dairy, f has no category
    events = pd.DataFrame({
        "user_id": ["u1"] * 4 + ["u2"],
        "item_id": ["a", "b", "c", "d", "e"],
        "event_type": ["purchase", "purchase", "purchase", "rating", "purchase"],
        "timestamp": pd.date_range("2026-01-01", periods=5, freq="h"),
        "value": 1.0,
    })
    items = pd.DataFrame({
        "item_id": list("abcdef"), "name": ["Apples", "Eggs", "Eggs", "Dates", "Milk", "Figs"],
        "category": ["Fruit", "Dairy", "Dairy", "Fruit", "Dairy", ""],
    })
    data = InteractionData.build(events, items, pd.DataFrame({"user_id": []}), InteractionsConfig())
    return PopularityRecommender().fit(data)


def reasons(model, similarity, positive_only=False):
    col = {item: n for n, item in enumerate(model.item_ids_)}
    row = int(model.user_rows(["u1"])[0])
    history = np.array(sorted(col[i] for i in "abcd"))  # a, b, c, d: the similarity's columns
    items = np.array([col["e"], col["f"]])
    return model._nearest_history_reasons(row, items, history, np.array(similarity, dtype=float), positive_only)


def test_the_two_closest_with_their_own_verbs(model):
    assert reasons(model, [[0.1, 0.2, 0.0, 0.9], [0.8, 0.1, 0.0, 0.3]]) == [
        "because you rated Dates and bought Eggs",
        "because you bought Apples and rated Dates",
    ]


def test_a_name_already_given_is_skipped_and_ties_go_to_the_first_in_the_history(model):
    # b and c are both "Eggs": after b, c is passed over for d; a and d tie, a comes first
    assert reasons(model, [[0.1, 0.9, 0.8, 0.5], [0.5, 0.1, 0.1, 0.5]]) == [
        "because you bought Eggs and rated Dates",
        "because you bought Apples and rated Dates",
    ]


def test_positive_only_keeps_the_items_more_similar_than_orthogonal(model):
    assert reasons(model, [[-0.1, 0.0, 0.3, -0.2], [-0.1, 0.0, -0.3, -0.2]], positive_only=True) == [
        "because you bought Eggs",
        "popular with other customers",  # f: no history item is similar, and it has no category
    ]
    # without positive_only every history item counts, however dissimilar
    assert reasons(model, [[-0.1, 0.0, -0.3, -0.2], [-0.1, 0.0, -0.3, -0.2]]) == [
        "because you bought Eggs and Apples", "because you bought Eggs and Apples",
    ]


def test_the_same_reasons_with_non_finite_similarities(model):
    assert reasons(model, [[np.nan, 0.2, 0.1, -np.inf], [0.8, np.nan, 0.0, 0.3]]) == [
        "because you bought Eggs and rated Dates",
        "because you bought Apples and rated Dates",
    ]


def test_without_history_every_item_is_popular(model):
    row = int(model.user_rows(["u1"])[0])
    items = np.array([model.item_cols(["e"])[0], model.item_cols(["f"])[0]])
    assert model._nearest_history_reasons(row, items, np.array([], np.int64), np.zeros((2, 0))) == [
        "popular in Dairy", "popular with other customers",
    ]
    assert model._nearest_history_reasons(row, items[:0], np.array([1]), np.zeros((0, 1))) == []
