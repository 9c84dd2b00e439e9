import numpy as np

from recmill.config import ALSConfig, InteractionsConfig
from recmill.data.interactions import InteractionData
from recmill.models.als import ALSRecommender, confidence
from tests.models.contract import RecommenderContract, make_data


class TestALSContract(RecommenderContract):
    model_class = ALSRecommender
    config = ALSConfig(factors=8, iterations=10, regularization=0.1)
    refresh_reproduces_fit = False


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


def test_refreshed_factors_solve_the_user_step_by_hand():
    # Hu, Koren, Volinsky: x_u = (Y'Y + Y'(C_u - I)Y + lambda I)^-1 Y'C_u p_u, with c = alpha * f(w) on the user's items
    data = make_data()
    cfg = ALSConfig(factors=4, iterations=5, regularization=0.3, alpha=2.0, confidence="log")
    model = ALSRecommender(cfg, seed=1).fit(data)
    user = "u3"
    model.refresh_users(InteractionData.build(
        data.events[data.events["user_id"] == user], data.items, data.users, InteractionsConfig()
    ))
    Y = model.item_factors_.astype(np.float64)
    row = data.matrix[list(data.user_ids).index(user)]
    c = cfg.alpha * np.log1p(row.data.astype(np.float64))
    Yu = Y[row.indices]
    A = Y.T @ Y + Yu.T @ ((c - 1)[:, None] * Yu) + cfg.regularization * np.eye(4)
    expected = np.linalg.solve(A, Yu.T @ c)
    np.testing.assert_allclose(model.user_factors_[model.user_rows([user])[0]], expected, rtol=1e-4, atol=1e-5)


def test_dot_scores_are_each_rows_products_with_every_item_in_float32():
    from recmill.models.base import dot_scores

    users = np.array([[1.0, 2.0], [0.0, 1.0]])  # float64 in: multiplied as float32
    items = np.array([[3.0, 4.0], [1.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    scores = dot_scores(users, items)
    assert scores.dtype == np.float32 and scores.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(scores, [[11.0, 1.0, 1.5], [4.0, 0.0, 0.5]])


def test_scores_are_the_factors_products():
    data = make_data()
    model = ALSRecommender(ALSConfig(factors=4, iterations=5), seed=1).fit(data)
    rows = np.array([0, 3, 5])
    expected = model.user_factors_[rows].astype(np.float64) @ model.item_factors_.T.astype(np.float64)
    np.testing.assert_allclose(model._score(rows), expected, rtol=1e-5, atol=1e-6)
