import numpy as np
import pandas as pd
import pytest

from recmill.config import CategoryConfig, EASEConfig, InteractionsConfig
from recmill.data.interactions import InteractionData
from recmill.errors import ModelSkipped
from recmill.models.category import CategoryRecommender
from recmill.models.ease import EASERecommender
from recmill.models.random import RandomRecommender
from tests.models.contract import RecommenderContract, make_data


class TestRandomContract(RecommenderContract):
    model_class = RandomRecommender


class TestCategoryContract(RecommenderContract):
    model_class = CategoryRecommender


class TestEASEContract(RecommenderContract):
    model_class = EASERecommender
    config = EASEConfig(regularization=10.0)


def purchases(rows, items=None) -> InteractionData:
    events = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(
        event_type="purchase", value=1.0, timestamp=pd.Timestamp("2026-01-01")
    )
    return InteractionData.build(events, items if items is not None else pd.DataFrame({"item_id": []}), pd.DataFrame({"user_id": []}), InteractionsConfig())


def test_random_differs_by_seed_and_covers_the_catalogue():
    data = make_data()
    a = RandomRecommender(seed=1).fit(data).recommend(list(data.user_ids), k=5)
    b = RandomRecommender(seed=2).fit(data).recommend(list(data.user_ids), k=5)
    assert not a["item_id"].equals(b["item_id"])
    assert a["item_id"].nunique() > 20  # spread over the 30 items, not a fixed list


def test_category_prefers_the_users_favourite_categories():
    items = pd.DataFrame({"item_id": ["d1", "d2", "d3", "b1", "b2"], "category": ["Dairy"] * 3 + ["Bakery"] * 2})
    # everyone buys bakery (b1 most popular overall); u1 mostly buys dairy
    data = purchases([("u1", "d1"), ("u1", "d2"), ("u1", "b2"), ("u2", "b1"), ("u3", "b1"), ("u4", "b1"), ("u2", "d3")], items)
    model = CategoryRecommender(CategoryConfig(top_categories=1)).fit(data)
    recs = model.recommend(["u1"], k=2, reasons=True)
    assert recs["item_id"].tolist() == ["d3", "b1"]  # dairy first, despite b1's popularity
    assert recs["reason"].iloc[0] == "popular in Dairy, one of your favourite categories"
    assert recs["reason"].iloc[1] == "popular in Bakery"


def test_ease_matches_the_closed_form():
    data = purchases([("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"), ("u3", "b"), ("u3", "c"), ("u4", "a"), ("u4", "b")])
    model = EASERecommender(EASEConfig(regularization=2.0)).fit(data)
    x = data.positive.toarray()
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(3))
    b = np.eye(3) - p / np.diag(p)
    np.testing.assert_allclose(model.weights_, b, rtol=1e-5)
    np.testing.assert_allclose(model._score(np.arange(4)), x @ b, rtol=1e-5)


def test_ease_is_skipped_above_its_catalogue_limit():
    data = make_data()
    with pytest.raises(ModelSkipped, match=r"ease skipped: the catalogue has 30 items, above models.ease.max_items=10"):
        EASERecommender(EASEConfig(max_items=10)).fit(data)
