import numpy as np
import pandas as pd
import pytest

from recmill.config import InteractionsConfig, Item2VecConfig
from recmill.data.interactions import InteractionData
from recmill.errors import ModelSkipped, RecmillError
from recmill.models.item2vec import SEQUENCE_EVENTS, Item2VecRecommender, item_sequences, sequence_codes, within_budget
from tests.models.contract import RecommenderContract

SMALL = dict(vector_size=16, epochs=30, min_count=2)


class TestItem2VecContract(RecommenderContract):
    model_class = Item2VecRecommender
    config = Item2VecConfig(**SMALL)


def build(rows) -> InteractionData:
    """(user, item, event_type, timestamp, order_id) rows -> model input."""
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp", "order_id"])
    events["timestamp"] = pd.to_datetime(events["timestamp"])
    events["value"] = 1.0
    ids = sorted(set(events["item_id"]))
    catalogue = pd.DataFrame({"item_id": ids, "name": [f"Item {i}" for i in ids]})
    return InteractionData.build(events, catalogue, pd.DataFrame({"user_id": []}), InteractionsConfig())


def grouped_orders(n_orders=1000, n_groups=20, per_order=2, tastes=1, seed=0, extra=()) -> InteractionData:
    """Orders of `per_order` groups each, items in random order: g0-1, g0-2 and g0-3 are
    always bought together, g1-1, g1-2 and g1-3 too, ...; user u draws groups g with
    g % tastes == u % tastes. Word2vec likens items by shared context, so groups of three
    (g0-1 and g0-2 share g0-3) rather than pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for o in range(n_orders):
        user = o % 30
        t = pd.Timestamp("2026-01-01") + pd.Timedelta(hours=o)
        groups = rng.choice(np.arange(user % tastes, n_groups, tastes), size=per_order, replace=False)
        items = [f"g{g}-{m}" for g in groups for m in (1, 2, 3)]
        for j, item in enumerate(rng.permutation(items)):
            rows.append((f"u{user}", item, "purchase", t + pd.Timedelta(seconds=j), f"o{o}"))
    return build([*rows, *extra])


def group(items: pd.Series) -> pd.Series:
    return items.str.split("-").str[0]


def test_sequences_per_user_or_per_order():
    rows = [
        ("u1", "y", "purchase", "2026-01-01 10:01", "o1"),
        ("u1", "x", "purchase", "2026-01-01 10:00", "o1"),
        ("u1", "x", "cart", "2026-01-01 09:59", "o1"),  # once per order
        ("u1", "v", "view", "2026-01-02 08:00", None),  # no order: the user's day is the session
        ("u1", "w", "view", "2026-01-02 20:00", None),
        ("u1", "z", "purchase", "2026-01-03 09:00", "o2"),
        ("u2", "x", "purchase", "2026-01-01 12:00", "o3"),
    ]
    data = build(rows)
    events = data.events
    assert item_sequences(events, "user") == [["x", "y", "v", "w", "z"], ["x"]]
    assert item_sequences(events, "order") == [["x", "y"], ["v", "w"], ["z"], ["x"]]
    assert item_sequences(events, "order", event_types=("purchase",)) == [["x", "y"], ["z"], ["x"]]
    for by, types in (("user", SEQUENCE_EVENTS), ("order", SEQUENCE_EVENTS), ("order", ("purchase",))):  # the data's own codes
        items, lengths, item_ids = sequence_codes(events, by, types, data=data)
        assert [part.tolist() for part in np.split(item_ids[items], np.cumsum(lengths)[:-1])] == item_sequences(events, by, types)


def test_too_few_sequences():
    rows = [(f"u{u}", f"i{i}", "purchase", f"2026-01-0{u + 1}", None) for u in range(3) for i in range(2)]
    rows.append(("u9", "i0", "purchase", "2026-01-09", None))  # one item: not a sequence
    with pytest.raises(ModelSkipped) as err:
        Item2VecRecommender(Item2VecConfig()).fit(build(rows))
    assert isinstance(err.value, RecmillError)
    assert str(err.value) == "item2vec needs at least 10 sequences with 2 or more items, found 3"


def test_no_item_frequent_enough():
    rows = [(f"u{u}", f"i{u}-{i}", "purchase", "2026-01-01", None) for u in range(10) for i in range(2)]
    with pytest.raises(ModelSkipped) as err:
        Item2VecRecommender(Item2VecConfig(min_count=2)).fit(build(rows))
    assert str(err.value) == "item2vec: no item appears at least min_count=2 times"


def test_items_always_bought_together_are_nearest():
    data = grouped_orders()
    model = Item2VecRecommender(Item2VecConfig(sequence="order", **SMALL), seed=1).fit(data)
    nearest = model.similar_items(k=2)
    assert len(nearest) == 2 * len(data.item_ids)
    assert (group(nearest["item_id"]) == group(nearest["similar_item_id"])).all()


def test_user_sequences_link_a_users_orders():
    # one group per order; even users buy even groups, odd users odd ones. Only user
    # sequences put a user's orders side by side, so only they learn the two tastes: an
    # item's nearest items beyond its own group are then all of its taste (about half by chance)
    data = grouped_orders(per_order=1, tastes=2)
    def taste(items):
        return group(items).str[1:].astype(int) % 2

    same_taste = {}
    for by in ("user", "order"):
        model = Item2VecRecommender(Item2VecConfig(sequence=by, **SMALL), seed=1).fit(data)
        beyond = model.similar_items(k=6).query("rank > 2")
        same_taste[by] = (taste(beyond["item_id"]) == taste(beyond["similar_item_id"])).mean()
    assert same_taste["user"] == 1.0
    assert same_taste["order"] < 0.8


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_agrees_on_a_clear_case(kind):
    import faiss

    data = grouped_orders()
    config = Item2VecConfig(sequence="order", **SMALL)
    exact = Item2VecRecommender(config, seed=1).fit(data)
    approx = Item2VecRecommender(config.model_copy(update={"exact_index_max_items": 4, "approximate_index": kind, "ivf_lists": 2}), seed=1).fit(data)
    assert isinstance(exact.index_, faiss.IndexFlatIP)
    assert isinstance(approx.index_, faiss.IndexHNSWFlat if kind == "hnsw" else faiss.IndexIVFFlat)
    pd.testing.assert_frame_equal(approx.similar_items(k=1), exact.similar_items(k=1))
    users = list(data.user_ids)
    top1 = [m.recommend(users, k=1) for m in (exact, approx)]
    assert (top1[0]["item_id"] == top1[1]["item_id"]).mean() == 1.0


def test_items_without_vectors_are_never_recommended():
    # 'rare' is bought once: below min_count, so it has no vector
    data = grouped_orders(extra=[("u99", "rare", "purchase", pd.Timestamp("2026-03-01"), "o999")])
    model = Item2VecRecommender(Item2VecConfig(sequence="order", **SMALL), seed=1).fit(data)
    recs = model.recommend(list(data.user_ids), k=len(data.item_ids), exclude_seen=False, reasons=True)
    placed_users = recs[recs["user_id"] != "u99"]
    assert "rare" not in set(placed_users["item_id"])
    assert model.similar_items(["rare"], k=3).empty
    # u99 has only 'rare': no vector to place them by, so the popularity list
    u99 = recs[recs["user_id"] == "u99"]
    assert list(u99["item_id"]) == list(model.item_ids_[model.popular_])
    assert set(u99["reason"]) == {"popular with other customers"}
    assert model.recommend(["u99"], k=3)["item_id"].tolist() == list(model.item_ids_[model.popular_[:3]])


def test_reasons_name_the_closest_history_items():
    data = grouped_orders()
    model = Item2VecRecommender(Item2VecConfig(sequence="order", **SMALL), seed=1).fit(data)
    row = 0
    history = model.item_ids_[model.seen_[row].indices]
    recs = model.recommend([data.user_ids[row]], k=3, exclude_seen=False, reasons=True)
    for item, reason in zip(recs["item_id"], recs["reason"]):
        named = reason.removeprefix("because you bought ").split(" and ")
        assert reason.startswith("because you bought ") and set(named) <= {f"Item {h}" for h in history}
        if item in history:  # an item's closest history item is itself
            assert named[0] == f"Item {item}"


def test_recency_weights_halve_per_half_life():
    rows = [(f"u{u}", f"i{i}", "purchase", f"2026-01-{1 + 10 * i:02d}", None) for u in range(10) for i in range(3)]
    model = Item2VecRecommender(Item2VecConfig(min_count=1, recency_half_life_days=10), seed=1).fit(build(rows))
    np.testing.assert_allclose(model.weights_[0].toarray(), [[0.25, 0.5, 1.0]])
    plain = Item2VecRecommender(Item2VecConfig(min_count=1), seed=1).fit(build(rows))
    np.testing.assert_allclose(plain.weights_[0].toarray(), [[1.0, 1.0, 1.0]])


def test_dense_scores_match_the_index():
    data = grouped_orders()
    model = Item2VecRecommender(Item2VecConfig(sequence="order", **SMALL), seed=1).fit(data)
    rows = np.arange(5)
    top, scores = model._top(rows, 3, exclude_seen=False)
    dense = model._score(rows)
    np.testing.assert_allclose(np.take_along_axis(dense, top, axis=1), scores, rtol=1e-5)
    assert (np.sort(dense, axis=1)[:, ::-1][:, :3] - scores < 1e-5).all()


def test_exact_lists_are_the_flat_index_search():
    # up to exact_index_max_items the lists come from dense scores; searching the flat
    # index (the path above it) must give the same items, seen ones left out or not
    data = grouped_orders(extra=[("u99", "rare", "purchase", pd.Timestamp("2026-03-01"), "o999")])
    model = Item2VecRecommender(Item2VecConfig(sequence="order", **SMALL), seed=1).fit(data)
    rows = np.arange(len(model.user_ids_))
    dense = {seen: model.top_items(rows, 4, exclude_seen=seen) for seen in (True, False)}
    model.config = model.config.model_copy(update={"exact_index_max_items": 0})  # the flat index is kept
    for seen, (top, scores) in dense.items():
        searched, searched_scores = model.top_items(rows, 4, exclude_seen=seen)
        assert np.isfinite(scores).any()
        np.testing.assert_array_equal(top[np.isfinite(scores)], searched[np.isfinite(searched_scores)])
        np.testing.assert_allclose(scores, searched_scores, rtol=1e-5)


def test_token_budget_keeps_whole_sequences_in_order():
    lengths = np.arange(2, 12)  # 65 items
    assert within_budget(lengths, None, seed=1).tolist() == list(range(10))
    assert within_budget(lengths, 65, seed=1).tolist() == list(range(10))
    kept = within_budget(lengths, 30, seed=1)
    assert 0 < lengths[kept].sum() <= 30
    assert np.all(np.diff(kept) > 0)  # in their order, each once
    assert np.array_equal(kept, within_budget(lengths, 30, seed=1))  # seeded
    assert not np.array_equal(kept, within_budget(lengths, 30, seed=2))
