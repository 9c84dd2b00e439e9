import numpy as np
import pandas as pd
import pytest

from recmill.config import ContentConfig, InteractionsConfig
from recmill.data.interactions import InteractionData
from recmill.errors import RecmillError
from recmill.models import content
from recmill.models.content import ContentRecommender
from tests.models.contract import RecommenderContract, make_data

NOW = pd.Timestamp("2026-03-01")

CATALOGUE = pd.DataFrame(
    [
        ("m1", "Organic Creamy Milk", "Dairy"),
        ("m2", "Organic Skim Milk", "Dairy"),
        ("n1", "Organic Oat Milk", "Dairy"),  # new: no events at all
        ("c1", "Dark Roast Coffee", "Coffee"),
        ("c2", "Medium Roast Coffee", "Coffee"),
        ("c3", "Colombian Roast Coffee", "Coffee"),
    ],
    columns=["item_id", "name", "category"],
)


class TestContentContract(RecommenderContract):
    model_class = ContentRecommender
    config = ContentConfig(neighbours=10)


def shop(events, items=CATALOGUE) -> InteractionData:
    """(user, item, event type, days before NOW) rows over the given items table."""
    frame = pd.DataFrame(events, columns=["user_id", "item_id", "event_type", "days_ago"])
    frame["timestamp"] = NOW - pd.to_timedelta(frame.pop("days_ago"), unit="D")
    frame["value"] = 1.0
    return InteractionData.build(frame, items, pd.DataFrame({"user_id": []}), InteractionsConfig())


@pytest.fixture
def milk_and_coffee():
    # x1 is bought but has no row in the items table: it has no text
    return shop([("a", "m1", "purchase", 0), ("a", "m2", "purchase", 0), ("b", "c1", "purchase", 0), ("b", "c2", "purchase", 0), ("b", "x1", "purchase", 0)])


def test_exact_cosine_on_names():
    # three names: 'organic' and 'milk' appear in two of them (smooth idf ln(4/3) + 1), the
    # rest in one (ln(4/2) + 1); the two milks share two terms, the coffee none
    items = CATALOGUE[CATALOGUE.item_id.isin(["m1", "m2", "c1"])]
    data = shop([("a", "m1", "purchase", 0), ("b", "c1", "purchase", 0)], items)
    model = ContentRecommender(ContentConfig(fields={"name": 1.0})).fit(data)
    common, rare = np.log(4 / 3) + 1, np.log(2) + 1
    sim = model.similar_items(["m1", "c1"], k=5)
    assert sim[["item_id", "similar_item_id"]].values.tolist() == [["m1", "m2"]]
    assert sim["score"].iloc[0] == pytest.approx(2 * common**2 / (2 * common**2 + rare**2), rel=1e-6)


def test_most_similar_items(milk_and_coffee):
    model = ContentRecommender(ContentConfig(fields={"name": 1.0, "category": 1.0})).fit(milk_and_coffee)
    sim = model.similar_items(["m1", "c1"], k=5)
    by_item = sim.groupby("item_id")["similar_item_id"].agg(list)
    assert set(by_item["m1"][:2]) == {"m2", "n1"} and by_item["m1"][2:] == []
    assert set(by_item["c1"][:2]) == {"c2", "c3"}


def test_new_item_is_recommended_and_similar(milk_and_coffee):
    model = ContentRecommender(ContentConfig()).fit(milk_and_coffee)
    assert "n1" not in set(milk_and_coffee.events["item_id"])
    assert model.recommend(["a"], k=1)["item_id"].tolist() == ["n1"]
    assert "n1" in set(model.similar_items(["m2"], k=3)["similar_item_id"])


def test_item_without_text_has_no_neighbours(milk_and_coffee):
    model = ContentRecommender(ContentConfig()).fit(milk_and_coffee)
    assert model.similar_items(["x1"], k=3).empty
    assert "x1" not in set(model.similar_items(k=10)["similar_item_id"])


