import numpy as np

from recmill.config import ALSConfig
from recmill.models.als import ALSRecommender, confidence
from tests.models.contract import RecommenderContract, make_data


class TestALSContract(RecommenderContract):
    model_class = ALSRecommender
    config = ALSConfig(factors=8, iterations=10, regularization=0.1)


def test_learns_taste_groups():
    # even users buy from the first half of the catalogue, odd users from the second;
    # two factors are enough to tell the groups apart
    data = make_data()
    model = ALSRecommender(ALSConfig(factors=2, iterations=15, regularization=0.1), seed=1).fit(data)
    recs = model.recommend(list(data.user_ids), k=5)
    user_group = recs["user_id"].str[1:].astype(int) % 2
    item_group = (recs["item_id"].str[1:].astype(int) >= 15).astype(int)
    assert (user_group == item_group).mean() >= 0.95


def test_reason_names_history_items():
    data = make_data()
    model = ALSRecommender(ALSConfig(factors=8, iterations=10), seed=1).fit(data)
    recs = model.recommend(["u2"], k=3, reasons=True)
    bought = {f"Item {i[1:]}" for i in data.events[data.events.user_id == "u2"]["item_id"]}
    for reason in recs["reason"]:
        assert reason.startswith("because you bought ")
        named = reason.removeprefix("because you bought ").split(" and ")
        assert set(named) <= bought


def test_confidence_scaling():
    import scipy.sparse as sp

    m = sp.csr_matrix(np.array([[0.0, 5.0], [3.0, 0.0]]))
    assert confidence(m, "linear").toarray().tolist() == [[0, 5], [3, 0]]
    np.testing.assert_allclose(confidence(m, "log").toarray(), [[0, np.log(6)], [np.log(4), 0]], rtol=1e-6)


def test_reason_names_two_different_products():
    # two products may share a name: the reason skips to the next name, never "X and X"
    data = make_data()
    row = 0
    first, second, third = data.positive[row].indices[:3]
    data.items.loc[data.items.item_id.isin(data.item_ids[[first, second]]), "name"] = "Large Brown Eggs"
    model = ALSRecommender(ALSConfig(factors=8, iterations=10), seed=1).fit(data)
    third_name = data.items.set_index("item_id").loc[data.item_ids[third], "name"]
    assert model._history_reason(row, [first, second, third]) == f"because you bought Large Brown Eggs and {third_name}"