def test_recent_history_dominates():
    # r bought two coffees long ago and one milk yesterday; the unseen candidates are a coffee and a milk
    events = [("r", "c1", "purchase", 200), ("r", "c2", "purchase", 200), ("r", "m1", "purchase", 1), ("s", "m2", "purchase", 0)]
    data = shop(events)
    recent = ContentRecommender(ContentConfig(recency_half_life_days=30)).fit(data)
    equal = ContentRecommender(ContentConfig(recency_half_life_days=None)).fit(data)
    assert recent.recommend(["r"], k=1)["item_id"].tolist() == ["n1"]
    assert equal.recommend(["r"], k=1)["item_id"].tolist() == ["c3"]


def test_reasons_name_category_and_words(milk_and_coffee):
    with_category = ContentRecommender(ContentConfig(fields={"name": 1.0, "category": 1.0})).fit(milk_and_coffee)
    assert with_category.recommend(["a"], k=1, reasons=True)["reason"].tolist() == ["more from Dairy, like Organic Creamy Milk you bought"]
    names_only = ContentRecommender(ContentConfig(fields={"name": 1.0})).fit(milk_and_coffee)
    assert names_only.recommend(["a"], k=1, reasons=True)["reason"].tolist() == ["matches 'milk', 'organic' in what you bought"]


def test_reason_verb_follows_the_event():
    data = shop([("v", "c1", "view", 0), ("a", "m1", "purchase", 0)])
    model = ContentRecommender(ContentConfig(fields={"name": 1.0})).fit(data)
    reasons = model.recommend(["v"], k=3, reasons=True)
    assert reasons["item_id"].tolist()[:1] == ["c1"]  # viewed, not had: still recommended
    assert reasons["reason"].str.endswith("in what you viewed").all()


def test_missing_text_is_an_error():
    items = pd.DataFrame({"item_id": ["m1", "c1"], "price": [1.0, 2.0]})
    data = shop([("a", "m1", "purchase", 0)], items)
    with pytest.raises(RecmillError, match=r"content' needs item text.*'name', 'description', 'category', 'tags', 'brand'"):
        ContentRecommender(ContentConfig()).fit(data)
    blank = items.assign(name=pd.NA)
    with pytest.raises(RecmillError, match="needs item text"):
        ContentRecommender(ContentConfig()).fit(shop([("a", "m1", "purchase", 0)], blank))


def test_similar_scores_are_sorted_cosines():
    data = make_data()
    model = ContentRecommender(ContentConfig(neighbours=6)).fit(data)
    sim = model.similar_items(k=20)
    assert sim["score"].between(0, 1).all()
    assert sim.groupby("item_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    assert sim.groupby("item_id").size().max() == 6


def test_neighbours_in_chunks_match_dense(monkeypatch):
    data = make_data()
    model = ContentRecommender(ContentConfig(neighbours=5)).fit(data)
    vectors = model.item_vectors_
    monkeypatch.setattr(content, "SCORE_CELLS", 2 * vectors.shape[0])  # two rows a chunk
    chunked = content.neighbours(vectors, 5)
    dense = (vectors @ vectors.T).toarray().astype(np.float64)
    np.fill_diagonal(dense, -np.inf)
    for i in range(vectors.shape[0]):
        cols, scores = chunked.indices[chunked.indptr[i] : chunked.indptr[i + 1]], chunked.data[chunked.indptr[i] : chunked.indptr[i + 1]]
        # equal scores may come in any order: compare the scores, and each one with its pair's
        np.testing.assert_allclose(scores, np.sort(dense[i])[::-1][:5], rtol=1e-6)
        np.testing.assert_allclose(scores, dense[i, cols], rtol=1e-6)


def test_neighbours_are_computed_once_for_the_same_vectors(monkeypatch):
    import scipy.sparse as sp

    from recmill.models import content

    calls = []
    monkeypatch.setattr(content, "neighbours", lambda v, n: calls.append(n) or sp.identity(v.shape[0], format="csr"))
    vectors = sp.random(6, 4, density=0.5, format="csr", random_state=1)
    first = content.cached_neighbours(vectors, 3)
    first.data[:] = 7  # a caller's change does not reach the remembered one
    assert content.cached_neighbours(vectors.copy(), 3).data.tolist() == [1.0] * 6
    assert calls == [3]
    content.cached_neighbours(vectors, 2)
    content.cached_neighbours(vectors * 2, 2)
    assert calls == [3, 2, 2]
